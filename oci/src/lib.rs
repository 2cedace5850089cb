//! strata-oci: the image formats, in one place.
//!
//! - [`digest`]: `sha256:` digests and the one hash-while-streaming reader and writer;
//! - [`media_type`]: the OCI and Docker schema 2 media types and what each names;
//! - [`manifest`]: descriptors, image manifests, indexes (Docker manifest lists), decoded
//!   leniently and kept whole, and choosing an index's entry for a platform;
//! - [`config`]: the image config with Docker's extensions, decoded as Docker's Go structs
//!   decode (`null` is absent);
//! - [`platform`]: platforms normalized and matched as containerd does;
//! - [`reference`]: image references normalized as Docker does;
//! - [`archive`]: `docker save`'s `manifest.json` and the OCI layout's `oci-layout`.
//!
//! Architecture invariant: this crate is the only parser of image formats, and depends on no
//! other strata crate. It does no I/O beyond the reader or writer it is given.

pub mod archive;
pub mod config;
pub mod digest;
mod lenient;
pub mod manifest;
pub mod media_type;
pub mod platform;
pub mod reference;

pub use config::{ImageConfig, RuntimeConfig};
pub use digest::{Digest, DigestError, DigestReader, DigestWriter};
pub use manifest::{Descriptor, Document, Index, Manifest};
pub use platform::Platform;
pub use reference::Reference;
