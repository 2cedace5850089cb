//! The target's layers, config and history as an image in the local store.
//!
//! History entries that make a layer pair up, in order, with the target's layer chain. A step
//! that changed nothing has no layer (as BuildKit drops empty layers), so its entry is marked
//! `empty_layer`.

use super::resolver;
use anyhow::{Context, Result};
use strata_cache::Digest;
use strata_cache::images::{ImageConfigFile, ImageStore, RootFs};
use strata_frontend::lower::Lowered;

/// Pairs history with the chain; returns the history (as JSON) and the diff IDs.
pub fn history_and_layers(
    history: &[strata_solver::image::HistoryEntry],
    base_history: &[serde_json::Value],
    chain: &[Option<Digest>],
    created: &str,
) -> (Vec<serde_json::Value>, Vec<Digest>) {
    let diff_ids: Vec<Digest> = chain.iter().flatten().cloned().collect();
    let with_layer = history.iter().filter(|h| !h.empty_layer).count();
    let aligned = with_layer == chain.len();
    let mut layers = chain.iter();
    let mut out = Vec::new();
    for (i, h) in history.iter().enumerate() {
        // Base image entries keep their own JSON (creation times and all).
        let mut v = match base_history.get(i) {
            Some(b) if b["created_by"].as_str().unwrap_or_default() == h.created_by => b.clone(),
            _ => {
                let mut v = serde_json::json!({ "created": created, "created_by": h.created_by });
                if !h.comment.is_empty() {
                    v["comment"] = h.comment.clone().into();
                }
                v
            }
        };
        let mut empty = h.empty_layer;
        if !h.empty_layer && aligned {
            empty = layers.next().is_some_and(|l| l.is_none());
        }
        if empty {
            v["empty_layer"] = true.into();
        } else if let Some(o) = v.as_object_mut() {
            o.remove("empty_layer");
        }
        out.push(v);
    }
    (out, diff_ids)
}

/// Records the image; returns its ID and manifest digest.
pub fn put_image(
    store: &mut ImageStore,
    lowered: &Lowered,
    chain: &[Option<Digest>],
    tags: &[String],
    now: i64,
) -> Result<(Digest, Option<Digest>)> {
    let created = crate::timefmt::rfc3339(now);
    let base_history: Vec<serde_json::Value> = match &lowered.target_stage.base {
        b if b == "scratch" => vec![],
        _ => lowered
            .graph
            .ops()
            .find_map(|(_, op)| {
                matches!(
                    &op.kind,
                    strata_solver::graph::OpKind::Source(
                        strata_solver::graph::SourceOp::Image { .. }
                    )
                )
                .then(|| resolver::find_image(store, op).ok())
                .flatten()
                .filter(|img| {
                    img.config.history.len() <= lowered.history.len()
                        && img
                            .config
                            .history
                            .iter()
                            .zip(&lowered.history)
                            .all(|(a, b)| {
                                a["created_by"].as_str().unwrap_or_default() == b.created_by
                            })
                })
                .map(|img| img.config.history.clone())
            })
            .unwrap_or_default(),
    };
    let (history, diff_ids) = history_and_layers(&lowered.history, &base_history, chain, &created);
    let config = ImageConfigFile {
        created: Some(created),
        author: (!lowered.author.is_empty()).then(|| lowered.author.clone()),
        architecture: lowered.platform.architecture.clone(),
        os: lowered.platform.os.clone(),
        variant: lowered.platform.variant.clone(),
        config: serde_json::to_value(&lowered.config).context("serializing the image config")?,
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        history,
        ..ImageConfigFile::default()
    };
    let id = store.put_image(&config, tags, now)?;
    let manifest = store
        .image(id.as_str())
        .ok()
        .and_then(|i| i.record.manifest_digest);
    Ok((id, manifest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_solver::image::HistoryEntry;

    fn h(c: &str, empty: bool) -> HistoryEntry {
        HistoryEntry {
            created_by: c.into(),
            comment: String::new(),
            empty_layer: empty,
        }
    }

    #[test]
    fn steps_that_changed_nothing_are_empty_layers() {
        let hist = vec![
            h("base", false),
            h("ENV A=1", true),
            h("WORKDIR /", false),
            h("RUN x", false),
        ];
        let d1 = Digest::of(b"1");
        let d2 = Digest::of(b"2");
        let chain = vec![Some(d1.clone()), None, Some(d2.clone())];
        let base =
            vec![serde_json::json!({"created": "2020-01-01T00:00:00Z", "created_by": "base"})];
        let (out, ids) = history_and_layers(&hist, &base, &chain, "now");
        assert_eq!(ids, vec![d1, d2]);
        assert_eq!(out[0]["created"], "2020-01-01T00:00:00Z");
        assert_eq!(out[1]["empty_layer"], true);
        assert_eq!(out[2]["empty_layer"], true);
        assert!(out[3].get("empty_layer").is_none());
        assert_eq!(out[3]["created"], "now");
    }
}
