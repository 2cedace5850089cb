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
use strata_cache::images::ImageStore;
use strata_cache::inroot::Root;
use strata_cache::unpack::{UnpackOptions, Whiteouts};
use strata_oci::archive::parse_archive_manifest;
use strata_oci::media_type as mt;
use strata_oci::{Descriptor, DigestReader, Document, ImageConfig};
use strata_solver::Platform;

/// A name as stored (`app` → `docker.io/library/app:latest`).
fn normalize(n: &str) -> Result<String> {
    let r = strata_oci::Reference::parse(n)
        .map_err(|e| anyhow::anyhow!("the archive names an invalid image {n:?}: {e}"))?;
    Ok(r.to_string())
}

/// An image loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: Digest,
    pub tags: Vec<String>,
}

/// A multi-platform image of the archive: its index (as written, when the archive has the
/// document) and the plans of its members.
struct IndexPlan {
    document: Option<(Vec<u8>, String)>,
    tags: Vec<String>,
    /// (manifest digest, plan, platform) of each member.
    members: Vec<(Digest, usize, Platform)>,
}

/// What to import: a config and its layer files, in order.
struct Plan {
    config: Vec<u8>,
    layers: Vec<LayerSrc>,
    tags: Vec<String>,
    /// The manifest the image came with (bytes, media type), when the archive has one.
    manifest: Option<(Vec<u8>, String)>,
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

/// Where a blob is in the archive: `blobs/sha256/HEX` in an OCI layout, `HEX` in a
/// directory skopeo wrote.
#[derive(Clone, Copy)]
enum BlobPaths {
    Layout,
    SkopeoDir,
}

impl BlobPaths {
    fn rel(self, d: &Digest) -> String {
        match self {
            BlobPaths::Layout => format!("blobs/sha256/{}", d.hex()),
            BlobPaths::SkopeoDir => d.hex().to_string(),
        }
    }
}

/// A JSON blob (manifest, index, config) of an OCI layout: at most its descriptor's size and
/// [`MAX_JSON`] bytes are read, and it must match both.
fn json_blob(root: &Root, paths: BlobPaths, desc: &Descriptor) -> Result<Vec<u8>> {
    let (d, want) = (desc.digest.clone(), desc.stated_size());
    if let Some(w) = want
        && w > MAX_JSON
    {
        bail!(
            "blob {d} is a JSON document of {w} bytes, more than the limit of {}",
            bounded::human(MAX_JSON)
        );
    }
    let f = open_in(root, &paths.rel(&d))?;
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
    paths: BlobPaths,
    desc: &Descriptor,
    seen: &mut HashMap<Digest, LayerSrc>,
) -> Result<LayerSrc> {
    let (d, want) = (desc.digest.clone(), desc.stated_size());
    if let Some(l) = seen.get(&d) {
        if want.is_some_and(|w| w != l.size) {
            bail!("blob {d} is {} bytes, its descriptor says {want:?}", l.size);
        }
        return Ok(l.clone());
    }
    let f = match open_in(root, &paths.rel(&d)) {
        Ok(f) => f,
        Err(e) if !desc.urls.is_empty() => {
            return Err(e.context(format!(
                "layer {d} is a non-distributable layer the archive does not include (it is at {}); \
                 fetch it into the archive first (e.g. `skopeo copy` with its foreign layers)",
                desc.urls.join(", ")
            )));
        }
        Err(e) => return Err(e),
    };
    let limit = match want {
        Some(w) => w,
        None => f.metadata()?.len(),
    };
    let mut r = DigestReader::new((&f).take(limit.saturating_add(1)));
    std::io::copy(&mut r, &mut std::io::sink()).with_context(|| format!("reading blob {d}"))?;
    let (_, got, size) = r.finish();
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

/// The plan of one image manifest of a layout (its bytes and media type kept).
fn plan_manifest(
    root: &Root,
    paths: BlobPaths,
    bytes: Vec<u8>,
    media_type: &str,
    tags: Vec<String>,
    seen: &mut HashMap<Digest, LayerSrc>,
) -> Result<Plan> {
    let m = Document::parse_image_manifest(&bytes, Some(media_type))?;
    let config = json_blob(root, paths, &m.config)?;
    let layers = m
        .layers
        .iter()
        .map(|l| layer_blob(root, paths, l, seen))
        .collect::<Result<Vec<_>>>()?;
    let media_type = if m.media_type.is_empty() {
        media_type.to_string()
    } else {
        m.media_type.clone()
    };
    Ok(Plan {
        config,
        layers,
        tags,
        manifest: Some((bytes, media_type)),
    })
}

/// Adds `p` to `plans`, or its tags to the plan of the same config; returns its index.
fn add_plan(plans: &mut Vec<Plan>, p: Plan) -> usize {
    match plans.iter().position(|q| q.config == p.config) {
        Some(i) => {
            plans[i].tags.extend(p.tags);
            i
        }
        None => {
            plans.push(p);
            plans.len() - 1
        }
    }
}

fn plan_oci(root: &Root) -> Result<(Vec<Plan>, Vec<IndexPlan>)> {
    let bytes = read_json_file(root, "index.json")?;
    let index =
        match Document::parse(&bytes, Some(mt::OCI_INDEX)).context("the archive's index.json")? {
            Document::Index(i) => i,
            Document::Manifest(_) => bail!("the archive's index.json is a manifest, not an index"),
        };
    let host = Platform::host();
    let mut plans: Vec<Plan> = Vec::new();
    let mut seen: HashMap<Digest, LayerSrc> = HashMap::new();
    // A layout whose index lists one image per platform (as ko and crane write it) is a
    // multi-platform image: the one for this machine.
    let images: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| !d.is_attestation())
        .collect();
    let per_platform = images.len() > 1
        && images.iter().all(|d| d.platform.is_some())
        && images
            .iter()
            .all(|d| d.image_name() == images[0].image_name());
    let mut index_plans: Vec<IndexPlan> = Vec::new();
    if per_platform {
        // Every platform, as one multi-platform image under the layout's name (an index is
        // made of them: the layout has none of its own).
        let tags: Vec<String> = images[0]
            .image_name()
            .and_then(|n| normalize(n).ok())
            .into_iter()
            .collect();
        index.select(&host).context("the archive's index.json")?;
        let members = plan_members(root, &images, &mut plans, &mut seen)?;
        index_plans.push(IndexPlan {
            document: None,
            tags,
            members,
        });
        return Ok((plans, index_plans));
    }
    // Every image the layout names; an index inside it stands for the image for this machine.
    let mut stack: Vec<(Descriptor, Vec<String>, usize)> = index
        .manifests
        .iter()
        .filter(|d| !d.is_attestation())
        .map(|d| {
            let name = d
                .image_name()
                .filter(|n| {
                    d.annotations.contains_key(mt::ANNOTATION_IMAGE_NAME) || n.contains(['/', ':'])
                })
                .and_then(|n| normalize(n).ok());
            (d.clone(), name.into_iter().collect(), 0)
        })
        .rev()
        .collect();
    if stack.is_empty() {
        bail!("the archive's index.json lists no image");
    }
    // Each document is read once, however often the layout names it: an index's choice and a
    // manifest's plan are remembered by digest (a layout listing one blob a million times
    // costs one read).
    let mut chosen: HashMap<Digest, Descriptor> = HashMap::new();
    let mut planned: HashMap<Digest, usize> = HashMap::new();
    while let Some((desc, tags, depth)) = stack.pop() {
        if depth > 8 {
            bail!("the archive's indexes nest more than 8 deep");
        }
        if let Some(pick) = chosen.get(&desc.digest) {
            stack.push((pick.clone(), tags, depth + 1));
            continue;
        }
        if let Some(&i) = planned.get(&desc.digest) {
            plans[i].tags.extend(tags);
            continue;
        }
        let bytes = json_blob(root, BlobPaths::Layout, &desc)?;
        match Document::parse(&bytes, Some(&desc.media_type))
            .with_context(|| format!("blob {}", desc.digest))?
        {
            Document::Index(i) if depth == 0 && !tags.is_empty() && flat(&i) => {
                // A named multi-platform image (BuildKit's and strata's exporters write
                // them so): every platform, kept as the index it is. As docker's load, one
                // without an image for this machine is refused.
                i.select(&host)
                    .with_context(|| format!("index {}", desc.digest))?;
                let entries: Vec<&Descriptor> =
                    i.manifests.iter().filter(|d| !d.is_attestation()).collect();
                let members = plan_members(root, &entries, &mut plans, &mut seen)?;
                index_plans.push(IndexPlan {
                    document: Some((bytes, desc.media_type.clone())),
                    tags,
                    members,
                });
            }
            Document::Index(i) => {
                // A multi-platform image: the manifest for this machine.
                let pick = i
                    .select(&host)
                    .with_context(|| format!("index {}", desc.digest))?;
                chosen.insert(desc.digest.clone(), pick.clone());
                stack.push((pick.clone(), tags, depth + 1));
            }
            Document::Manifest(_) => {
                let p = plan_manifest(
                    root,
                    BlobPaths::Layout,
                    bytes,
                    &desc.media_type,
                    tags,
                    &mut seen,
                )?;
                planned.insert(desc.digest.clone(), add_plan(&mut plans, p));
            }
        }
    }
    Ok((plans, index_plans))
}

/// The plans of a multi-platform image's members (untagged: the index carries the names),
/// as (manifest digest, plan, platform).
fn plan_members(
    root: &Root,
    entries: &[&Descriptor],
    plans: &mut Vec<Plan>,
    seen: &mut HashMap<Digest, LayerSrc>,
) -> Result<Vec<(Digest, usize, Platform)>> {
    let mut members = Vec::new();
    for d in entries {
        let bytes = json_blob(root, BlobPaths::Layout, d)?;
        let p = plan_manifest(root, BlobPaths::Layout, bytes, &d.media_type, vec![], seen)?;
        let platform = d.platform.clone().unwrap_or_else(Platform::host);
        members.push((d.digest.clone(), add_plan(plans, p), platform));
    }
    Ok(members)
}

/// Whether every entry of an index is an image manifest (not a nested index) with a
/// platform, so its members can be kept as they are.
fn flat(i: &strata_oci::Index) -> bool {
    let images: Vec<&Descriptor> = i.manifests.iter().filter(|d| !d.is_attestation()).collect();
    !images.is_empty()
        && images
            .iter()
            .all(|d| d.platform.is_some() && matches!(mt::kind(&d.media_type), mt::Kind::Manifest))
}

fn plan_docker(root: &Root) -> Result<Vec<Plan>> {
    let entries = parse_archive_manifest(&read_json_file(root, "manifest.json")?)
        .context("the archive's manifest.json is not a docker archive's list of images")?;
    let mut plans: Vec<Plan> = Vec::new();
    // Entries naming the same config are one image: each config file is read once.
    let mut by_config: HashMap<String, usize> = HashMap::new();
    for e in entries {
        if e.config.is_empty() {
            bail!("an entry of manifest.json names no Config");
        }
        let tags = e
            .repo_tags
            .iter()
            .map(|t| normalize(t))
            .collect::<Result<Vec<_>>>()?;
        if let Some(&i) = by_config.get(&e.config) {
            plans[i].tags.extend(tags);
            continue;
        }
        let config = read_json_file(root, &e.config)?;
        let layers = e
            .layers
            .iter()
            .map(|l| {
                let f = open_in(root, l)?;
                let size = f.metadata()?.len();
                Ok(LayerSrc {
                    file: Arc::new(f),
                    size,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        by_config.insert(e.config.clone(), plans.len());
        plans.push(Plan {
            config,
            layers,
            tags,
            manifest: None,
        });
    }
    Ok(plans)
}

/// The manifests an OCI layout beside a docker archive's manifest.json has for its images
/// (the image for this machine of an index), matched by config; a layout that is not
/// readable adds nothing.
fn attach_layout_manifests(root: &Root, plans: &mut [Plan]) {
    let Ok(bytes) = read_json_file(root, "index.json") else {
        return;
    };
    let Ok(Document::Index(index)) = Document::parse(&bytes, Some(mt::OCI_INDEX)) else {
        return;
    };
    let host = Platform::host();
    let configs: Vec<Digest> = plans.iter().map(|p| Digest::of(&p.config)).collect();
    let mut read = std::collections::HashSet::new();
    let mut stack: Vec<(Descriptor, usize)> = index.manifests.into_iter().map(|d| (d, 0)).collect();
    while let Some((desc, depth)) = stack.pop() {
        if !read.insert(desc.digest.clone()) {
            continue;
        }
        let Ok(bytes) = json_blob(root, BlobPaths::Layout, &desc) else {
            continue;
        };
        match Document::parse(&bytes, Some(&desc.media_type)) {
            Ok(Document::Index(i)) if depth < 8 => {
                if let Ok(pick) = i.select(&host) {
                    stack.push((pick.clone(), depth + 1));
                }
            }
            Ok(Document::Manifest(m)) if m.check_image().is_ok() => {
                let media_type = if m.media_type.is_empty() {
                    desc.media_type.clone()
                } else {
                    m.media_type.clone()
                };
                for (p, config) in plans.iter_mut().zip(&configs) {
                    if p.manifest.is_none()
                        && *config == m.config.digest
                        && m.layers.len() == p.layers.len()
                    {
                        p.manifest = Some((bytes.clone(), media_type.clone()));
                    }
                }
            }
            _ => {}
        }
    }
}

/// A directory `skopeo copy … dir:` wrote: `manifest.json` is the image's manifest, blobs are
/// named by their hex digest.
fn plan_skopeo_dir(root: &Root) -> Result<Vec<Plan>> {
    let bytes = read_json_file(root, "manifest.json")?;
    let media_type = match Document::parse(&bytes, None).context("the directory's manifest.json")? {
        Document::Manifest(m) if !m.media_type.is_empty() => m.media_type,
        Document::Manifest(_) => mt::OCI_MANIFEST.to_string(),
        Document::Index(_) => bail!(
            "the directory holds an image index (skopeo copy --all): copy one platform's image into it instead"
        ),
    };
    let mut seen = HashMap::new();
    Ok(vec![plan_manifest(
        root,
        BlobPaths::SkopeoDir,
        bytes,
        &media_type,
        Vec::new(),
        &mut seen,
    )?])
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
    let mut index_plans = Vec::new();
    let plans = if has("manifest.json") && has("version") && !has("index.json") {
        plan_skopeo_dir(&root)?
    } else if has("manifest.json") {
        // A docker archive, read as docker reads it. `docker save` (25 and later) and
        // BuildKit's docker exporter also write an OCI layout beside manifest.json: the
        // manifests it has for these images are kept.
        let mut plans = plan_docker(&root)?;
        if has("index.json") {
            attach_layout_manifests(&root, &mut plans);
        }
        plans
    } else if has("index.json") {
        let (plans, indexes) = plan_oci(&root)?;
        index_plans = indexes;
        plans
    } else {
        bail!("not an image archive: it has neither manifest.json (docker) nor index.json (OCI)");
    };
    // Check every config before importing anything.
    let mut configs = Vec::new();
    for p in &plans {
        let c = ImageConfig::parse(&p.config)
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
        let mut ids: Vec<Digest> = Vec::new();
        let members: std::collections::BTreeSet<usize> = index_plans
            .iter()
            .flat_map(|x| x.members.iter().map(|m| m.1))
            .collect();
        for (n, (p, c)) in plans.iter().zip(&configs).enumerate() {
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
            let now = crate::timefmt::now();
            let manifest = p.manifest.as_ref().map(|(b, m)| (&b[..], m.as_str()));
            let id = store.put_distributed_image(&p.config, manifest, &p.tags, now)?;
            ids.push(id.clone());
            // An index's member is reported with its index, unless it has names of its own.
            if !p.tags.is_empty() || !members.contains(&n) {
                out.push(Loaded {
                    id,
                    tags: p.tags.clone(),
                });
            }
        }
        for x in &index_plans {
            let now = crate::timefmt::now();
            let id = match &x.document {
                Some((bytes, media_type)) => {
                    let here: Vec<(Digest, Digest)> = x
                        .members
                        .iter()
                        .map(|(d, i, _)| (d.clone(), ids[*i].clone()))
                        .collect();
                    store
                        .put_distributed_index(bytes, media_type, &here, &x.tags, now)?
                        .digest
                }
                None => {
                    let members: Vec<(Platform, Digest)> = x
                        .members
                        .iter()
                        .map(|(_, i, p)| (p.clone(), ids[*i].clone()))
                        .collect();
                    store.put_index(&members, &x.tags, now)?
                }
            };
            out.push(Loaded {
                id,
                tags: x.tags.clone(),
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
