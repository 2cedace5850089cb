//! `strata load`: docker archives (`manifest.json`) and OCI image layouts (`index.json`), as a
//! tar (plain or compressed) or a directory.
//!
//! Hostile input stays harmless: the archive is unpacked with the layer unpacker's rules (no
//! path leaves the scratch directory, size limits against decompression bombs), every path an
//! index or manifest names must stay inside the archive, every blob must match its digest and
//! size, every layer must match its diff ID, and everything is checked before the first layer is
//! imported; a layer that still fails to unpack takes the others of the same load with it.

use anyhow::{Context, Result, bail};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use strata_cache::Digest;
use strata_cache::images::{ImageConfigFile, ImageStore};
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
    layers: Vec<PathBuf>,
    tags: Vec<String>,
}

/// `rel` inside `dir`, or an error: only plain path components.
fn inside(dir: &Path, rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        bail!("the archive names {rel:?}, a path outside it");
    }
    let full = dir.join(p);
    // A symlink inside the archive must not lead out either.
    let real = std::fs::canonicalize(&full)
        .with_context(|| format!("the archive names {rel:?}, which it does not contain"))?;
    let root = std::fs::canonicalize(dir)?;
    if !real.starts_with(&root) {
        bail!("the archive's {rel:?} leads outside it");
    }
    Ok(real)
}

fn digest_file(p: &Path) -> Result<(Digest, u64)> {
    let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    Ok(strata_cache::images::digest_reader(f)?)
}

fn read_limited(p: &Path, max: u64) -> Result<Vec<u8>> {
    let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let mut v = Vec::new();
    f.take(max + 1).read_to_end(&mut v)?;
    if v.len() as u64 > max {
        bail!("{} is larger than {max} bytes", p.display());
    }
    Ok(v)
}

/// A blob of an OCI layout, checked against its descriptor.
fn blob(dir: &Path, desc: &serde_json::Value) -> Result<PathBuf> {
    let d: Digest = desc["digest"]
        .as_str()
        .context("a descriptor without a digest")?
        .parse()
        .map_err(|e| anyhow::anyhow!("bad digest in the archive: {e}"))?;
    let p = inside(dir, &format!("blobs/sha256/{}", d.hex()))?;
    let (got, size) = digest_file(&p)?;
    if got != d {
        bail!("blob {d} does not match its digest (it hashes to {got})");
    }
    if let Some(want) = desc["size"].as_u64()
        && want != size
    {
        bail!("blob {d} is {size} bytes, its descriptor says {want}");
    }
    Ok(p)
}

const MAX_JSON: u64 = 16 << 20;

fn plan_oci(dir: &Path) -> Result<Vec<Plan>> {
    let index: serde_json::Value =
        serde_json::from_slice(&read_limited(&inside(dir, "index.json")?, MAX_JSON)?)
            .context("index.json is not JSON")?;
    let host = Platform::host();
    let mut plans: Vec<Plan> = Vec::new();
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
        let p = blob(dir, &desc)?;
        let v: serde_json::Value = serde_json::from_slice(&read_limited(&p, MAX_JSON)?)
            .context("a manifest is not JSON")?;
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
        let config = read_limited(&blob(dir, &v["config"])?, MAX_JSON)?;
        let layers = v["layers"]
            .as_array()
            .context("a manifest without layers")?
            .iter()
            .map(|l| blob(dir, l))
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

fn plan_docker(dir: &Path) -> Result<Vec<Plan>> {
    let m: serde_json::Value =
        serde_json::from_slice(&read_limited(&inside(dir, "manifest.json")?, MAX_JSON)?)
            .context("manifest.json is not JSON")?;
    let mut plans = Vec::new();
    for e in m.as_array().context("manifest.json is not a list")? {
        let config = read_limited(
            &inside(
                dir,
                e["Config"].as_str().context("an entry without Config")?,
            )?,
            MAX_JSON,
        )?;
        let layers = e["Layers"]
            .as_array()
            .context("an entry without Layers")?
            .iter()
            .map(|l| inside(dir, l.as_str().unwrap_or_default()))
            .collect::<Result<Vec<_>>>()?;
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
    let plans = if dir.join("manifest.json").is_file() {
        plan_docker(&dir)?
    } else if dir.join("index.json").is_file() {
        plan_oci(&dir)?
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
                let f = std::fs::File::open(l)?;
                let rec = store
                    .import_layer(f, &strata_cache::sys::RealFs, &UnpackOptions::default())
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
