//! strata-cache: local state under the state root.
//!
//! This crate will own the sha256 content store, the SQLite metadata, layer snapshots and
//! garbage collection (the image-store issue). Until then it is empty on purpose: nothing in
//! strata stores anything yet, and no code pretends to.
//!
//! Architecture invariant: cache depends on no other strata crate.
