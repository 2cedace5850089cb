//! What is done before anything runs: sources, steps whose key is in the build cache, and
//! steps an imported cache (`--cache-from`) has; and what the build shows as cached.

use super::progress::Progress;
use super::runner::FsResult;
use super::{BuildError, BuildRequest, remote_cache, resolver};
use anyhow::Context as _;
use std::collections::BTreeMap;
use strata_cache::Digest;
use strata_cache::images::ImageStore;
use strata_cache::metadata::Metadata;
use strata_solver::graph::{BuildGraph, OpId, OpKind, SourceOp};

/// Sources and the local build cache's hits among `needed`.
pub fn done_already(
    req: &BuildRequest,
    store: &ImageStore,
    graph: &BuildGraph,
    needed: &[OpId],
    keys: &BTreeMap<OpId, Digest>,
) -> Result<BTreeMap<OpId, FsResult>, BuildError> {
    let mut done: BTreeMap<OpId, FsResult> = BTreeMap::new();
    for id in needed {
        let op = graph.op(*id);
        match &op.kind {
            OpKind::Source(SourceOp::Scratch) => {
                done.insert(*id, FsResult::Layers(vec![]));
            }
            OpKind::Source(SourceOp::Image { .. }) => {
                let img = resolver::find_image(store, op)?;
                let layers = img.record.layers.iter().cloned().map(Some).collect();
                done.insert(*id, FsResult::Layers(layers));
            }
            OpKind::Source(SourceOp::Local {
                exclude_patterns, ..
            }) => {
                let ctx = FsResult::Context {
                    dir: req.context.clone(),
                    ignore: exclude_patterns.clone(),
                };
                done.insert(*id, ctx);
            }
            // Fetched (or made from what was fetched for its key) when a step needs it.
            OpKind::Source(SourceOp::Http { .. }) => {}
            // Checked out when a step needs it.
            OpKind::Source(SourceOp::Git { .. }) => {}
            _ if op.ignore_cache => {}
            _ => {
                let key = &keys[id];
                if let Some(layers) = store.cached_chain(key).map_err(anyhow::Error::from)? {
                    done.insert(*id, FsResult::Layers(layers));
                }
            }
        }
    }
    Ok(done)
}

/// Imported caches: walking down from the target as the scheduler will, the first step an
/// imported cache has becomes local (only its layers are fetched) and ends the walk there.
#[allow(clippy::too_many_arguments)]
pub fn import_caches(
    req: &BuildRequest,
    store: &ImageStore,
    graph: &BuildGraph,
    targets: &[OpId],
    keys: &BTreeMap<OpId, Digest>,
    meta: &Metadata,
    done: &mut BTreeMap<OpId, FsResult>,
    warnings: &mut dyn std::io::Write,
) -> Result<Vec<super::records::ImportedSteps>, BuildError> {
    let mut imported = Vec::new();
    for loc in &req.cache_from {
        match remote_cache::import(loc) {
            Ok(i) => {
                if let Err(e) = i.seed_cache_mounts(store, &req.root) {
                    let _ = writeln!(warnings, "warning: seeding cache mounts failed: {e:#}");
                }
                imported.push(i)
            }
            Err(e) => {
                let _ = writeln!(warnings, "warning: importing a cache failed: {e:#}");
            }
        }
    }
    let mut store_w = ImageStore::open(&req.root).map_err(anyhow::Error::from)?;
    // From the target down: a step found in an imported cache is where the walk stops, so only
    // the results the build stops at are fetched.
    let mut failed = None;
    for target in targets {
        graph.reachable(*target, |id| {
            if failed.is_some() || done.contains_key(&id) {
                return true;
            }
            let op = graph.op(id);
            if matches!(op.kind, OpKind::Source(_)) || op.ignore_cache {
                return false;
            }
            let key = &keys[&id];
            for imp in &imported {
                let hit = imp
                    .materialize(&mut store_w, key, crate::timefmt::now())
                    .with_context(|| format!("fetching the cached result of {}", op.name))
                    .and_then(|got| {
                        Ok(if got {
                            meta.cached_result(key).map_err(anyhow::Error::from)?
                        } else {
                            None
                        })
                    });
                match hit {
                    Ok(Some(chain)) => {
                        done.insert(id, FsResult::Layers(chain));
                        return true;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        failed = Some(e);
                        return true;
                    }
                }
            }
            false
        });
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(imported
            .into_iter()
            .map(|i| super::records::ImportedSteps {
                from: i.loc.describe(),
                steps: i.config.steps,
            })
            .collect()),
    }
}

/// Shows the hits the scheduler will stop at (sources as done, steps as cached); returns how
/// many steps are cached.
pub fn show(
    graph: &BuildGraph,
    targets: &[OpId],
    done: &BTreeMap<OpId, FsResult>,
    progress: &Progress,
) -> usize {
    let mut cached = 0;
    let mut shown: Vec<OpId> = targets
        .iter()
        .flat_map(|t| graph.reachable(*t, |id| done.contains_key(&id)))
        .filter(|id| done.contains_key(id))
        .collect();
    shown.sort();
    shown.dedup();
    let digest_of = |id: OpId| graph.digest(id).as_str().to_string();
    for id in &shown {
        let op = graph.op(*id);
        let inputs: Vec<String> = op.inputs.iter().map(|i| digest_of(*i)).collect();
        match &op.kind {
            OpKind::Source(SourceOp::Local { .. }) => {}
            OpKind::Source(_) => {
                progress.start(&digest_of(*id), &op.name, &inputs);
                progress.done(&digest_of(*id), None);
            }
            _ => {
                cached += 1;
                progress.cached(&digest_of(*id), &op.name, &inputs);
            }
        }
    }
    cached
}
