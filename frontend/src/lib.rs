//! strata-frontend: the Dockerfile becomes a build graph here, and only here.
//!
//! The pipeline, in BuildKit's layers:
//!
//! 1. [`parser`]: text → instruction nodes (directives, continuations, heredocs, argument
//!    styles), returning the AST *and* every diagnostic;
//! 2. [`instructions`]: nodes → typed instructions with checked flags;
//! 3. [`shell`]: variable expansion (`$v`, `${v:-w}`, …) as BuildKit's shell lexer does it;
//! 4. [`dockerignore`]: `.dockerignore` patterns and Go-style path wildcards;
//! 5. [`lower`]: stages, ARG/ENV scoping and the target's subgraph → [`strata_solver::BuildGraph`];
//! 6. [`lint`]: BuildKit's build checks.
//!
//! Architecture invariant: the frontend never touches the filesystem or the network. Callers
//! hand it the Dockerfile text, the `.dockerignore` text and an [`lower::ImageResolver`] for
//! base image configs.

pub mod diagnostic;
pub mod dockerignore;
pub mod instructions;
pub mod lint;
pub mod lower;
pub mod parser;
pub mod path;
pub mod shell;
pub mod suggest;

pub use diagnostic::{Diagnostic, LineRange, Severity};
