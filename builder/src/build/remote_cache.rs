//! Build cache export and import (`--cache-to`, `--cache-from`): the build cache entries
//! (step key → layer chain) and the layers they name, as an OCI manifest whose config is the
//! list of entries — in an OCI layout directory (`type=local`) or a registry (`type=registry`).
//!
//! Import is lazy: the entries are read first; a layer is fetched only when the build would
//! stop at a step whose result needs it (the same walk the scheduler does), so a fresh root
//! downloads only what the result needs.

use crate::registry::Client;
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use strata_cache::Digest;
use strata_cache::images::ImageStore;
use strata_cache::inroot::Root;
use strata_oci::media_type as mt;
use strata_oci::reference::Reference;
use strata_oci::{Descriptor, DigestWriter, Document, Index, Manifest};

pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.strata.buildcache.config.v1+json";

/// Where a cache lives.
#[derive(Clone)]
pub enum Location {
    Local(PathBuf),
    Registry(Arc<Client>, Reference),
}

/// `--cache-to`: which steps go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The steps whose results make the final image.
    Min,
    /// Every step of the build.
    Max,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CacheConfig {
    pub version: u32,
    /// Step key → layer chain (diff IDs, bottom first; null for a step that changed nothing).
    pub entries: BTreeMap<Digest, Vec<Option<Digest>>>,
    /// Diff ID → the blob that holds it.
    pub layers: BTreeMap<Digest, Descriptor>,
    /// A strata extension: RUN cache mounts by id → a gzip tar of their contents
    /// (`--cache-to …,cache-mounts=true`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cache_mounts: BTreeMap<String, Descriptor>,
    /// A strata extension: each exported step's key inputs, by `TARGET|SLOT`, so a build that
    /// imports this cache and still misses can say what changed relative to it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub steps: BTreeMap<String, serde_json::Value>,
}

impl Location {
    /// Where, as a user names it (`registry REF`, `directory DIR`).
    pub fn describe(&self) -> String {
        match self {
            Location::Local(d) => format!("directory {}", d.display()),
            Location::Registry(_, r) => format!("registry {r}"),
        }
    }
}

/// Whether a `--cache-to` spec asks for the cache mounts too (`cache-mounts=true`).
pub fn wants_cache_mounts(spec: &str) -> bool {
    spec.split(',').any(|p| p == "cache-mounts=true")
}

/// Parses `type=local,src=DIR` / `type=registry,ref=REF` (`--cache-from`) or
/// `type=local,dest=DIR,mode=max` / `type=registry,ref=REF` (`--cache-to`).
pub fn parse(spec: &str, client: &dyn Fn() -> Result<Arc<Client>>) -> Result<(Location, Mode)> {
    let mut kv: HashMap<&str, &str> = HashMap::new();
    for part in spec.split(',') {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        kv.insert(k.trim(), v.trim());
    }
    let mode = match kv.get("mode").copied() {
        None | Some("min") => Mode::Min,
        Some("max") => Mode::Max,
        Some(m) => bail!("cache mode={m}: expected min or max"),
    };
    let loc = match kv.get("type").copied() {
        Some("local") => {
            let d = kv
                .get("dest")
                .or_else(|| kv.get("src"))
                .filter(|d| !d.is_empty())
                .context("type=local needs dest=DIR (--cache-to) or src=DIR (--cache-from)")?;
            Location::Local(PathBuf::from(d))
        }
        Some("registry") => {
            let r = kv
                .get("ref")
                .filter(|r| !r.is_empty())
                .context("type=registry needs ref=REGISTRY/NAME:TAG")?;
            let r = Reference::parse(r).with_context(|| format!("invalid cache ref {r:?}"))?;
            Location::Registry(client()?, r)
        }
        Some("inline") => bail!(
            "type=inline (cache metadata inside the image config) is not a cache strata writes or reads: use type=registry"
        ),
        Some(t) => bail!("cache type={t}: strata knows local and registry"),
        None => bail!("a cache spec needs type=local or type=registry"),
    };
    Ok((loc, mode))
}

/// An imported cache: its entries, and where to fetch layers from.
pub struct Imported {
    pub config: CacheConfig,
    pub loc: Location,
}

/// The largest JSON document (index, manifest) read from a cache directory.
const MAX_JSON: u64 = crate::bounded::DOCKERFILE_LIMIT;
/// The largest cache config (the entries and their layers) strata reads.
const MAX_CONFIG: u64 = 256 << 20;

/// The cache directory's file `rel`: resolved inside the directory (a symlink never leads out
/// of it), a regular file (a FIFO or a device is refused before it is opened), opened.
fn open_local(root: &Root, rel: &str) -> Result<std::fs::File> {
    use crate::bounded::ReadError;
    crate::bounded::open_regular_in(root, rel).map_err(|e| match e {
        ReadError::LinkOutside => anyhow::anyhow!(
            "the cache's {rel} is a symbolic link leading outside the cache directory (or to \
             nothing)"
        ),
        e => anyhow::anyhow!("the cache's {rel}: {e}"),
    })
}

/// The cache directory's `index.json`, at most [`MAX_JSON`] bytes.
fn read_index(root: &Root) -> Result<Index> {
    let f = open_local(root, "index.json")?;
    let b = crate::bounded::read_file(f, MAX_JSON)
        .map_err(|e| anyhow::anyhow!("the cache's index.json: {e}"))?;
    match Document::parse(&b, Some(mt::OCI_INDEX)).context("the cache's index.json")? {
        Document::Index(i) => Ok(i),
        Document::Manifest(_) => bail!("the cache's index.json is a manifest, not an index"),
    }
}

/// The manifest of a cache (a strata build cache, not an image).
fn cache_manifest(bytes: &[u8]) -> Result<Manifest> {
    match Document::parse(bytes, Some(mt::OCI_MANIFEST)).context("the cache manifest")? {
        Document::Manifest(m) if m.config.media_type == CONFIG_MEDIA_TYPE => Ok(m),
        Document::Manifest(m) => bail!(
            "not a strata build cache: its manifest's config is {:?}, not {CONFIG_MEDIA_TYPE}",
            m.config.media_type
        ),
        Document::Index(_) => bail!("not a strata build cache: an image index"),
    }
}

/// A small blob of the cache directory (its manifest, its config), read whole: at most its
/// descriptor's size (and `limit`), verified by digest.
fn read_local_blob(
    root: &Root,
    d: &Digest,
    size: Option<u64>,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>> {
    if let Some(s) = size
        && s > limit
    {
        bail!(
            "the cache {what} is {s} bytes, more than the limit of {}",
            crate::bounded::human(limit)
        );
    }
    let rel = blob_rel(d);
    let f = open_local(root, &rel)?;
    let b = crate::bounded::read_file(f, size.unwrap_or(limit)).map_err(|e| match e {
        crate::bounded::ReadError::TooLarge { limit } if size.is_some() => {
            anyhow::anyhow!(
                "the cache {what} is longer than its descriptor's {limit} bytes \
             (read no further, so its digest was not checked)"
            )
        }
        e => anyhow::anyhow!("the cache's {rel}: {e}"),
    })?;
    if let Some(s) = size
        && s != b.len() as u64
    {
        bail!(
            "the cache {what} is {} bytes, its descriptor says {s}",
            b.len()
        );
    }
    if Digest::of(&b) != *d {
        bail!("the cache {what} does not match its digest");
    }
    Ok(b)
}

fn blob_rel(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Reads a cache's entries (no layers yet).
pub fn import(loc: &Location) -> Result<Imported> {
    let config_bytes = match loc {
        Location::Local(dir) => {
            // Every file is resolved inside the directory, must be a regular file and is read
            // no further than its bound.
            let root = Root::open(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
            let index = read_index(&root)?;
            let m_desc = index
                .manifests
                .first()
                .context("the cache's index.json lists no manifest")?;
            let (md, msize) = (m_desc.digest.clone(), m_desc.stated_size());
            let m_bytes = read_local_blob(&root, &md, msize, MAX_JSON, "manifest")?;
            let m = cache_manifest(&m_bytes)?;
            let (cd, csize) = (m.config.digest.clone(), m.config.stated_size());
            read_local_blob(&root, &cd, csize, MAX_CONFIG, "config")?
        }
        Location::Registry(client, r) => {
            let ep = client
                .endpoints(&r.domain, true)
                .pop()
                .context("no endpoint")?;
            let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
            let (m_bytes, _, _) = client.get_manifest(&ep, &r.path, &tag)?;
            let cd = cache_manifest(&m_bytes)?.config.digest;
            let mut c = crate::bounded::CappedWriter::new(MAX_CONFIG);
            client
                .get_blob(&ep, &r.path, &cd, &mut c)
                .context("the cache config")?;
            c.into_inner()
        }
    };
    let config: CacheConfig =
        serde_json::from_slice(&config_bytes).context("the cache config is invalid")?;
    if config.version != 1 {
        bail!("cache config version {} is not known", config.version);
    }
    Ok(Imported {
        config,
        loc: loc.clone(),
    })
}

impl Imported {
    /// A blob of the cache, verified, in a temporary file of the store.
    fn fetch_blob(&self, store: &ImageStore, desc: &Descriptor) -> Result<tempfile::NamedTempFile> {
        let tmp = store.content.temp_file()?;
        match &self.loc {
            Location::Local(dir) => {
                // Resolved inside the directory, a regular file, copied no further than its
                // descriptor's size (and one byte to tell a longer file), hashed on the way.
                let root = Root::open(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
                let f = open_local(&root, &blob_rel(&desc.digest))?;
                let mut hw = DigestWriter::new(std::io::BufWriter::new(tmp.as_file()));
                let n = std::io::copy(&mut f.take(desc.size.saturating_add(1)), &mut hw)
                    .with_context(|| format!("copying cache blob {}", desc.digest))?;
                let (mut w, got) = hw.finish();
                std::io::Write::flush(&mut w)?;
                if n > desc.size {
                    bail!(
                        "cache blob {} is longer than its descriptor's {} bytes \
             (read no further, so its digest was not checked)",
                        desc.digest,
                        desc.size
                    );
                }
                if n != desc.size {
                    bail!(
                        "cache blob {} is {n} bytes, its descriptor says {}",
                        desc.digest,
                        desc.size
                    );
                }
                if got != desc.digest {
                    bail!("cache blob {} does not match its digest", desc.digest);
                }
            }
            Location::Registry(client, r) => {
                let ep = client
                    .endpoints(&r.domain, true)
                    .pop()
                    .context("no endpoint")?;
                let mut w = std::io::BufWriter::new(tmp.as_file());
                client.get_blob(&ep, &r.path, &desc.digest, &mut w)?;
                std::io::Write::flush(&mut w)?;
            }
        }
        Ok(tmp)
    }

    /// Seeds the RUN cache mounts this root does not have yet (a strata extension).
    pub fn seed_cache_mounts(&self, store: &ImageStore, root: &std::path::Path) -> Result<usize> {
        let mut n = 0;
        for (id, desc) in &self.config.cache_mounts {
            let dir = root
                .join("cachemounts")
                .join(Digest::of(id.as_bytes()).hex());
            if dir.exists() {
                continue;
            }
            strata_cache::root::private_dir_all(&root.join("cachemounts"))?;
            let tmp = self.fetch_blob(store, desc)?;
            let r = strata_cache::unpack::decompress(std::fs::File::open(tmp.path())?)?;
            let opts = strata_cache::unpack::UnpackOptions {
                whiteouts: strata_cache::unpack::Whiteouts::Apply,
                ..Default::default()
            };
            match strata_cache::unpack::unpack_new(r, &dir, &strata_cache::sys::RealFs, &opts) {
                Ok(_) => n += 1,
                Err(_) if dir.exists() => {} // another build seeded it first
                Err(e) => return Err(e).context(format!("seeding cache mount {id}")),
            }
        }
        Ok(n)
    }

    /// Makes the result recorded for `key` local: fetches and imports its missing layers,
    /// records the entry. `false` when the cache does not have the key.
    pub fn materialize(&self, store: &mut ImageStore, key: &Digest, now: i64) -> Result<bool> {
        let Some(chain) = self.config.entries.get(key) else {
            return Ok(false);
        };
        for d in chain.iter().flatten() {
            if store.meta.layer(d)?.is_some() && store.snapshot_dir(d).is_dir() {
                continue;
            }
            let desc = self
                .config
                .layers
                .get(d)
                .with_context(|| format!("the cache names layer {d} without its blob"))?;
            let tmp = self.fetch_blob(store, desc)?;
            let rec = store.import_layer(
                std::fs::File::open(tmp.path())?,
                &strata_cache::sys::RealFs,
                &Default::default(),
            )?;
            if rec.diff_id != *d {
                bail!(
                    "cache layer {} unpacks to {}, not {d}",
                    desc.digest,
                    rec.diff_id
                );
            }
        }
        store.meta.put_cached_result(key, chain, now)?;
        Ok(true)
    }
}

/// Exports the entries of `keys` (with their layers, gzip) to `loc`.
pub fn export(
    store: &mut ImageStore,
    keys: &[Digest],
    loc: &Location,
    cache_mounts: &[(String, PathBuf)],
    steps: BTreeMap<String, serde_json::Value>,
) -> Result<usize> {
    let mut config = CacheConfig {
        version: 1,
        steps,
        ..Default::default()
    };
    for (id, dir) in cache_mounts {
        if !dir.is_dir() {
            continue;
        }
        // A gzip tar of the directory, into the content store.
        let tmp = store.content.temp_file()?;
        let f = std::io::BufWriter::new(tmp.as_file().try_clone()?);
        let hw = DigestWriter::new(f);
        let mut comp = strata_cache::compress::ParallelCompressor::new(
            hw,
            strata_cache::compress::Compression::Gzip,
            6,
        );
        // A cache mount other builds may be using right now: read as a live tree.
        let live = strata_cache::difftar::TarOptions {
            live: true,
            ..Default::default()
        };
        strata_cache::difftar::write_diff_tar(dir, &mut comp, &live)?;
        let (hw, size) = comp.finish()?;
        let (mut w, digest) = hw.finish();
        std::io::Write::flush(&mut w)?;
        drop(w);
        store.content.commit(tmp, &digest)?;
        config.cache_mounts.insert(
            id.clone(),
            Descriptor::new(mt::OCI_LAYER_GZIP, digest, size),
        );
    }
    for k in keys {
        if let Some(chain) = store.meta.cached_result(k)? {
            for d in chain.iter().flatten() {
                if !config.layers.contains_key(d) {
                    let desc =
                        store.layer_blob(d, strata_cache::compress::Compression::Gzip, 6, false)?;
                    config.layers.insert(d.clone(), desc);
                }
            }
            config.entries.insert(k.clone(), chain);
        }
    }
    let config_bytes = serde_json::to_vec(&config)?;
    let config_desc = Descriptor::new(
        CONFIG_MEDIA_TYPE,
        Digest::of(&config_bytes),
        config_bytes.len() as u64,
    );
    let mut blobs: Vec<&Descriptor> = config
        .layers
        .values()
        .chain(config.cache_mounts.values())
        .collect();
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    blobs.dedup_by(|a, b| a.digest == b.digest);
    let (manifest, md) = Manifest::new(
        mt::OCI_MANIFEST,
        config_desc.clone(),
        blobs.iter().map(|d| (*d).clone()).collect(),
    )
    .encode();
    match loc {
        Location::Local(dir) => {
            let b = dir.join("blobs/sha256");
            std::fs::create_dir_all(&b)?;
            let put = |d: &Digest, data: &mut dyn std::io::Read| -> Result<()> {
                let p = b.join(d.hex());
                if p.exists() {
                    return Ok(());
                }
                let tmp = p.with_extension("partial");
                let mut f = std::fs::File::create(&tmp)?;
                std::io::copy(data, &mut f)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &p)?;
                Ok(())
            };
            for l in &blobs {
                put(&l.digest, &mut store.content.open_blob(&l.digest)?)?;
            }
            put(&config_desc.digest, &mut &config_bytes[..])?;
            put(&md, &mut &manifest[..])?;
            std::fs::write(dir.join("oci-layout"), strata_oci::archive::OCI_LAYOUT)?;
            let (index, _) = Index::new(vec![Descriptor::new(
                mt::OCI_MANIFEST,
                md.clone(),
                manifest.len() as u64,
            )])
            .encode();
            let tmp = dir.join("index.json.partial");
            std::fs::write(&tmp, index)?;
            std::fs::rename(&tmp, dir.join("index.json"))?;
        }
        Location::Registry(client, r) => {
            let ep = client
                .endpoints(&r.domain, false)
                .pop()
                .context("no endpoint")?;
            for l in &blobs {
                if !client.has_blob(&ep, &r.path, &l.digest)? {
                    client.put_blob(&ep, &r.path, &l.digest, &store.content.path(&l.digest))?;
                }
            }
            let tmp = store.content.temp_file()?;
            std::fs::write(tmp.path(), &config_bytes)?;
            if !client.has_blob(&ep, &r.path, &config_desc.digest)? {
                client.put_blob(&ep, &r.path, &config_desc.digest, tmp.path())?;
            }
            let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
            client.put_manifest(&ep, &r.path, &tag, &manifest, mt::OCI_MANIFEST)?;
        }
    }
    Ok(config.entries.len())
}
