//! Base images in the local store (the build pulls the ones it lacks before it lowers the
//! Dockerfile): the frontend gets their config and history through [`StoreResolver`], the build
//! their layers through [`find_image`].

use anyhow::{Result, bail};
use strata_cache::images::{Image, ImageStore};
use strata_frontend::lower::{ImageResolver, ResolveError, ResolvedImage};
use strata_solver::graph::{Op, OpKind, Platform, SourceOp};
use strata_solver::image::{HistoryEntry, ImageConfig};

pub struct StoreResolver<'a> {
    store: &'a ImageStore,
}

impl<'a> StoreResolver<'a> {
    pub fn new(store: &'a ImageStore) -> Self {
        StoreResolver { store }
    }
}

/// `reference` (normalized by the frontend, e.g. `docker.io/library/busybox:latest`) in the
/// store, by tag or by digest.
fn lookup(store: &ImageStore, reference: &str) -> Option<Image> {
    if let Ok(i) = store.image(reference) {
        return Some(i);
    }
    // `name@sha256:…`: the ID or manifest digest of a stored image.
    if let Some((_, digest)) = reference.split_once('@') {
        return store.meta.images().ok()?.into_iter().find_map(|r| {
            let hit = r.id.as_str() == digest
                || r.manifest_digest
                    .as_ref()
                    .is_some_and(|m| m.as_str() == digest);
            if hit {
                store.image(r.id.as_str()).ok()
            } else {
                None
            }
        });
    }
    None
}

impl ImageResolver for StoreResolver<'_> {
    fn resolve(
        &self,
        reference: &str,
        _platform: &Platform,
    ) -> Result<Option<ResolvedImage>, ResolveError> {
        let Some(img) = lookup(self.store, reference) else {
            return Ok(None);
        };
        // What BuildKit reads of a base: the fields its image model names (Docker's others,
        // `Hostname`, `Image`, …, are not carried into the images built on it).
        let config = ImageConfig {
            extra: Default::default(),
            ..img.config.config.clone()
        };
        let history = img
            .config
            .history
            .iter()
            .map(|h| HistoryEntry {
                extra: Default::default(),
                ..h.clone()
            })
            .collect();
        Ok(Some(ResolvedImage {
            config,
            history,
            author: img.config.author.clone().unwrap_or_default(),
            digest: Some(img.record.id.as_str().to_string()),
            platform: Some(img.config.platform()),
        }))
    }
}

/// The stored image an image source op names.
pub fn find_image(store: &ImageStore, op: &Op) -> Result<Image> {
    let OpKind::Source(SourceOp::Image { reference, .. }) = &op.kind else {
        bail!("{} is not an image", op.name);
    };
    match lookup(store, reference) {
        Some(i) => Ok(i),
        None => bail!(
            "base image {reference} is not in the local store: pull it (`strata pull {reference}`), \
             load it (`strata load`) or import a root filesystem (`strata import ROOTFS.tar NAME`)"
        ),
    }
}

/// The base images a Dockerfile's target needs (reference and platform), found by lowering
/// it once with a resolver that only records what it is asked.
pub fn base_images(
    dockerfile: &str,
    opts: &strata_frontend::lower::BuildOptions,
) -> Vec<(String, Platform)> {
    struct Recorder(std::cell::RefCell<Vec<(String, Platform)>>);
    impl ImageResolver for Recorder {
        fn resolve(
            &self,
            reference: &str,
            platform: &Platform,
        ) -> Result<Option<ResolvedImage>, ResolveError> {
            let mut v = self.0.borrow_mut();
            if !v.iter().any(|(r, p)| r == reference && p == platform) {
                v.push((reference.to_string(), platform.clone()));
            }
            Ok(None)
        }
    }
    let rec = Recorder(Default::default());
    let _ = strata_frontend::lower::lower(dockerfile, opts, &rec);
    rec.0.into_inner()
}

/// Whether the store has `reference`.
pub fn is_local(store: &ImageStore, reference: &str) -> bool {
    lookup(store, reference).is_some()
}
