//! Space accounting (`strata du`) and garbage collection (`strata prune`).
//!
//! Layers are kept while an image or a build cache entry refers to them. Pruning removes build
//! cache entries (by default those whose layers no image uses — entries entirely inside images
//! cost nothing and keep rebuilds fast; with `all`, every entry and the untagged images), oldest
//! first, then every layer nothing refers to any more. The caller holds the root lock
//! exclusively ([`crate::lock::RootLock`]).

use crate::Digest;
use crate::images::{ImageError, ImageStore};
use std::collections::{BTreeMap, BTreeSet};

/// What the store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub images: usize,
    /// Images without a tag.
    pub dangling_images: usize,
    /// Bytes of the layers images use (each layer counted once).
    pub image_bytes: u64,
    /// Layers more than one image uses, and their bytes (stored once).
    pub shared_layers: usize,
    pub shared_bytes: u64,
    pub cache_entries: usize,
    /// Bytes of layers only the build cache refers to (what `prune` can free).
    pub cache_only_bytes: u64,
    pub layers: usize,
    pub layer_bytes: u64,
    /// Writes in progress or left by a killed strata (`<root>/tmp`).
    pub tmp: crate::store::TmpUsage,
}

pub fn usage(store: &ImageStore) -> Result<Usage, ImageError> {
    let images = store.meta.images()?;
    let layers = store.meta.layers()?;
    let size: BTreeMap<&Digest, u64> = layers.iter().map(|l| (&l.diff_id, l.size)).collect();
    let mut users: BTreeMap<Digest, BTreeSet<Digest>> = BTreeMap::new();
    for i in &images {
        for l in &i.layers {
            users.entry(l.clone()).or_default().insert(i.id.clone());
        }
    }
    let cache = store.meta.cache_entries()?;
    let cached: BTreeSet<&Digest> = cache
        .iter()
        .flat_map(|e| e.layers.iter().flatten())
        .collect();
    let mut u = Usage {
        images: images.len(),
        dangling_images: {
            let in_indexes = store.meta.images_in_indexes()?;
            images
                .iter()
                .filter(|i| i.tags.is_empty() && !in_indexes.contains(&i.id))
                .count()
        },
        cache_entries: cache.len(),
        layers: layers.len(),
        layer_bytes: layers.iter().map(|l| l.size).sum(),
        tmp: store.content.tmp_usage()?,
        ..Usage::default()
    };
    for (d, who) in &users {
        let s = size.get(d).copied().unwrap_or(0);
        u.image_bytes += s;
        if who.len() > 1 {
            u.shared_layers += 1;
            u.shared_bytes += s;
        }
    }
    u.cache_only_bytes = cached
        .iter()
        .filter(|d| !users.contains_key(**d))
        .map(|d| size.get(*d).copied().unwrap_or(0))
        .sum();
    Ok(u)
}

#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Every cache entry, and untagged images.
    pub all: bool,
    /// Stop once the layers only the cache refers to take at most this many bytes.
    pub keep_storage: Option<u64>,
    /// Only entries not used for this many seconds.
    pub until_secs: Option<i64>,
    /// Why, for the eviction records (`prune`, the gc policy).
    pub why: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub entries: usize,
    pub images: usize,
    pub layers: usize,
    /// Bytes of the layers removed.
    pub bytes: u64,
    /// Leftovers of interrupted writes removed from `<root>/tmp`.
    pub tmp: crate::store::TmpCleaned,
}

pub fn prune(
    store: &mut ImageStore,
    opts: &PruneOptions,
    now: i64,
) -> Result<PruneReport, ImageError> {
    let mut report = PruneReport::default();
    if opts.all {
        let in_indexes = store.meta.images_in_indexes()?;
        for img in store.meta.images()? {
            if img.tags.is_empty() && !in_indexes.contains(&img.id) {
                store.remove(img.id.as_str(), true)?;
                report.images += 1;
            }
        }
    }
    let in_images: BTreeSet<Digest> = store
        .meta
        .images()?
        .into_iter()
        .flat_map(|i| i.layers)
        .collect();
    let sizes: BTreeMap<Digest, u64> = store
        .meta
        .layers()?
        .into_iter()
        .map(|l| (l.diff_id, l.size))
        .collect();
    let entries = store.meta.cache_entries()?; // least recently used first
    // Bytes only the cache keeps, with how many entries refer to each such layer.
    let mut refs: BTreeMap<Digest, usize> = BTreeMap::new();
    for e in &entries {
        for d in e.layers.iter().flatten() {
            if !in_images.contains(d) {
                *refs.entry(d.clone()).or_default() += 1;
            }
        }
    }
    let mut cache_only: u64 = refs
        .keys()
        .map(|d| sizes.get(d).copied().unwrap_or(0))
        .sum();
    let mut remove = Vec::new();
    for e in &entries {
        let (key, layers, last_used) = (&e.key, &e.layers, e.last_used);
        if let Some(keep) = opts.keep_storage
            && cache_only <= keep
        {
            break;
        }
        if let Some(until) = opts.until_secs
            && now - last_used < until
        {
            continue;
        }
        let costs = layers.iter().flatten().any(|d| !in_images.contains(d));
        if !opts.all && !costs {
            continue;
        }
        for d in layers.iter().flatten() {
            if let Some(n) = refs.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    cache_only -= sizes.get(d).copied().unwrap_or(0);
                }
            }
        }
        remove.push(key.clone());
    }
    store.meta.evict(&remove, now, Some(&opts.why))?;
    report.entries = remove.len();
    // Layers nothing refers to any more.
    let still: BTreeSet<Digest> = store
        .meta
        .cache_entries()?
        .into_iter()
        .flat_map(|e| e.layers.into_iter().flatten())
        .collect();
    for l in store.meta.layers()? {
        if in_images.contains(&l.diff_id) || still.contains(&l.diff_id) {
            continue;
        }
        if store.meta.delete_unused_layer(&l.diff_id)? {
            store.remove_layer_files(&l)?;
            report.layers += 1;
            report.bytes += l.size;
        }
    }
    // Leftovers of interrupted writes: every entry no live process holds (whoever writes
    // holds the root lock too, so none is about to be locked).
    report.tmp = store.content.clean_tmp(std::time::Duration::ZERO)?;
    // Per-key lock files of builds (none runs: the caller holds the root lock exclusively).
    let _ = std::fs::remove_dir_all(store.root().join("locks"));
    Ok(report)
}
