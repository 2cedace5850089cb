//! strata: the builder crate — everything that touches the outside world, and the `strata`
//! command line.
//!
//! - [`cli`]: raw arguments (clap) → validated settings → the commands;
//! - [`build`]: `strata build`: cache keys, the scheduler's op runner, image assembly, progress;
//! - [`executor`]: containers (RUN, `strata run`) and file operations in mount namespaces;
//! - [`fileop`]: COPY/ADD/WORKDIR semantics on a directory;
//! - [`user`]: USER and `--chown` names against an image's /etc/passwd and /etc/group;
//! - [`export`]: OCI layouts, docker archives and root filesystems out of the store;
//! - [`load`]: docker archives, OCI layouts and skopeo directories into the store;
//! - [`registry`]: the distribution API client (pull, push, auth), HTTP and Git sources.
//!
//! This crate is the only one that mounts or forks, and within it only [`executor`].
//!
//! Architecture invariant: nothing depends on this crate.

pub mod bounded;
pub mod build;
pub mod cli;
pub mod executor;
pub mod export;
pub mod fileop;
pub mod load;
pub mod registry;
pub mod timefmt;
pub mod user;
