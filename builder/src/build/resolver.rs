//! Base images in the local store: the frontend gets their config and history through
//! [`StoreResolver`] (which pulls, through [`BaseImages`], the ones the store lacks, or all
//! of them under `--pull`, as the Dockerfile is lowered), the build their layers through
//! [`find_image`].

use anyhow::{Result, bail};
use strata_cache::images::{Image, ImageStore};
use strata_frontend::lower::{ImageResolver, ResolveError, ResolvedImage};
use strata_solver::graph::{Op, OpKind, Platform, SourceOp};
use strata_solver::image::{HistoryEntry, ImageConfig};

/// Brings a base image (reference, platform) into the store: lazily, manifest and config.
pub type Puller = dyn Fn(&str, &Platform) -> anyhow::Result<()> + Send + Sync;

/// Where base images the store lacks come from.
#[derive(Default, Clone)]
pub struct BaseImages {
    /// `None`: the store only (a missing base image is an error).
    pub puller: Option<std::sync::Arc<Puller>>,
    /// `--pull`: every base image is pulled again, even when the store has it.
    pub always: bool,
}

pub struct StoreResolver<'a> {
    store: &'a ImageStore,
    bases: &'a BaseImages,
    /// The references pulled by this lowering (each is pulled once).
    pulled: std::cell::RefCell<Vec<(String, Platform)>>,
}

impl<'a> StoreResolver<'a> {
    pub fn new(store: &'a ImageStore, bases: &'a BaseImages) -> Self {
        StoreResolver {
            store,
            bases,
            pulled: Default::default(),
        }
    }

    /// Pulls `reference` unless this lowering did already.
    fn pull(&self, reference: &str, platform: &Platform) -> Result<bool, ResolveError> {
        let Some(puller) = &self.bases.puller else {
            return Ok(false);
        };
        let key = (reference.to_string(), platform.clone());
        if self.pulled.borrow().contains(&key) {
            return Ok(false);
        }
        self.pulled.borrow_mut().push(key);
        puller(reference, platform).map_err(|e| {
            ResolveError::new(format!(
                "base image {reference} is not in the local store and could not be pulled \
                 (`strata import` or `strata load` it, or check the registry): {e:#}"
            ))
        })?;
        Ok(true)
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
        platform: &Platform,
    ) -> Result<Option<ResolvedImage>, ResolveError> {
        if self.bases.always {
            self.pull(reference, platform)?;
        }
        let img = match lookup(self.store, reference) {
            Some(img) => img,
            None if self.pull(reference, platform)? => match lookup(self.store, reference) {
                Some(img) => img,
                None => return Ok(None),
            },
            None => return Ok(None),
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
