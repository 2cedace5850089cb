//! `strata load`: docker archives (`manifest.json`) and OCI image layouts (`index.json`), as a
//! tar (plain or compressed) or a directory.
//!
//! Hostile input stays harmless: the archive is unpacked with the layer unpacker's rules (no
//! path leaves the scratch directory, size limits against decompression bombs), every path an
//! index or manifest names must stay inside the archive and is resolved inside its directory
//! (`inroot`: a symlink never leads out), every file read must be a regular file (checked
//! before it is opened, so a FIFO or a device is never opened), JSON documents are read with a
//! bound and blobs no further than their descriptor's size, every blob must match its digest
//! and size, every layer must match its diff ID, and everything is checked before the first
//! layer is imported; a layer that still fails to unpack takes the others of the same load
//! with it.

use crate::bounded::{self, ReadError};
use anyhow::{Context, Result, anyhow, bail};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use strata_cache::Digest;
use strata_cache::images::{ImageConfigFile, ImageStore};
use strata_cache::inroot::Root;
use strata_cache::unpack::{UnpackOptions, Whiteouts};
use strata_solver::Platform;

/// A name as stored (`app` → `docker.io/library/app:latest`).
fn normalize(n: &str) -> Result<String> {
    let r = strata_solver::reference::Reference::parse(n)
        .map_err(|e| anyhow::anyhow!("the archive names an invalid image {n:?}: {e}"))?;
    Ok(r.to_string())
}

/// An image loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: Digest,
    pub tags: Vec<String>,
}

/// What to import: a config and its layer files, in order.
struct Plan {
    config: Vec<u8>,
    layers: Vec<LayerSrc>,
    tags: Vec<String>,
}

/// A layer file of the archive: opened (a regular file inside the archive) and the number of
/// bytes of it to import (its descriptor's size, checked against its digest; for a docker
/// archive's layer path, the file's size when it was opened).
#[derive(Clone)]
struct LayerSrc {
    file: Arc<File>,
    size: u64,
}

/// The largest JSON document (index, manifest, config) read from an archive.
const MAX_JSON: u64 = bounded::DOCKERFILE_LIMIT;

/// `rel` as a path inside the archive, or an error: only plain path components.
fn check_rel(rel: &str) -> Result<()> {
    if Path::new(rel)
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        bail!("the archive names {rel:?}, a path outside it");
    }
    Ok(())
}

/// The archive's file `rel`: resolved inside the archive's directory (a symlink never leads
/// out of it), a regular file (a FIFO or a device is refused before it is opened), opened.
fn open_in(root: &Root, rel: &str) -> Result<File> {
    check_rel(rel)?;
    bounded::open_regular_in(root, rel).map_err(|e| match e {
        ReadError::NotFound => anyhow!("the archive names {rel:?}, which it does not contain"),
        ReadError::LinkOutside => anyhow!(
            "the archive's {rel:?} is a symbolic link leading outside the archive (or to nothing)"
        ),
        e => anyhow!("the archive's {rel:?}: {e}"),
    })
}

/// The archive's JSON document `rel`, at most [`MAX_JSON`] bytes.
fn read_json_file(root: &Root, rel: &str) -> Result<Vec<u8>> {
    let f = open_in(root, rel)?;
    bounded::read_file(f, MAX_JSON).map_err(|e| anyhow!("the archive's {rel:?}: {e}"))
}

/// A descriptor's digest and size.
fn descriptor(desc: &serde_json::Value) -> Result<(Digest, Option<u64>)> {
    let d: Digest = desc["digest"]
        .as_str()
        .context("a descriptor without a digest")?
        .parse()
        .map_err(|e| anyhow!("bad digest in the archive: {e}"))?;
    Ok((d, desc["size"].as_u64()))
}

fn blob_rel(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// A JSON blob (manifest, index, config) of an OCI layout: at most its descriptor's size and
/// [`MAX_JSON`] bytes are read, and it must match both.
fn json_blob(root: &Root, desc: &serde_json::Value) -> Result<Vec<u8>> {
    let (d, want) = descriptor(desc)?;
    if let Some(w) = want
        && w > MAX_JSON
    {
        bail!(
            "blob {d} is a JSON document of {w} bytes, more than the limit of {}",
            bounded::human(MAX_JSON)
        );
    }
    let f = open_in(root, &blob_rel(&d))?;
    let v = bounded::read_file(f, want.unwrap_or(MAX_JSON)).map_err(|e| match e {
        ReadError::TooLarge { .. } if want.is_some() => anyhow!(
            "blob {d} is longer than its descriptor's {} bytes \
             (read no further, so its digest was not checked)",
            want.unwrap_or_default()
        ),
        e => anyhow!("blob {d}: {e}"),
    })?;
    if let Some(w) = want
        && w != v.len() as u64
    {
        bail!("blob {d} is {} bytes, its descriptor says {w}", v.len());
    }
    let got = Digest::of(&v);
    if got != d {
        bail!("blob {d} does not match its digest (it hashes to {got})");
    }
    Ok(v)
}

/// A layer blob of an OCI layout, checked against its descriptor: no more than its size (the
/// file's own size when the descriptor has none) plus one byte is hashed.
fn layer_blob(
    root: &Root,
    desc: &serde_json::Value,
    seen: &mut HashMap<Digest, LayerSrc>,
) -> Result<LayerSrc> {
    let (d, want) = descriptor(desc)?;
    if let Some(l) = seen.get(&d) {
        if want.is_some_and(|w| w != l.size) {
            bail!("blob {d} is {} bytes, its descriptor says {want:?}", l.size);
        }
        return Ok(l.clone());
    }
    let f = open_in(root, &blob_rel(&d))?;
    let limit = match want {
        Some(w) => w,
        None => f.metadata()?.len(),
    };
    let (got, size) = strata_cache::images::digest_reader((&f).take(limit.saturating_add(1)))
        .with_context(|| format!("reading blob {d}"))?;
    if size > limit {
        bail!(
            "blob {d} is longer than its descriptor's {limit} bytes \
             (read no further, so its digest was not checked)"
        );
    }
    if size != limit {
        bail!("blob {d} is {size} bytes, its descriptor says {limit}");
    }
    if got != d {
        bail!("blob {d} does not match its digest (it hashes to {got})");
    }
    let l = LayerSrc {
        file: Arc::new(f),
        size,
    };
    seen.insert(d, l.clone());
    Ok(l)
}

fn plan_oci(root: &Root) -> Result<Vec<Plan>> {
    let index: serde_json::Value = serde_json::from_slice(&read_json_file(root, "index.json")?)
        .context("index.json is not JSON")?;
    let host = Platform::host();
    let mut plans: Vec<Plan> = Vec::new();
    let mut seen: HashMap<Digest, LayerSrc> = HashMap::new();
    let mut stack: Vec<(serde_json::Value, Vec<String>)> = index["manifests"]
        .as_array()
        .context("index.json has no manifests")?
        .iter()
        .map(|m| {
            let a = &m["annotations"];
            let name = a["io.containerd.image.name"]
                .as_str()
                .or_else(|| {
                    a["org.opencontainers.image.ref.name"]
                        .as_str()
                        .filter(|n| n.contains(['/', ':']))
                })
                .and_then(|n| normalize(n).ok());
            (m.clone(), name.into_iter().collect())
        })
        .collect();
    let mut depth = 0;
    while let Some((desc, tags)) = stack.pop() {
        depth += 1;
        if depth > 1000 {
            bail!("the archive's indexes nest too deep");
        }
        let mt = desc["mediaType"].as_str().unwrap_or_default();
        let v: serde_json::Value =
            serde_json::from_slice(&json_blob(root, &desc)?).context("a manifest is not JSON")?;
        if mt.ends_with("image.index.v1+json") || mt.ends_with("manifest.list.v2+json") {
            // A multi-platform image: the manifest for this machine.
            let pick = v["manifests"].as_array().and_then(|ms| {
                ms.iter().find(|m| {
                    m["platform"]["os"] == host.os.as_str()
                        && m["platform"]["architecture"] == host.architecture.as_str()
                })
            });
            match pick {
                Some(m) => stack.push((m.clone(), tags)),
                None => bail!("the archive has no image for {host}"),
            }
            continue;
        }
        let config = json_blob(root, &v["config"])?;
        let layers = v["layers"]
            .as_array()
            .context("a manifest without layers")?
            .iter()
            .map(|l| layer_blob(root, l, &mut seen))
            .collect::<Result<Vec<_>>>()?;
        match plans.iter_mut().find(|p| p.config == config) {
            Some(p) => p.tags.extend(tags),
            None => plans.push(Plan {
                config,
                layers,
                tags,
            }),
        }
    }
    Ok(plans)
}

fn plan_docker(root: &Root) -> Result<Vec<Plan>> {
    let m: serde_json::Value = serde_json::from_slice(&read_json_file(root, "manifest.json")?)
        .context("manifest.json is not JSON")?;
    let mut plans: Vec<Plan> = Vec::new();
    // Entries naming the same config are one image: each config file is read once.
    let mut by_config: HashMap<String, usize> = HashMap::new();
    for e in m.as_array().context("manifest.json is not a list")? {
        let config_rel = e["Config"].as_str().context("an entry without Config")?;
        let tags = e["RepoTags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t.as_str())
                    .map(normalize)
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default();
        if let Some(&i) = by_config.get(config_rel) {
            plans[i].tags.extend(tags);
            continue;
        }
        let config = read_json_file(root, config_rel)?;
        let layers = e["Layers"]
            .as_array()
            .context("an entry without Layers")?
            .iter()
            .map(|l| {
                let f = open_in(root, l.as_str().unwrap_or_default())?;
                let size = f.metadata()?.len();
                Ok(LayerSrc {
                    file: Arc::new(f),
                    size,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        by_config.insert(config_rel.to_string(), plans.len());
        plans.push(Plan {
            config,
            layers,
            tags,
        });
    }
    Ok(plans)
}

/// Loads `src` (a file, `-` for standard input, or a directory); `scratch` is where an archive
/// is unpacked (the caller removes it).
pub fn load(store: &mut ImageStore, src: &str, scratch: &Path) -> Result<Vec<Loaded>> {
    let dir = if src != "-" && Path::new(src).is_dir() {
        PathBuf::from(src)
    } else {
        let input: Box<dyn Read> = if src == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::fs::File::open(src).with_context(|| format!("opening {src}"))?)
        };
        std::fs::create_dir_all(scratch)?;
        let r = strata_cache::unpack::decompress(input)?;
        let opts = UnpackOptions {
            whiteouts: Whiteouts::Apply,
            ..UnpackOptions::default()
        };
        strata_cache::unpack::unpack(r, scratch, &strata_cache::sys::RealFs, &opts)
            .context("unpacking the archive")?;
        scratch.to_path_buf()
    };
    // Every file of the archive is resolved inside its directory and must be a regular file.
    let root = Root::open(&dir).map_err(|e| anyhow!("{e}"))?;
    let has = |name: &str| root.resolve(name, false).is_ok();
    let plans = if has("manifest.json") {
        plan_docker(&root)?
    } else if has("index.json") {
        plan_oci(&root)?
    } else {
        bail!("not an image archive: it has neither manifest.json (docker) nor index.json (OCI)");
    };
    // Check every config before importing anything.
    let mut configs = Vec::new();
    for p in &plans {
        let c: ImageConfigFile = serde_json::from_slice(&p.config)
            .map_err(|e| anyhow::anyhow!("an image config is invalid: {e}"))?;
        if c.rootfs.diff_ids.len() != p.layers.len() {
            bail!(
                "an image lists {} layers but its config {} diff IDs",
                p.layers.len(),
                c.rootfs.diff_ids.len()
            );
        }
        configs.push(c);
    }
    let mut imported: Vec<Digest> = Vec::new();
    let result = (|| -> Result<Vec<Loaded>> {
        let mut out = Vec::new();
        for (p, c) in plans.iter().zip(&configs) {
            for (i, (l, want)) in p.layers.iter().zip(&c.rootfs.diff_ids).enumerate() {
                if store.meta.layer(want)?.is_some() && store.snapshot_dir(want).is_dir() {
                    continue; // already here
                }
                // The bytes checked when the plan was made, no more.
                let mut f = &*l.file;
                f.rewind()?;
                let rec = store
                    .import_layer(
                        f.take(l.size),
                        &strata_cache::sys::RealFs,
                        &UnpackOptions::default(),
                    )
                    .with_context(|| format!("layer {} of the image", i + 1))?;
                imported.push(rec.diff_id.clone());
                if rec.diff_id != *want {
                    bail!(
                        "layer {} is {}, but the config says {want}",
                        i + 1,
                        rec.diff_id
                    );
                }
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let id = store.put_image_bytes(&p.config, &p.tags, now)?;
            out.push(Loaded {
                id,
                tags: p.tags.clone(),
            });
        }
        Ok(out)
    })();
    if result.is_err() {
        for d in imported {
            if let Ok(Some(rec)) = store.meta.layer(&d)
                && store.meta.delete_unused_layer(&d).unwrap_or(false)
            {
                let _ = store.remove_layer_files(&rec);
            }
        }
    }
    result
}
