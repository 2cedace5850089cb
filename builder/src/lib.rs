//! strata: the builder crate — everything that touches the outside world, and the `strata`
//! command line.
//!
//! - [`cli`]: raw arguments (clap) → validated settings → the frontend and, later, the solver.
//!
//! The RUN sandbox, file operations, image assembly, exporters and the registry client arrive
//! with the issues that build them; this crate is the only one that will mount or fork.
//!
//! Architecture invariant: nothing depends on this crate.

pub mod build;
pub mod cli;
pub mod executor;
pub mod fileop;
pub mod timefmt;
