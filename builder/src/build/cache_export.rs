//! `--cache-to`: which entries go out (the final image's lineage with `mode=min`, every step
//! with `mode=max`) and, when asked, the RUN cache mounts the build used.

use super::{BuildError, BuildRequest, remote_cache};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::PathBuf;
use strata_cache::Digest;
use strata_cache::images::ImageStore;
use strata_solver::graph::{BuildGraph, MountKind, OpId, OpKind};

/// Exports the build's cache to one `--cache-to` destination; returns how many entries.
#[allow(clippy::too_many_arguments)]
pub fn export(
    req: &BuildRequest,
    store: &mut ImageStore,
    graph: &BuildGraph,
    needed: &[OpId],
    targets: &[OpId],
    keys: &BTreeMap<OpId, Digest>,
    used: &[Digest],
    (loc, mode, with_mounts): (&remote_cache::Location, remote_cache::Mode, bool),
    inputs: &BTreeMap<OpId, super::explain::StepInputs>,
) -> Result<usize, BuildError> {
    let mounts = if with_mounts {
        cache_mounts(req, graph, needed)
    } else {
        vec![]
    };
    let keys_out: Vec<Digest> = match mode {
        remote_cache::Mode::Max => used.to_vec(),
        remote_cache::Mode::Min => {
            let mut v: Vec<Digest> = targets
                .iter()
                .flat_map(|t| lineage(graph, *t, keys))
                .collect();
            v.sort();
            v.dedup();
            v
        }
    };
    // The exported steps' key inputs go with them.
    let target = req.opts.target.clone().unwrap_or_default();
    let steps = needed
        .iter()
        .filter(|id| keys.get(id).is_some_and(|k| keys_out.contains(k)))
        .filter_map(|id| {
            let si = inputs.get(id)?;
            let v = serde_json::to_value(si).ok()?;
            Some((format!("{target}|{}", super::records::slot(&si.step)), v))
        })
        .collect();
    Ok(remote_cache::export(store, &keys_out, loc, &mounts, steps)
        .context("exporting the cache")?)
}

/// The cache mounts the build's steps used: id → directory.
fn cache_mounts(req: &BuildRequest, graph: &BuildGraph, needed: &[OpId]) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = needed
        .iter()
        .filter_map(|i| match &graph.op(*i).kind {
            OpKind::Exec(e) => Some(e.mounts.iter().filter_map(|m| {
                match &m.kind {
                    MountKind::Cache { id, .. } => Some((
                        id.clone(),
                        req.root
                            .join("cachemounts")
                            .join(Digest::of(id.as_bytes()).hex()),
                    )),
                    _ => None,
                }
            })),
            _ => None,
        })
        .flatten()
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The final image's lineage: each step's root filesystem input, down to the base.
fn lineage(graph: &BuildGraph, target: OpId, keys: &BTreeMap<OpId, Digest>) -> Vec<Digest> {
    let mut v = Vec::new();
    let mut id = target;
    loop {
        let op = graph.op(id);
        match &op.kind {
            OpKind::Exec(_) | OpKind::File { base: true, .. } => {
                v.extend(keys.get(&id).cloned());
                match op.inputs.first() {
                    Some(i) => id = *i,
                    None => break,
                }
            }
            _ => break,
        }
    }
    v
}
