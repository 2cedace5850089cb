//! Registries: pulling images into the local store and pushing images from it, through the
//! OCI distribution API ([`client`]), with docker's credentials ([`auth`]) and buildkitd-style
//! host settings ([`config`]).

pub mod auth;
pub mod client;
pub mod config;
pub mod fetch;
pub mod git;

use anyhow::{Context, Result, bail};
pub use client::{Client, RegistryError};
use strata_cache::Digest;
use strata_cache::images::{ImageConfigFile, ImageStore};
use strata_solver::Platform;
use strata_solver::reference::Reference;

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub image_id: Digest,
    /// The registry's manifest digest.
    pub manifest_digest: Digest,
    pub layers_downloaded: usize,
    pub bytes_downloaded: u64,
}

fn is_index(media_type: &str) -> bool {
    media_type.ends_with("image.index.v1+json") || media_type.ends_with("manifest.list.v2+json")
}

/// The compression a layer media type names.
fn compression_of(media_type: &str) -> Option<strata_cache::compress::Compression> {
    use strata_cache::compress::Compression;
    if media_type.ends_with("+gzip") || media_type.ends_with(".tar.gzip") {
        Some(Compression::Gzip)
    } else if media_type.ends_with("+zstd") {
        Some(Compression::Zstd)
    } else if media_type.ends_with(".tar") || media_type.ends_with("diff.tar") {
        Some(Compression::Uncompressed)
    } else {
        None
    }
}

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
    let (mut bytes, mut mt, mut digest) = client.get_manifest(ep, repo, want)?;
    if is_index(&mt) {
        let idx: serde_json::Value =
            serde_json::from_slice(&bytes).context("the image index is not JSON")?;
        let pick = idx["manifests"]
            .as_array()
            .context("an image index without manifests")?
            .iter()
            .find(|m| {
                let p = &m["platform"];
                p["os"] == platform.os.as_str()
                    && p["architecture"] == platform.architecture.as_str()
                    && (platform.variant.is_none()
                        || p["variant"].as_str() == platform.variant.as_deref())
            })
            .with_context(|| format!("{r} has no image for {platform}"))?;
        let d = pick["digest"]
            .as_str()
            .context("an index entry without a digest")?;
        (bytes, mt, digest) = client.get_manifest(ep, repo, d)?;
    }
    let m: serde_json::Value =
        serde_json::from_slice(&bytes).context("the manifest is not JSON")?;
    if is_index(&mt) || m["config"].is_null() {
        bail!("{r}: unexpected manifest type {mt:?}");
    }
    let config_digest: Digest = m["config"]["digest"]
        .as_str()
        .context("a manifest without a config")?
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut config_bytes = Vec::new();
    client.get_blob(ep, repo, &config_digest, &mut config_bytes)?;
    let config: ImageConfigFile =
        serde_json::from_slice(&config_bytes).context("the image config is invalid")?;
    let layers = m["layers"].as_array().cloned().unwrap_or_default();
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
        let d: Digest = l["digest"]
            .as_str()
            .context("a layer without a digest")?
            .parse()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mt = l["mediaType"].as_str().unwrap_or_default().to_string();
        todo.push(Missing {
            blob: d,
            media_type: mt,
            size: l["size"].as_u64().unwrap_or(0),
            diff_id: diff_id.clone(),
        });
    }
    let total = todo.len();
    let mut bytes_downloaded = 0;
    // Where each layer can be fetched from (lazily, or to mount it when pushing).
    for (l, diff_id) in layers.iter().zip(&config.rootfs.diff_ids) {
        if let Some(d) = l["digest"].as_str().and_then(|d| d.parse::<Digest>().ok()) {
            store.meta.put_layer_source(
                diff_id,
                &strata_cache::metadata::LayerSource {
                    host: r.domain.clone(),
                    repo: repo.to_string(),
                    digest: d,
                    media_type: l["mediaType"].as_str().unwrap_or_default().to_string(),
                    size: l["size"].as_u64().unwrap_or(0),
                },
            )?;
        }
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let image_id = store.put_image_bytes(&config_bytes, &[r.to_string()], now)?;
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
fn oci_layer_type(mt: &str) -> String {
    match compression_of(mt) {
        Some(c) => c.oci_media_type().to_string(),
        None => mt.to_string(),
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
    say: &mut dyn FnMut(&str),
) -> Result<Digest> {
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
    let given: std::collections::BTreeMap<Digest, strata_cache::images::Descriptor> = sources
        .iter()
        .filter(|(d, _)| !store.snapshot_dir(d).is_dir())
        .map(|(d, s)| {
            let desc = strata_cache::images::Descriptor {
                media_type: oci_layer_type(&s.media_type),
                digest: s.digest.clone(),
                size: s.size,
            };
            (d.clone(), desc)
        })
        .collect();
    let m = crate::export::manifest_with(store, &img, fmt, &|d| given.get(d).cloned())?;
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
    let mut blobs: Vec<&strata_cache::images::Descriptor> = m.layers.iter().collect();
    blobs.push(&m.config);
    for b in blobs {
        let short = &b.digest.hex()[..12];
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
        let path = store.content.path(&b.digest);
        client
            .put_blob(&ep, repo, &b.digest, &path)
            .with_context(|| format!("pushing blob {}", b.digest))?;
        say(&format!("{short}: pushed {} bytes", b.size));
    }
    let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
    client
        .put_manifest(&ep, repo, &tag, &m.manifest, m.media_type)
        .context("pushing the manifest")?;
    say(&format!(
        "{}: digest: {} size: {}",
        tag,
        m.manifest_digest,
        m.manifest.len()
    ));
    Ok(m.manifest_digest)
}
