//! Image configuration carried with the build graph: the runtime config a stage's metadata
//! instructions produce, and its history, in the image model's types.

pub use strata_oci::config::{
    Empty, HealthConfig, History as HistoryEntry, RuntimeConfig as ImageConfig,
};
