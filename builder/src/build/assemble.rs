//! The target's layers, config and history as an image in the local store.
//!
//! History entries that make a layer pair up, in order, with the target's layer chain. A step
//! that changed nothing has no layer (as BuildKit drops empty layers), so its entry is marked
//! `empty_layer`.

use super::resolver;
use anyhow::Result;
use strata_cache::Digest;
use strata_cache::images::{ImageConfig, ImageStore, RootFs};
use strata_frontend::lower::Lowered;
use strata_oci::config::History;

/// Pairs history with the chain; returns the history and the diff IDs.
pub fn history_and_layers(
    history: &[History],
    base_history: &[History],
    chain: &[Option<Digest>],
    created: &str,
) -> (Vec<History>, Vec<Digest>) {
    let diff_ids: Vec<Digest> = chain.iter().flatten().cloned().collect();
    let with_layer = history.iter().filter(|h| !h.empty_layer).count();
    let aligned = with_layer == chain.len();
    let mut layers = chain.iter();
    let mut out = Vec::new();
    for (i, h) in history.iter().enumerate() {
        // Base image entries keep their own (creation times and all).
        let mut v = match base_history.get(i) {
            Some(b) if b.created_by == h.created_by => History {
                extra: Default::default(),
                ..b.clone()
            },
            _ => History {
                created: Some(created.to_string()),
                created_by: h.created_by.clone(),
                comment: h.comment.clone(),
                ..Default::default()
            },
        };
        let mut empty = h.empty_layer;
        if !h.empty_layer && aligned {
            empty = layers.next().is_some_and(|l| l.is_none());
        }
        v.empty_layer = empty;
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
    let base_history: Vec<History> = match &lowered.target_stage.base {
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
                            .all(|(a, b)| a.created_by == b.created_by)
                })
                .map(|img| img.config.history.clone())
            })
            .unwrap_or_default(),
    };
    let (history, diff_ids) = history_and_layers(&lowered.history, &base_history, chain, &created);
    let config = ImageConfig {
        created: Some(created),
        author: (!lowered.author.is_empty()).then(|| lowered.author.clone()),
        architecture: lowered.platform.architecture.clone(),
        os: lowered.platform.os.clone(),
        variant: lowered.platform.variant.clone(),
        config: lowered.config.clone(),
        rootfs: RootFs::layers(diff_ids),
        history,
        ..ImageConfig::default()
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
    fn h(c: &str, empty: bool) -> History {
        History {
            created_by: c.into(),
            empty_layer: empty,
            ..Default::default()
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
        let base = vec![History {
            created: Some("2020-01-01T00:00:00Z".into()),
            ..h("base", false)
        }];
        let (out, ids) = history_and_layers(&hist, &base, &chain, "now");
        assert_eq!(ids, vec![d1, d2]);
        assert_eq!(out[0].created.as_deref(), Some("2020-01-01T00:00:00Z"));
        assert!(out[1].empty_layer);
        assert!(out[2].empty_layer);
        assert!(!out[3].empty_layer);
        assert_eq!(out[3].created.as_deref(), Some("now"));
    }
}
