//! Exporters: an image of the local store as an OCI layout (tar or directory), a `docker load`
//! archive, or its final root filesystem (a directory or one tar).
//!
//! Layer blobs come from [`ImageStore::layer_blob`] (compressed once, reused), except that an
//! uncompressed layer a build made is streamed from its snapshot (stored nowhere); the config is the
//! stored one (its digest is the image ID); the manifest is written for the chosen media types.
//! Archives are deterministic: fixed entry order, mode, owner and mtime.

use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use strata_cache::Digest;
use strata_cache::compress::Compression;
use strata_cache::images::{Image, ImageStore};
use strata_oci::archive::{ArchiveEntry, OCI_LAYOUT};
use strata_oci::media_type::{
    self as mt, DOCKER_CONFIG, DOCKER_MANIFEST, OCI_CONFIG, OCI_MANIFEST,
};
use strata_oci::{Descriptor, DigestWriter, Index, Manifest, Platform};

/// How layers and manifests are written.
#[derive(Debug, Clone)]
pub struct Format {
    pub compression: Compression,
    pub level: i32,
    /// OCI media types (default) or Docker schema 2's.
    pub oci_media_types: bool,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// Compress again even when a blob in this compression exists (e.g. as pulled).
    pub force: bool,
}

impl Default for Format {
    fn default() -> Self {
        Format {
            compression: Compression::Gzip,
            level: Compression::Gzip.default_level(),
            oci_media_types: true,
            annotations: BTreeMap::new(),
            force: false,
        }
    }
}

/// An image's manifest and the blobs it names.
#[derive(Debug, Clone)]
pub struct Manifested {
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// The image's tags (full names).
    pub tags: Vec<String>,
    pub platform: Platform,
}

/// Makes (or reuses) the image's layer blobs in `fmt` and writes its manifest.
pub fn manifest(store: &mut ImageStore, img: &Image, fmt: &Format) -> Result<Manifested> {
    // Without compression, a layer a build made is streamed from its snapshot when the
    // archive is written (`Sink::layer_tar`): its digest is its diff ID, nothing is stored.
    let mut streamed = std::collections::BTreeMap::new();
    if fmt.compression == Compression::Uncompressed {
        for d in &img.config.rootfs.diff_ids {
            if let Some((_, size)) = store.snapshot_tar(d)? {
                let media_type = if fmt.oci_media_types {
                    Compression::Uncompressed.oci_media_type()
                } else {
                    Compression::Uncompressed
                        .docker_media_type()
                        .unwrap_or_default()
                };
                let desc = Descriptor::new(media_type, d.clone(), size);
                streamed.insert(d.clone(), desc);
            }
        }
    }
    manifest_with(store, img, fmt, &|d| streamed.get(d).cloned())
}

/// [`manifest`], with some layers' blobs given (a registry's, for layers pulled lazily).
pub fn manifest_with(
    store: &mut ImageStore,
    img: &Image,
    fmt: &Format,
    given: &dyn Fn(&Digest) -> Option<Descriptor>,
) -> Result<Manifested> {
    let mut layers = Vec::new();
    for d in &img.config.rootfs.diff_ids {
        if let Some(desc) = given(d) {
            layers.push(desc);
            continue;
        }
        let mut desc = store
            .layer_blob(d, fmt.compression, fmt.level, fmt.force)
            .with_context(|| format!("making the blob of layer {d}"))?;
        if !fmt.oci_media_types {
            desc.media_type = fmt
                .compression
                .docker_media_type()
                .context("Docker media types have no zstd layers: use oci-mediatypes=true or compression=gzip")?
                .to_string();
        }
        layers.push(desc);
    }
    let config = Descriptor::new(
        if fmt.oci_media_types {
            OCI_CONFIG
        } else {
            DOCKER_CONFIG
        },
        img.record.config_digest.clone(),
        img.config_bytes.len() as u64,
    );
    let media_type = if fmt.oci_media_types {
        OCI_MANIFEST
    } else {
        DOCKER_MANIFEST
    };
    let mut m = Manifest::new(media_type, config.clone(), layers.clone());
    m.annotations = fmt.annotations.clone();
    let (manifest, manifest_digest) = m.encode();
    let platform = descriptor_platform(&img.config);
    Ok(Manifested {
        manifest,
        manifest_digest,
        media_type: media_type.to_string(),
        config,
        layers,
        tags: img.record.tags.clone(),
        platform,
    })
}

/// The platform of an image's index entry: as its config says (not normalized).
fn descriptor_platform(c: &strata_oci::ImageConfig) -> Platform {
    Platform {
        os: c.os.clone(),
        architecture: c.architecture.clone(),
        variant: c.variant.clone(),
        os_version: c.os_version.clone(),
        os_features: c.os_features.clone(),
    }
}

/// An index entry for a manifest, named `name` when given.
fn index_entry(m: &Manifested, name: Option<&String>, platform: bool) -> Descriptor {
    let mut d = Descriptor::new(
        &m.media_type,
        m.manifest_digest.clone(),
        m.manifest.len() as u64,
    );
    if platform {
        d.platform = Some(m.platform.clone());
    }
    named(d, name)
}

/// `d` with the annotations that name it `name` in a layout's `index.json`, when given.
fn named(mut d: Descriptor, name: Option<&String>) -> Descriptor {
    if let Some(n) = name {
        d.annotations
            .insert(mt::ANNOTATION_IMAGE_NAME.into(), n.clone());
        d.annotations
            .insert(mt::ANNOTATION_REF_NAME.into(), ref_name(n).to_string());
    }
    d
}

/// A `docker load` archive's `manifest.json` entry for an image written as `m`.
fn archive_entry(m: &Manifested, names: &[String]) -> ArchiveEntry {
    ArchiveEntry {
        config: format!("blobs/sha256/{}", m.config.digest.hex()),
        repo_tags: names.iter().map(|n| familiar(n)).collect(),
        layers: m
            .layers
            .iter()
            .map(|l| format!("blobs/sha256/{}", l.digest.hex()))
            .collect(),
        layer_sources: Default::default(),
    }
}

/// The index of `entries` for `fmt`: an OCI index, or a Docker manifest list with Docker
/// media types. Returns its bytes, digest and media type.
pub fn index_document(entries: Vec<Descriptor>, fmt: &Format) -> (Vec<u8>, Digest, &'static str) {
    let media_type = if fmt.oci_media_types {
        mt::OCI_INDEX
    } else {
        mt::DOCKER_MANIFEST_LIST
    };
    let mut idx = Index::new(entries);
    idx.media_type = media_type.into();
    let (bytes, digest) = idx.encode();
    (bytes, digest, media_type)
}

/// Where an archive's files go: a tar stream or a directory.
enum Sink {
    Tar(tar::Builder<Box<dyn Write>>, BTreeSet<String>),
    Dir(PathBuf),
}

/// The deterministic header of an archive entry: owned by root, mtime 0.
fn archive_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

impl Sink {
    fn dir_entry(&mut self, path: &str) -> Result<()> {
        match self {
            Sink::Tar(b, seen) => {
                if seen.insert(path.to_string()) {
                    let mut h = archive_header(tar::EntryType::Directory, 0o755, 0);
                    b.append_data(&mut h, path, std::io::empty())?;
                }
            }
            Sink::Dir(d) => std::fs::create_dir_all(d.join(path))?,
        }
        Ok(())
    }

    fn file(&mut self, path: &str, size: u64, mut data: impl Read) -> Result<()> {
        match self {
            Sink::Tar(b, seen) => {
                if !seen.insert(path.to_string()) {
                    return Ok(());
                }
                let mut h = archive_header(tar::EntryType::Regular, 0o644, size);
                b.append_data(&mut h, path, data)?;
            }
            Sink::Dir(d) => {
                let p = d.join(path);
                if p.exists() {
                    return Ok(());
                }
                // Written beside, renamed into place: never a half-written blob. (Not synced:
                // this is the user's output, as BuildKit's exporters and `docker save` leave it.)
                let tmp = p.with_extension("partial");
                let mut f = std::fs::File::create(&tmp)?;
                std::io::copy(&mut data, &mut f)?;
                std::fs::rename(&tmp, &p)?;
            }
        }
        Ok(())
    }

    /// A layer's uncompressed tar written from its snapshot, checked against its diff ID
    /// (and nothing renamed into place when it does not match).
    fn layer_tar(
        &mut self,
        path: &str,
        size: u64,
        snapshot: &Path,
        diff_id: &Digest,
    ) -> Result<()> {
        let write = |w: &mut dyn Write| -> Result<()> {
            let mut hw = DigestWriter::new(w);
            strata_cache::difftar::write_diff_tar(snapshot, &mut hw, &Default::default())?;
            let (_, d) = hw.finish();
            if d != *diff_id {
                bail!(
                    "layer {diff_id} now hashes to {d}: its snapshot was changed on disk; rebuild the image"
                );
            }
            Ok(())
        };
        match self {
            Sink::Tar(b, seen) => {
                if !seen.insert(path.to_string()) {
                    return Ok(());
                }
                let mut h = archive_header(tar::EntryType::Regular, 0o644, size);
                let (r, mut w) = std::io::pipe()?;
                std::thread::scope(|sc| {
                    let writer = sc.spawn(move || {
                        let res = write(&mut w);
                        drop(w);
                        res
                    });
                    let appended = b.append_data(&mut h, path, r);
                    writer
                        .join()
                        .map_err(|_| anyhow::anyhow!("writing layer {diff_id} panicked"))??;
                    appended?;
                    Ok(())
                })
            }
            Sink::Dir(d) => {
                let p = d.join(path);
                if p.exists() {
                    return Ok(());
                }
                let tmp = p.with_extension("partial");
                let mut f =
                    std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
                if let Err(e) = write(&mut f).and_then(|()| Ok(f.flush()?)) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
                drop(f);
                std::fs::rename(&tmp, &p)?;
                Ok(())
            }
        }
    }

    fn bytes(&mut self, path: &str, data: &[u8]) -> Result<()> {
        self.file(path, data.len() as u64, data)
    }

    fn blob(&mut self, store: &ImageStore, d: &Digest, bytes: Option<&[u8]>) -> Result<String> {
        let path = format!("blobs/sha256/{}", d.hex());
        self.dir_entry("blobs/")?;
        self.dir_entry("blobs/sha256/")?;
        match bytes {
            Some(b) => self.bytes(&path, b)?,
            None => {
                let f = store.content.open_blob(d)?;
                let size = f.metadata()?.len();
                self.file(&path, size, f)?;
            }
        }
        Ok(path)
    }

    fn finish(self) -> Result<()> {
        if let Sink::Tar(mut b, _) = self {
            b.finish()?;
            b.into_inner()?.flush()?;
        }
        Ok(())
    }
}

/// The `org.opencontainers.image.ref.name` of a tag (`docker.io/library/app:v1` → `v1`).
fn ref_name(tag: &str) -> &str {
    match tag.rsplit_once(':') {
        Some((_, t)) if !t.contains('/') => t,
        _ => "latest",
    }
}

/// The familiar form docker shows (`app:v1`).
fn familiar(tag: &str) -> String {
    let t = tag.strip_prefix("docker.io/").unwrap_or(tag);
    t.strip_prefix("library/").unwrap_or(t).to_string()
}

/// Where an archive goes.
pub enum Dest {
    /// A tar stream (a file or standard output).
    Tar(Box<dyn Write>),
    /// A directory (an OCI layout with `tar=false`).
    Dir(PathBuf),
}

fn sink(dest: Dest) -> Result<Sink> {
    Ok(match dest {
        Dest::Tar(w) => {
            let mut b = tar::Builder::new(w);
            b.mode(tar::HeaderMode::Deterministic);
            Sink::Tar(b, BTreeSet::new())
        }
        Dest::Dir(d) => {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            Sink::Dir(d)
        }
    })
}

fn write_blobs(s: &mut Sink, store: &ImageStore, m: &Manifested, config: &[u8]) -> Result<()> {
    s.blob(store, &m.config.digest, Some(config))?;
    for l in &m.layers {
        if !store.content.exists(&l.digest)
            && let Some((dir, size)) = store.snapshot_tar(&l.digest)?
        {
            s.dir_entry("blobs/")?;
            s.dir_entry("blobs/sha256/")?;
            s.layer_tar(
                &format!("blobs/sha256/{}", l.digest.hex()),
                size,
                &dir,
                &l.digest,
            )?;
            continue;
        }
        s.blob(store, &l.digest, None)?;
    }
    s.blob(store, &m.manifest_digest, Some(&m.manifest))?;
    Ok(())
}

/// Writes images as an OCI image layout. `names` are the full names each image is listed
/// under (its tags when empty).
pub fn write_oci(
    store: &mut ImageStore,
    images: &[(Image, Vec<String>)],
    fmt: &Format,
    dest: Dest,
) -> Result<()> {
    let mut s = sink(dest)?;
    let mut index = Vec::new();
    for (img, names) in images {
        let m = manifest(store, img, fmt)?;
        write_blobs(&mut s, store, &m, &img.config_bytes)?;
        let names = if names.is_empty() { &m.tags } else { names };
        if names.is_empty() {
            index.push(index_entry(&m, None, true));
        }
        for n in names {
            index.push(index_entry(&m, Some(n), true));
        }
    }
    s.bytes("oci-layout", OCI_LAYOUT)?;
    s.bytes("index.json", &Index::new(index).encode().0)?;
    s.finish()
}

/// Writes images as a `docker load` archive: an OCI layout plus `manifest.json` (as BuildKit's
/// docker exporter does), with Docker media types unless asked otherwise.
pub fn write_docker(
    store: &mut ImageStore,
    images: &[(Image, Vec<String>)],
    fmt: &Format,
    dest: Dest,
) -> Result<()> {
    let mut s = sink(dest)?;
    let mut entries = Vec::new();
    let mut index = Vec::new();
    for (img, names) in images {
        let m = manifest(store, img, fmt)?;
        write_blobs(&mut s, store, &m, &img.config_bytes)?;
        let names = if names.is_empty() { &m.tags } else { names };
        entries.push(archive_entry(&m, names));
        if names.is_empty() {
            index.push(index_entry(&m, None, false));
        }
        for n in names {
            index.push(index_entry(&m, Some(n), false));
        }
    }
    s.bytes("oci-layout", OCI_LAYOUT)?;
    s.bytes("index.json", &Index::new(index).encode().0)?;
    s.bytes("manifest.json", &serde_json::to_vec(&entries)?)?;
    s.finish()
}

/// A multi-platform image as written: each member's manifest and the index naming them.
#[derive(Debug, Clone)]
pub struct Indexed {
    pub members: Vec<Manifested>,
    pub index: Vec<u8>,
    pub digest: Digest,
    pub media_type: String,
}

/// Makes each member's manifest in `fmt` and the index of them (an OCI index, or a Docker
/// manifest list with Docker media types), each entry with its image's platform.
pub fn index_of(store: &mut ImageStore, members: &[Image], fmt: &Format) -> Result<Indexed> {
    let mut manifests = Vec::new();
    let mut entries = Vec::new();
    for img in members {
        let m = manifest(store, img, fmt)?;
        entries.push(index_entry(&m, None, true));
        manifests.push(m);
    }
    let (index, digest, media_type) = index_document(entries, fmt);
    Ok(Indexed {
        members: manifests,
        index,
        digest,
        media_type: media_type.into(),
    })
}

/// Writes a multi-platform image as an OCI layout (`docker = false`) or a `docker load`
/// archive: every member's blobs, the image index as a blob, and `index.json` naming that
/// index under `names` (as BuildKit's exporters do). The docker archive's `manifest.json`
/// lists one image, the member this machine runs (the first when it runs none), so a classic
/// `docker load` or `skopeo … docker-archive:` takes the image it can run, while a loader that
/// reads the layout (containerd's) gets every platform. Returns the index digest.
pub fn write_index(
    store: &mut ImageStore,
    members: &[Image],
    names: &[String],
    fmt: &Format,
    dest: Dest,
    docker: bool,
) -> Result<Digest> {
    let mut s = sink(dest)?;
    let indexed = index_of(store, members, fmt)?;
    let host = Platform::host();
    let native = members
        .iter()
        .position(|i| host.rank(&i.config.platform()).is_some())
        .unwrap_or(0);
    let mut entries = Vec::new();
    for (i, (img, m)) in members.iter().zip(&indexed.members).enumerate() {
        write_blobs(&mut s, store, m, &img.config_bytes)?;
        if i != native {
            continue;
        }
        entries.push(archive_entry(m, names));
    }
    s.blob(store, &indexed.digest, Some(&indexed.index))?;
    let top = Descriptor::new(
        &indexed.media_type,
        indexed.digest.clone(),
        indexed.index.len() as u64,
    );
    let mut index = Vec::new();
    if names.is_empty() {
        index.push(top.clone());
    }
    for n in names {
        index.push(named(top.clone(), Some(n)));
    }
    s.bytes("oci-layout", OCI_LAYOUT)?;
    s.bytes("index.json", &Index::new(index).encode().0)?;
    if docker {
        s.bytes("manifest.json", &serde_json::to_vec(&entries)?)?;
    }
    s.finish()?;
    Ok(indexed.digest)
}

/// The directory buildx names a platform's files in (`linux_amd64`, `linux_arm_v7`).
/// Its parts come from image configs: anything but letters, digits, `-` and `+` becomes
/// `_`, so a name is always one component below the destination (never `..` or a path).
pub fn platform_dir(p: &Platform) -> String {
    let mut parts = vec![p.os.as_str(), p.architecture.as_str()];
    if let Some(v) = &p.variant {
        parts.push(v);
    }
    let s: String = parts
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.chars().all(|c| c == '_') {
        "unknown".into()
    } else {
        s
    }
}

/// Each member's root filesystem under `dest/<platform>/` (type=local of several platforms).
pub fn write_local_platforms(store: &ImageStore, members: &[Image], dest: &Path) -> Result<()> {
    for img in members {
        let dir = dest.join(platform_dir(&img.config.platform().normalized()));
        write_local(store, img, &dir)?;
    }
    Ok(())
}

/// The image's layer directories, top first.
pub fn layer_dirs(store: &ImageStore, img: &Image) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for d in img.config.rootfs.diff_ids.iter().rev() {
        let p = store.snapshot_dir(d);
        if !p.is_dir() {
            bail!("layer {d} has no snapshot: re-import or rebuild the image");
        }
        v.push(p);
    }
    Ok(v)
}

/// The final root filesystem as files under `dest` (type=local).
pub fn write_local(store: &ImageStore, img: &Image, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    Ok(strata_executor::native::materialize(
        &layer_dirs(store, img)?,
        dest,
    )?)
}

/// Every member's root filesystem in one tar, each under `<platform>/` (type=tar of several
/// platforms, as buildx writes it): made under `scratch` (removed after).
pub fn write_rootfs_tar_platforms(
    store: &ImageStore,
    members: &[Image],
    scratch: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    tar_of(scratch, out, |d| write_local_platforms(store, members, d))
}

/// What `fill` writes under `scratch`, as one tar on `out`; `scratch` is removed after.
fn tar_of(
    scratch: &Path,
    out: &mut dyn Write,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let _ = std::fs::remove_dir_all(scratch);
    let r = fill(scratch).and_then(|_| {
        strata_cache::difftar::write_diff_tar(scratch, out, &Default::default())
            .map(|_| ())
            .map_err(anyhow::Error::from)
    });
    let _ = std::fs::remove_dir_all(scratch);
    r
}

/// The final root filesystem as one tar (type=tar): made under `scratch` (removed after).
pub fn write_rootfs_tar(
    store: &ImageStore,
    img: &Image,
    scratch: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    tar_of(scratch, out, |d| write_local(store, img, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platform_directory_is_one_safe_component() {
        let p = |os: &str, arch: &str, v: Option<&str>| Platform::new(os, arch, v);
        assert_eq!(platform_dir(&p("linux", "arm", Some("v7"))), "linux_arm_v7");
        assert_eq!(platform_dir(&p("linux", "amd64", None)), "linux_amd64");
        assert_eq!(
            platform_dir(&p("linux", "../../etc", None)),
            "linux_______etc"
        );
        assert_eq!(platform_dir(&p("..", "", None)), "unknown");
    }
}
