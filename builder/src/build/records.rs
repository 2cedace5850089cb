//! The build's step records: before the steps run, why each one that will run misses
//! (against its last record in the build's scope, [`super::explain`]); after a successful
//! build, every step's key inputs become its record. Records are best effort: a database
//! error loses an explanation, never a build.

use super::explain::{self, Miss, StepInputs};
use super::runner::FsResult;
use std::collections::BTreeMap;
use strata_cache::Digest;
use strata_cache::metadata::{Metadata, StepRecord};
use strata_solver::graph::{BuildGraph, OpId, OpKind};

/// A step's place, the same from build to build while the Dockerfile keeps its shape: the
/// bracket of its name without the step count (`[linux/arm64 build 3/6]` → `linux/arm64
/// build 3`).
pub fn slot(name: &str) -> String {
    let bracket = name
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map(|(b, _)| b)
        .unwrap_or(name);
    match bracket.rsplit_once('/') {
        Some((head, total)) if total.chars().all(|c| c.is_ascii_digit()) => head.to_string(),
        _ => bracket.to_string(),
    }
}

/// What a build's steps are compared with.
pub struct Against<'a> {
    pub meta: &'a Metadata,
    /// The build's scope ([`super::record_scope`]).
    pub scope: &'a str,
    /// `--no-cache` (else a forced miss is `--no-cache-filter`'s).
    pub no_cache_everywhere: bool,
    /// The key inputs imported caches carry.
    pub imported: &'a [ImportedSteps],
    /// `--target` (empty: the last stage).
    pub target: &'a str,
    /// The context's checksummed entries (for the file lists of records).
    pub contexts: &'a super::keys::Contexts,
}

/// Why each step that will run (reached from the targets, not done already, not a source)
/// misses the cache, in build order.
pub fn misses(
    graph: &BuildGraph,
    targets: &[OpId],
    done: &BTreeMap<OpId, FsResult>,
    inputs: &BTreeMap<OpId, StepInputs>,
    against: &Against<'_>,
) -> BTreeMap<OpId, Miss> {
    let Against {
        meta,
        scope,
        no_cache_everywhere,
        imported,
        target,
        contexts,
    } = *against;
    let mut runs: Vec<OpId> = targets
        .iter()
        .flat_map(|t| graph.reachable(*t, |id| done.contains_key(&id)))
        .filter(|id| !done.contains_key(id))
        .filter(|id| !matches!(graph.op(*id).kind, OpKind::Source(_)))
        .collect();
    runs.sort();
    runs.dedup();
    let mut out: BTreeMap<OpId, Miss> = BTreeMap::new();
    for id in runs {
        let Some(mut now) = inputs.get(&id).cloned() else {
            continue;
        };
        super::keys::fill_files(&mut now, contexts);
        let now = &now;
        let record = meta
            .step_record(scope, &slot(&now.step), &now.instruction)
            .ok()
            .flatten();
        let mut before = record
            .as_ref()
            .and_then(|r| serde_json::from_str::<StepInputs>(&r.inputs).ok());
        // No build of the step here: what an imported cache had for it, if one did.
        let mut from = None;
        if before.is_none() {
            let want = format!("{target}|{}", slot(&now.step));
            for i in imported {
                if let Some(v) = i.steps.get(&want)
                    && let Ok(si) = <StepInputs as serde::Deserialize>::deserialize(v)
                {
                    before = Some(si);
                    from = Some(i.from.clone());
                    break;
                }
            }
        }
        let op = graph.op(id);
        let missed_parent = op
            .inputs
            .iter()
            .find(|i| out.contains_key(i))
            .map(|i| graph.op(*i).name.clone());
        let mut m = explain::explain(before.as_ref(), now, missed_parent.as_deref());
        if m.kind == "evicted"
            && let Some((at, why)) = record.and_then(|r| meta.eviction(&r.key).ok().flatten())
        {
            m.set_reason(format!(
                "its result was pruned {} ({why})",
                crate::timefmt::ago(at, crate::timefmt::now()).to_lowercase()
            ));
            m.data
                .insert("evicted_at".into(), crate::timefmt::rfc3339(at).into());
            m.data.insert("why".into(), why.into());
        }
        if let Some(f) = &from
            && !m.is_upstream()
        {
            m.set_reason(format!("{} (cache from {f})", m.reason));
            m.data.insert("cache_from".into(), f.clone().into());
        }
        if m.kind == "no-cache" && !no_cache_everywhere {
            // Not the whole build: its stage was named by --no-cache-filter.
            m.set_reason(format!("--no-cache-filter {}", now.stage));
            m.data.insert("flag".into(), "--no-cache-filter".into());
        }
        out.insert(id, m);
    }
    out
}

/// The key inputs an imported cache carries, by `TARGET|SLOT`, and where it came from.
pub struct ImportedSteps {
    pub from: String,
    pub steps: BTreeMap<String, serde_json::Value>,
}

/// Records every step of a successful build (sources aside) as its slot's last record.
pub fn record(
    graph: &BuildGraph,
    needed: &[OpId],
    keys: &BTreeMap<OpId, Digest>,
    inputs: &BTreeMap<OpId, StepInputs>,
    meta: &mut Metadata,
    (scope, contexts): (&str, &super::keys::Contexts),
) {
    // A slot whose key is unchanged has its record already (the key covers the inputs).
    let known = meta.step_keys(scope).unwrap_or_default();
    let records: Vec<StepRecord> = needed
        .iter()
        .filter(|id| !matches!(graph.op(**id).kind, OpKind::Source(_)))
        .filter_map(|id| {
            let (key, si) = (keys.get(id)?, inputs.get(id)?);
            let slot = slot(&si.step);
            if known.get(&slot) == Some(key) {
                return None;
            }
            let mut si = si.clone();
            super::keys::fill_files(&mut si, contexts);
            Some(StepRecord {
                slot,
                instruction: si.instruction.clone(),
                key: key.clone(),
                inputs: serde_json::to_string(&si).ok()?,
            })
        })
        .collect();
    if let Err(e) = meta.put_step_records(scope, &records, crate::timefmt::now()) {
        tracing::warn!("recording the build's steps: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_the_stage_and_position_without_the_count() {
        assert_eq!(slot("[build 3/6] RUN make"), "build 3");
        assert_eq!(
            slot("[linux/arm64 build 3/7] RUN make"),
            "linux/arm64 build 3"
        );
        assert_eq!(slot("[2/2] COPY . ."), "2");
    }
}
