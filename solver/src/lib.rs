//! strata-solver: the build graph and the scheduler that runs it.
//!
//! - [`graph`]: ops (source, exec, file, merge), their inputs and their definition digests;
//! - [`image`]: the image config and history a build produces alongside its graph;
//! - [`scheduler`]: runs a graph's ops in parallel up to a limit, each once, cancelling on
//!   the first failure.
//!
//! Architecture invariant: the solver never sees a Dockerfile. The frontend lowers a
//! Dockerfile into a [`graph::BuildGraph`]; the solver only knows ops and digests.

pub mod graph;
pub mod image;
pub mod scheduler;

/// Image references, from the image model (the frontend sees the model through the solver).
pub use strata_oci::reference;

pub use graph::{BuildGraph, Digest, Op, OpId, OpKind, Platform};
