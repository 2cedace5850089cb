//! Base images in the local store: the frontend gets their config and history through
//! [`StoreResolver`] (which pulls, through [`BaseImages`], the ones the store lacks, or all
//! of them under `--pull`, as the Dockerfile is lowered), the build their layers through
//! [`find_image`].

use anyhow::{Result, bail};
use strata_cache::images::ForPlatform;
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

/// What the store has for a base image on a platform.
enum Found {
    Image(Box<Image>),
    /// The reference is here, but not for the platform: why.
    Elsewhere(String),
    Nothing,
}

/// `reference` (normalized by the frontend, e.g. `docker.io/library/busybox:latest`) in the
/// store for `platform`: a multi-platform image's member for it, or a single image that runs
/// on it; by tag or by digest.
fn lookup(store: &ImageStore, reference: &str, platform: &Platform) -> Found {
    let digest = reference.split_once('@').map(|(_, d)| d);
    let index = store
        .index(reference)
        .ok()
        .flatten()
        .or_else(|| digest.and_then(|d| store.index(d).ok().flatten()));
    if let Some(idx) = index {
        return match store.index_member_for(&idx.record, platform) {
            Ok(ForPlatform::Image(i)) => Found::Image(i),
            Ok(ForPlatform::NotHere { .. }) => Found::Elsewhere(format!(
                "the local store has {reference} without its {platform} image"
            )),
            Ok(ForPlatform::NoMatch(have)) => Found::Elsewhere(format!(
                "{reference} has no image for {platform} (it has {})",
                have.join(", ")
            )),
            Err(e) => Found::Elsewhere(e.to_string()),
        };
    }
    let single = store.image(reference).ok().or_else(|| {
        // `name@sha256:…`: the ID or manifest digest of a stored image.
        let digest = digest?;
        store.meta.images().ok()?.into_iter().find_map(|r| {
            let hit = r.id.as_str() == digest
                || r.manifest_digest
                    .as_ref()
                    .is_some_and(|m| m.as_str() == digest);
            if hit {
                store.image(r.id.as_str()).ok()
            } else {
                None
            }
        })
    });
    match single {
        Some(i) if runs_on(&i, platform) => Found::Image(Box::new(i)),
        Some(i) => Found::Elsewhere(format!(
            "{reference} in the local store is a {} image, not {platform}",
            i.config.platform()
        )),
        None => Found::Nothing,
    }
}

/// Whether a machine of `platform` runs `img` (an image that names no architecture does).
fn runs_on(img: &Image, platform: &Platform) -> bool {
    img.config.architecture.is_empty() || platform.rank(&img.config.platform()).is_some()
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
        let img = match lookup(self.store, reference, platform) {
            Found::Image(img) => img,
            Found::Elsewhere(why) => {
                if !self.pull(reference, platform)? {
                    return Err(ResolveError::new(format!(
                        "{why}: pull it for {platform} (`strata pull --platform {platform} {reference}`) or import it (`strata import --platform {platform} ROOTFS.tar NAME`)"
                    )));
                }
                match lookup(self.store, reference, platform) {
                    Found::Image(img) => img,
                    Found::Elsewhere(why) => return Err(ResolveError::new(why)),
                    Found::Nothing => return Ok(None),
                }
            }
            Found::Nothing if self.pull(reference, platform)? => {
                match lookup(self.store, reference, platform) {
                    Found::Image(img) => img,
                    Found::Elsewhere(why) => return Err(ResolveError::new(why)),
                    Found::Nothing => return Ok(None),
                }
            }
            Found::Nothing => return Ok(None),
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
    let OpKind::Source(SourceOp::Image {
        reference,
        platform,
        resolved_digest,
    }) = &op.kind
    else {
        bail!("{} is not an image", op.name);
    };
    // The image the frontend resolved the stage's config from.
    if let Some(id) = resolved_digest
        && let Ok(img) = store.image(id)
    {
        return Ok(img);
    }
    match lookup(store, reference, platform) {
        Found::Image(i) => Ok(*i),
        Found::Elsewhere(why) => bail!("{why}"),
        Found::Nothing => bail!(
            "base image {reference} is not in the local store: pull it (`strata pull {reference}`), \
             load it (`strata load`) or import a root filesystem (`strata import ROOTFS.tar NAME`)"
        ),
    }
}
