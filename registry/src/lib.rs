//! strata-registry: everything strata does over the network.
//!
//! - [`client`]: the OCI distribution API (manifests, blobs, uploads, mounts), with retries
//!   and basic and bearer-token auth;
//! - [`auth`]: credentials where docker keeps them (`config.json`, credential helpers);
//! - [`config`]: buildkitd-style host settings (mirrors, plain HTTP, insecure, CA);
//! - [`fetch`]: `ADD https://…`, streamed to disk while hashed;
//! - [`git`]: `ADD` of Git repositories through the host's git, without its credentials.
//!
//! Architecture invariant: this is the only crate that opens network connections (and the
//! only one that depends on an HTTP client). It knows image formats only through the image
//! model (`strata-oci`) and never the local store: pulling into the store and pushing from it
//! are the builder's.

pub mod auth;
pub mod client;
pub mod config;
pub mod fetch;
pub mod git;

pub use client::{Client, RegistryError};
