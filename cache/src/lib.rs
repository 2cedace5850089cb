//! strata-cache: local state under the state root.
//!
//! - [`digest`]: `sha256:` content digests;
//! - [`store`]: the content store, blobs addressed by digest, never visible half-written;
//! - [`metadata`]: SQLite metadata (images, tags, layers, snapshots), safe for several strata
//!   processes on one root;
//!
//! Architecture invariant: cache depends on no other strata crate, never mounts and never
//! forks.

pub mod digest;
pub mod metadata;
pub mod store;

pub use digest::Digest;
