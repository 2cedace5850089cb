//! strata: the builder crate — everything that touches the outside world, and the `strata`
//! command line.
//!
//! - [`cli`]: raw arguments (clap) → validated settings → the commands;
//! - [`build`]: `strata build`: cache keys, the scheduler's op runner, image assembly, progress;
//! - [`export`]: OCI layouts, docker archives and root filesystems out of the store;
//! - [`load`]: docker archives, OCI layouts and skopeo directories into the store;
//! - [`registry`]: the distribution API client (pull, push, auth), HTTP and Git sources.
//!
//! Containers and file operations run through `strata-executor`, the only crate that mounts
//! or forks a container; the network is reached only through `strata-registry`.
//!
//! Architecture invariant: nothing depends on this crate.

pub mod bounded;
pub mod build;
pub mod cli;
pub mod export;
pub mod load;
pub mod registry;
pub mod timefmt;
