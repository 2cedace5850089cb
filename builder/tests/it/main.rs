//! The builder crate's integration tests: one binary, one module per area (cargo's habit).

mod build;
mod cli;
mod compat;
mod escape;
mod explain;
mod export;
mod hostile_archives;
mod images;
mod limits;
mod parse_oracle;
mod platforms;
mod process;
mod registry;
mod sandbox;
mod seccomp;
mod state_root;
mod support;
mod tools;
