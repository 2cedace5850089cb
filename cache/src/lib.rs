//! strata-cache: local state under the state root.
//!
//! - [`contenthash`]: content checksums of directory trees (the build context), mtimes
//!   excluded, with a metadata cache;
//! - [`compress`]: parallel, reproducible gzip/zstd of layer tars;
//! - [`difftar`]: a snapshot directory as a deterministic layer tar (its diff ID);
//! - [`gc`]: space accounting and pruning of the build cache and unused layers;
//! - [`inroot`]: paths inside a directory the build does not control, resolved by the kernel
//!   inside it and held as file descriptors;
//! - [`lock`]: the state root's lock (builds shared, garbage collection exclusive);
//! - [`root`]: the state root's directories, private to their owner (mode 0700);
//! - [`store`]: the content store, blobs addressed by digest, never visible half-written;
//! - [`metadata`]: SQLite metadata (images, tags, layers, snapshots), safe for several strata
//!   processes on one root;
//! - [`unpack`]: applying a layer tar to a directory without ever writing outside it;
//! - [`sys`]: the privileged filesystem calls (mknod, setxattr, chown) behind a trait with a
//!   recording fake.
//!
//! Architecture invariant: cache depends on no strata crate but the image model
//! (`strata-oci`), never mounts and never forks.

pub mod compress;
pub mod contenthash;
pub mod difftar;
pub mod gc;
pub mod images;
pub mod inroot;
pub mod lock;
pub mod metadata;
pub mod root;
pub mod store;
pub mod sys;
pub mod unpack;

pub use strata_oci::Digest;
pub use strata_oci::digest;
