//! Registries: pulling images into the local store and pushing images from it, through the
//! network crate (`strata-registry`: the distribution API client, docker's credentials,
//! buildkitd-style host settings, HTTP fetches and Git), re-exported here.

pub use strata_registry::{auth, client, config, fetch, git};

use anyhow::{Context, Result, bail};
pub use client::{Client, RegistryError};
use strata_cache::Digest;
use strata_cache::images::ImageStore;
use strata_oci::media_type as mt;
use strata_oci::reference::Reference;
use strata_oci::{Descriptor, Document, ImageConfig};
use strata_solver::Platform;

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub image_id: Digest,
    /// The registry's manifest digest.
    pub manifest_digest: Digest,
    pub layers_downloaded: usize,
    pub bytes_downloaded: u64,
}

/// The compression a layer media type names.
fn compression_of(media_type: &str) -> Option<strata_cache::compress::Compression> {
    mt::layer_compression(media_type).map(strata_cache::compress::Compression::of_layer)
}

/// The largest image config read from a registry.
const MAX_CONFIG: u64 = 16 << 20;

/// Pulls `r` for `platform` into the store (layers already there are not downloaded again)
/// and names it `r` there. `say` gets one line per step.
pub fn pull(
    client: &Client,
    store: &mut ImageStore,
    r: &Reference,
    platform: &Platform,
    lazy: bool,
    say: &mut dyn FnMut(&str),
) -> Result<Pulled> {
    let repo = &r.path;
    let want = r
        .digest
        .clone()
        .or_else(|| r.tag.clone())
        .unwrap_or_else(|| "latest".into());
    let mut last_err = None;
    for ep in client.endpoints(&r.domain, true) {
        match pull_from(client, &ep, store, r, repo, &want, platform, lazy, say) {
            Ok(p) => return Ok(p),
            Err(e) => {
                tracing::debug!("{}: {e:#}", ep.base);
                say(&format!("{}: {e:#}", ep.base));
                last_err = Some(e);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no endpoint for {}", r.domain)))
}

/// A platform's image manifest, found through the indexes `want` names.
struct Resolved {
    bytes: Vec<u8>,
    media_type: String,
    digest: Digest,
    manifest: strata_oci::Manifest,
    /// The outermost index (bytes, media type) and the digest of its entry that led to the
    /// manifest, when `want` named an index.
    top_index: Option<(Vec<u8>, String, Digest)>,
}

/// Follows `want` to the image manifest for `platform` (through nested indexes, at most
/// four deep).
fn resolve_manifest(
    client: &Client,
    ep: &client::Endpoint,
    r: &Reference,
    repo: &str,
    want: &str,
    platform: &Platform,
) -> Result<Resolved> {
    let (mut bytes, mut media_type, mut digest) = client.get_manifest(ep, repo, want)?;
    // An index (a multi-platform image, perhaps nested): the entry for the platform. The
    // outermost index is kept, so the image is multi-platform in the store too.
    let mut top_index: Option<(Vec<u8>, String, Digest)> = None;
    let mut depth = 0;
    let m = loop {
        match Document::parse(&bytes, Some(&media_type)).with_context(|| format!("{r}"))? {
            Document::Manifest(m) => {
                m.check_image().with_context(|| format!("{r}"))?;
                break m;
            }
            Document::Index(idx) => {
                depth += 1;
                if depth > 4 {
                    bail!("{r}: image indexes nested more than 4 deep");
                }
                let pick = idx.select(platform).with_context(|| format!("{r}"))?;
                if depth == 1 {
                    let declared = if media_type.is_empty() {
                        idx.media_type.clone()
                    } else {
                        media_type.clone()
                    };
                    top_index = Some((bytes.clone(), declared, pick.digest.clone()));
                }
                let d = pick.digest.to_string();
                (bytes, media_type, digest) = client.get_manifest(ep, repo, &d)?;
                if media_type.is_empty() {
                    media_type = pick.media_type.clone();
                }
            }
        }
    };
    if media_type.is_empty() {
        media_type = if m.media_type.is_empty() {
            mt::OCI_MANIFEST.to_string()
        } else {
            m.media_type.clone()
        };
    }
    Ok(Resolved {
        bytes,
        media_type,
        digest,
        manifest: m,
        top_index,
    })
}

#[allow(clippy::too_many_arguments)]
fn pull_from(
    client: &Client,
    ep: &client::Endpoint,
    store: &mut ImageStore,
    r: &Reference,
    repo: &str,
    want: &str,
    platform: &Platform,
    lazy: bool,
    say: &mut dyn FnMut(&str),
) -> Result<Pulled> {
    let Resolved {
        bytes,
        media_type,
        digest,
        manifest: m,
        top_index,
    } = resolve_manifest(client, ep, r, repo, want, platform)?;
    let config_digest = m.config.digest.clone();
    if m.config.size > MAX_CONFIG {
        bail!(
            "{r}: its image config is {} bytes, more than the limit of {MAX_CONFIG}",
            m.config.size
        );
    }
    let mut capped = crate::bounded::CappedWriter::new(MAX_CONFIG);
    client
        .get_blob(ep, repo, &config_digest, &mut capped)
        .context("the image config")?;
    let config_bytes = capped.into_inner();
    let config = ImageConfig::parse(&config_bytes).with_context(|| format!("{r}"))?;
    let layers = m.layers.clone();
    if layers.len() != config.rootfs.diff_ids.len() {
        bail!(
            "{r}: the manifest lists {} layers, the config {}",
            layers.len(),
            config.rootfs.diff_ids.len()
        );
    }
    // What is missing: downloaded now, or (lazy) only recorded with where to fetch it.
    let mut todo = Vec::new();
    for (l, diff_id) in layers.iter().zip(&config.rootfs.diff_ids) {
        if store.meta.layer(diff_id)?.is_some() && store.layer_available(diff_id) {
            continue;
        }
        if !mt::is_layer(&l.media_type) {
            bail!(
                "{r}: layer {} has media type {:?}, which is not a filesystem layer",
                l.digest,
                l.media_type
            );
        }
        todo.push(Missing {
            blob: l.digest.clone(),
            media_type: l.media_type.clone(),
            size: l.size,
            diff_id: diff_id.clone(),
        });
    }
    let total = todo.len();
    let mut bytes_downloaded = 0;
    // Where each layer can be fetched from (lazily, or to mount it when pushing).
    for (l, diff_id) in layers.iter().zip(&config.rootfs.diff_ids) {
        store.meta.put_layer_source(
            diff_id,
            &strata_cache::metadata::LayerSource {
                host: r.domain.clone(),
                repo: repo.to_string(),
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
                size: l.size,
            },
        )?;
    }
    if lazy {
        for m in &todo {
            store.meta.put_layer(&strata_cache::metadata::LayerRecord {
                diff_id: m.diff_id.clone(),
                blob_digest: None,
                media_type: Some(m.media_type.clone()),
                size: m.size,
                snapshot: None,
            })?;
        }
        say(&format!(
            "{r}: resolved ({total} layers fetched when a step needs them)"
        ));
    } else {
        say(&format!(
            "{r}: {total} of {} layers to download",
            layers.len()
        ));
        bytes_downloaded = fetch_layers(client, store, ep, repo, &todo, say)?;
    }
    let now = crate::timefmt::now();
    let tags = [r.to_string()];
    let image_id = store.put_distributed_image(
        &config_bytes,
        Some((&bytes, &media_type)),
        if top_index.is_some() { &[] } else { &tags },
        now,
    )?;
    if let Some((index_bytes, index_type, entry)) = &top_index {
        // The image is the index's entry that led to it (itself an index, when nested).
        store.put_distributed_index(
            index_bytes,
            index_type,
            &[(entry.clone(), image_id.clone())],
            &tags,
            now,
        )?;
    }
    Ok(Pulled {
        image_id,
        manifest_digest: digest,
        layers_downloaded: total,
        bytes_downloaded,
    })
}

/// A layer to fetch: its blob and the diff ID it must unpack to.
struct Missing {
    blob: Digest,
    media_type: String,
    size: u64,
    diff_id: Digest,
}

/// Downloads layers (up to four at once, each verified), imports them (each must unpack to its
/// diff ID) and keeps the blobs as distributed. Returns the bytes downloaded.
fn fetch_layers(
    client: &Client,
    store: &mut ImageStore,
    ep: &client::Endpoint,
    repo: &str,
    todo: &[Missing],
    say: &mut dyn FnMut(&str),
) -> Result<u64> {
    let tmps = todo
        .iter()
        .map(|_| store.content.temp_file())
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let jobs: Vec<(&Missing, &tempfile::NamedTempFile)> = todo.iter().zip(&tmps).collect();
    let per = jobs.len().div_ceil(4).max(1);
    let results: Vec<Result<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(per)
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(m, t)| {
                            let mut w = std::io::BufWriter::new(t.as_file());
                            let n = client.get_blob(ep, repo, &m.blob, &mut w)?;
                            std::io::Write::flush(&mut w)?;
                            Ok(n)
                        })
                        .collect::<Vec<Result<u64>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(anyhow::anyhow!("a download thread panicked"))])
            })
            .collect()
    });
    let mut bytes = 0;
    for r in results {
        bytes += r?;
    }
    for (m, tmp) in todo.iter().zip(tmps) {
        let f = std::fs::File::open(tmp.path())?;
        let rec = store
            .import_layer(f, &strata_cache::sys::RealFs, &Default::default())
            .with_context(|| format!("layer {}", m.blob))?;
        if rec.diff_id != m.diff_id {
            bail!(
                "layer {} unpacks to {}, the config says {}",
                m.blob,
                rec.diff_id,
                m.diff_id
            );
        }
        // Keep the blob as distributed: pushing it again needs no compression.
        if let Some(c) = compression_of(&m.media_type)
            && c != strata_cache::compress::Compression::Uncompressed
        {
            let size = std::fs::metadata(tmp.path())?.len();
            store.content.commit(tmp, &m.blob)?;
            store
                .meta
                .put_layer_blob(&m.diff_id, c.name(), -1, &m.blob, size)?;
        }
        say(&format!("{repo}: layer {} done", &m.blob.hex()[..12]));
    }
    Ok(bytes)
}

/// Fetches the layers among `diff_ids` that were pulled lazily and have no snapshot yet.
/// Returns how many were fetched.
pub fn ensure_layers(
    client: &Client,
    store: &mut ImageStore,
    diff_ids: &[Digest],
    say: &mut dyn FnMut(&str),
) -> Result<usize> {
    let mut groups: std::collections::BTreeMap<(String, String), Vec<Missing>> = Default::default();
    for d in diff_ids {
        if store.snapshot_dir(d).is_dir() {
            continue;
        }
        let src = store.meta.layer_source(d)?.with_context(|| {
            format!("layer {d} has no snapshot and nowhere to fetch it from: pull the image again")
        })?;
        let g = groups
            .entry((src.host.clone(), src.repo.clone()))
            .or_default();
        if !g.iter().any(|m| m.diff_id == *d) {
            g.push(Missing {
                blob: src.digest,
                media_type: src.media_type,
                size: src.size,
                diff_id: d.clone(),
            });
        }
    }
    let mut n = 0;
    for ((host, repo), todo) in groups {
        let mut last = None;
        for ep in client.endpoints(&host, true) {
            match fetch_layers(client, store, &ep, &repo, &todo, say) {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(e.context(format!("fetching layers of {host}/{repo}")));
        }
        n += todo.len();
    }
    Ok(n)
}

/// The OCI media type of a layer media type (Docker's gzip tar → OCI's).
fn oci_layer_type(media_type: &str) -> String {
    match compression_of(media_type) {
        Some(c) if !matches!(mt::kind(media_type), mt::Kind::Layer { foreign: true, .. }) => {
            c.oci_media_type().to_string()
        }
        _ => media_type.to_string(),
    }
}

/// Pushes a stored image to `r` (gzip layers, OCI manifest); blobs the registry has are
/// skipped. Returns the manifest digest.
pub fn push(
    client: &Client,
    store: &mut ImageStore,
    image: &str,
    r: &Reference,
    fmt: &crate::export::Format,
    keep_distributed: bool,
    say: &mut dyn FnMut(&str),
) -> Result<Digest> {
    push_manifest(client, store, image, r, fmt, keep_distributed, false, say)
        .map(|m| m.manifest_digest)
}

/// Pushes a multi-platform image: each member (blobs, then its manifest by digest), then
/// the index of them under `r`'s tag (an OCI index, or a Docker manifest list with Docker
/// media types). With the index it was pulled or loaded with (`distributed`), members go
/// with their own manifests and, when the index names every one of them, that index goes as
/// it is, so the digests stay. Returns the index digest.
#[allow(clippy::too_many_arguments)]
pub fn push_index(
    client: &Client,
    store: &mut ImageStore,
    members: &[Digest],
    distributed: Option<(&[u8], &str)>,
    r: &Reference,
    fmt: &crate::export::Format,
    say: &mut dyn FnMut(&str),
) -> Result<Digest> {
    let mut entries = Vec::new();
    for id in members {
        let keep = distributed.is_some();
        let m = push_manifest(client, store, id.as_str(), r, fmt, keep, true, say)?;
        let mut d = Descriptor::new(
            &m.media_type,
            m.manifest_digest.clone(),
            m.manifest.len() as u64,
        );
        d.platform = Some(m.platform.clone());
        entries.push(d);
    }
    let kept =
        distributed.filter(
            |(bytes, media_type)| match Document::parse(bytes, Some(media_type)) {
                Ok(Document::Index(i)) => entries
                    .iter()
                    .all(|e| i.manifests.iter().any(|d| d.digest == e.digest)),
                _ => false,
            },
        );
    let (bytes, digest, media_type) = match kept {
        Some((b, media_type)) => (b.to_vec(), Digest::of(b), media_type.to_string()),
        None => {
            let (b, d, m) = crate::export::index_document(entries, fmt);
            (b, d, m.to_string())
        }
    };
    let ep = client
        .endpoints(&r.domain, false)
        .pop()
        .context("no endpoint")?;
    let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
    client
        .put_manifest(&ep, &r.path, &tag, &bytes, &media_type)
        .context("pushing the image index")?;
    say(&format!("{tag}: digest: {digest} size: {}", bytes.len()));
    Ok(digest)
}

/// Pushes one image's blobs and manifest (under `r`'s tag, or by digest for an index's
/// member); returns the manifest pushed.
#[allow(clippy::too_many_arguments)]
fn push_manifest(
    client: &Client,
    store: &mut ImageStore,
    image: &str,
    r: &Reference,
    fmt: &crate::export::Format,
    keep_distributed: bool,
    by_digest: bool,
    say: &mut dyn FnMut(&str),
) -> Result<crate::export::Manifested> {
    let img = store.image(image)?;
    // Layers pulled from this registry keep their blob there: mounted, never downloaded.
    let mut sources = std::collections::BTreeMap::new();
    for d in &img.config.rootfs.diff_ids {
        if let Some(s) = store.meta.layer_source(d)?
            && s.host == r.domain
        {
            sources.insert(d.clone(), s);
        }
    }
    let lazy: Vec<Digest> = img
        .config
        .rootfs
        .diff_ids
        .iter()
        .filter(|d| !store.snapshot_dir(d).is_dir() && !sources.contains_key(*d))
        .cloned()
        .collect();
    ensure_layers(client, store, &lazy, say)?;
    // Layers with no snapshot here keep the blob they have in this registry.
    let given: std::collections::BTreeMap<Digest, Descriptor> = sources
        .iter()
        .filter(|(d, _)| !store.snapshot_dir(d).is_dir())
        .map(|(d, s)| {
            let desc = Descriptor::new(&oci_layer_type(&s.media_type), s.digest.clone(), s.size);
            (d.clone(), desc)
        })
        .collect();
    let distributed = if keep_distributed {
        distributed_manifest(store, &img)?
    } else {
        None
    };
    let m = match distributed {
        Some(m) => m,
        None => crate::export::manifest_with(store, &img, fmt, &|d| given.get(d).cloned())?,
    };
    let mount_from: std::collections::BTreeMap<Digest, String> = img
        .config
        .rootfs
        .diff_ids
        .iter()
        .zip(&m.layers)
        .filter_map(|(d, l)| {
            sources
                .get(d)
                .filter(|s| s.digest == l.digest && s.repo != r.path)
                .map(|s| (l.digest.clone(), s.repo.clone()))
        })
        .collect();
    let ep = client
        .endpoints(&r.domain, false)
        .pop()
        .context("no endpoint")?;
    let repo = &r.path;
    let mut blobs: Vec<&Descriptor> = m.layers.iter().collect();
    blobs.push(&m.config);
    for b in blobs {
        let short = &b.digest.hex()[..12];
        if !b.urls.is_empty()
            && matches!(
                mt::kind(&b.media_type),
                mt::Kind::Layer { foreign: true, .. }
            )
        {
            // As docker: a non-distributable layer stays where its URLs say.
            say(&format!(
                "{short}: non-distributable, not pushed (at {})",
                b.urls.join(", ")
            ));
            continue;
        }
        if client.has_blob(&ep, repo, &b.digest)? {
            say(&format!("{short}: already in {}", r.domain));
            continue;
        }
        if let Some(from) = mount_from.get(&b.digest)
            && client.mount_blob(&ep, repo, &b.digest, from)?
        {
            say(&format!("{short}: mounted from {from}"));
            continue;
        }
        if !store.content.exists(&b.digest) {
            // A lazily pulled layer the registry would not mount: fetch it first.
            let d = img
                .config
                .rootfs
                .diff_ids
                .iter()
                .zip(&m.layers)
                .find(|(_, l)| l.digest == b.digest)
                .map(|(d, _)| d.clone())
                .context("a blob of no layer")?;
            ensure_layers(client, store, &[d], say)?;
        }
        let path = if b.digest == m.config.digest {
            // The config exactly as stored: its digest is the image ID.
            store.content.path(&img.record.config_digest)
        } else {
            store.content.path(&b.digest)
        };
        client
            .put_blob(&ep, repo, &b.digest, &path)
            .with_context(|| format!("pushing blob {}", b.digest))?;
        say(&format!("{short}: pushed {} bytes", b.size));
    }
    let tag = if by_digest {
        m.manifest_digest.to_string()
    } else {
        r.tag.clone().unwrap_or_else(|| "latest".into())
    };
    client
        .put_manifest(&ep, repo, &tag, &m.manifest, &m.media_type)
        .context("pushing the manifest")?;
    say(&format!(
        "{}: digest: {} size: {}",
        tag,
        m.manifest_digest,
        m.manifest.len()
    ));
    Ok(m)
}

/// The manifest the image was pulled or loaded with, when every blob it names can be pushed
/// as it is (held here, or fetchable from where it was pulled, or non-distributable).
fn distributed_manifest(
    store: &ImageStore,
    img: &strata_cache::images::Image,
) -> Result<Option<crate::export::Manifested>> {
    let Some((bytes, media_type)) = store.distributed_manifest(&img.record.id)? else {
        return Ok(None);
    };
    let m = Document::parse_image_manifest(&bytes, Some(&media_type))?;
    if m.config.digest != img.record.config_digest
        || m.layers.len() != img.config.rootfs.diff_ids.len()
    {
        return Ok(None);
    }
    for (l, d) in m.layers.iter().zip(&img.config.rootfs.diff_ids) {
        let foreign = matches!(
            mt::kind(&l.media_type),
            mt::Kind::Layer { foreign: true, .. }
        );
        let held = store.content.exists(&l.digest);
        let fetchable = store
            .meta
            .layer_source(d)?
            .is_some_and(|s| s.digest == l.digest);
        if !(held || fetchable || (foreign && !l.urls.is_empty())) {
            return Ok(None);
        }
    }
    Ok(Some(crate::export::Manifested {
        manifest_digest: Digest::of(&bytes),
        manifest: bytes,
        media_type,
        config: m.config.clone(),
        layers: m.layers.clone(),
        tags: img.record.tags.clone(),
        platform: img.config.platform(),
    }))
}
