//! The local image store: content store + metadata + layer snapshots, under one state root.
//!
//! Layout of `<root>`:
//! - `blobs/sha256/<hex>`: layer tars, image configs and manifests ([`crate::store`]);
//! - `metadata.db`: images, tags, layers ([`crate::metadata`]);
//! - `snapshots/<diff_id hex>`: each layer unpacked once, with overlay whiteouts, shared by every
//!   image (and container) that uses it;
//! - `tmp/`: writes in progress.
//!
//! The root and these directories are private to their owner ([`crate::root`]).

use crate::digest::Digest;
use crate::metadata::{ImageRecord, LayerRecord, Metadata, MetadataError};
use crate::store::{ContentStore, StoreError};
use crate::sys::FsOps;
use crate::unpack::{UnpackError, UnpackOptions, decompress, unpack_new_in};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
mod indexes;
pub use indexes::{ForPlatform, StoredIndex};
pub use strata_oci::config::{ImageConfig, RootFs};
pub use strata_oci::manifest::{Descriptor, Manifest};
use strata_oci::media_type as mt;
use strata_oci::platform::Platform;
use strata_oci::{DigestReader, DigestWriter};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    Root(#[from] crate::root::RootError),
    #[error("image config {digest}: {reason}")]
    BadConfig { digest: Digest, reason: String },
    #[error("no such image: {0}")]
    NoSuchImage(String),
    #[error(transparent)]
    DiffTar(crate::difftar::DiffTarError),
    #[error("image {image} is referenced by {tags} tags: remove them or use -f")]
    InUse { image: String, tags: usize },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// An image as the store knows it.
#[derive(Debug, Clone)]
pub struct Image {
    pub record: ImageRecord,
    pub config: ImageConfig,
    /// The config blob's bytes, exactly as stored.
    pub config_bytes: Vec<u8>,
}

/// The store under one state root.
pub struct ImageStore {
    root: PathBuf,
    pub content: ContentStore,
    pub meta: Metadata,
}

impl ImageStore {
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        // The root and its data directories: 0700, so no other user reaches a layer's
        // setuid files or device nodes. What is left open is said once per process (a build
        // opens the store for every step).
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let warnings = crate::root::prepare(root)?;
        if !warnings.is_empty() && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            for w in warnings {
                tracing::warn!("{w}");
            }
        }
        Ok(ImageStore {
            root: root.to_path_buf(),
            content: ContentStore::open(root)?,
            meta: Metadata::open(root)?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether a layer is usable: unpacked, or fetchable from where it was pulled lazily.
    pub fn layer_available(&self, diff_id: &Digest) -> bool {
        self.snapshot_dir(diff_id).is_dir()
            || self.meta.layer_source(diff_id).ok().flatten().is_some()
    }

    /// The layer chain the build cache holds for `key`, if every layer of it is usable.
    pub fn cached_chain(&self, key: &Digest) -> Result<Option<Vec<Option<Digest>>>, ImageError> {
        Ok(self
            .meta
            .cached_result(key)?
            .filter(|chain| chain.iter().flatten().all(|d| self.layer_available(d))))
    }

    /// The directory of a layer's snapshot.
    pub fn snapshot_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("snapshots").join(diff_id.hex())
    }

    /// Makes a directory holding a layer's diff (as overlayfs writes an upper directory) a
    /// layer: computes its diff ID from its tar (not kept: the same bytes can be written again
    /// from the snapshot), moves the directory into `snapshots/` (or drops it when an identical
    /// layer is already there) and records the layer. `None` (and the directory removed) when
    /// the diff is empty: the step changed nothing.
    ///
    /// With `clamp_mtime` (SOURCE_DATE_EPOCH), every mtime after it in the directory is set to
    /// it first, so the layer is the same whenever it is built.
    pub fn commit_layer(
        &mut self,
        dir: &Path,
        clamp_mtime: Option<i64>,
    ) -> Result<Option<LayerRecord>, ImageError> {
        if let Some(epoch) = clamp_mtime {
            clamp_tree(dir, epoch).map_err(|source| ImageError::Io {
                op: "clamp mtimes in",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let (diff_id, stats) =
            crate::difftar::diff_id(dir, &Default::default()).map_err(ImageError::DiffTar)?;
        let remove = |d: &Path| {
            let _ = std::fs::remove_dir_all(d);
        };
        if stats.entries == 0 {
            remove(dir);
            return Ok(None);
        }
        let dest = self.snapshot_dir(&diff_id);
        if dest.exists() {
            remove(dir);
        } else {
            match std::fs::rename(dir, &dest) {
                Ok(()) => {}
                // A concurrent build committed the same layer first.
                Err(_) if dest.exists() => remove(dir),
                Err(source) => {
                    return Err(ImageError::Io {
                        op: "move into the snapshots",
                        path: dir.to_path_buf(),
                        source,
                    });
                }
            }
            if let Ok(d) = std::fs::File::open(self.root.join("snapshots")) {
                let _ = d.sync_all();
            }
        }
        let rec = LayerRecord {
            diff_id: diff_id.clone(),
            blob_digest: None,
            media_type: Some(mt::OCI_LAYER.into()),
            size: stats.size,
            snapshot: Some(diff_id.hex().to_string()),
        };
        self.meta.put_layer(&rec)?;
        Ok(Some(rec))
    }

    /// Imports a layer archive (plain or compressed): stores the uncompressed tar as a blob
    /// (its digest is the diff ID) and unpacks it once into its snapshot.
    pub fn import_layer(
        &mut self,
        r: impl Read,
        fs: &dyn FsOps,
        opts: &UnpackOptions,
    ) -> Result<LayerRecord, ImageError> {
        // 1. Decompress into the store; the blob digest is the diff ID.
        let plain = decompress(r).map_err(|e| ImageError::Unpack(UnpackError::Archive(e)))?;
        let written = self
            .content
            .ingest(plain, None, Some(opts.max_bytes.saturating_mul(2)))?;
        let diff_id = written.digest.clone();
        // 2. Unpack once; a concurrent import of the same layer may win the rename.
        let dir = self.snapshot_dir(&diff_id);
        if !dir.exists() {
            let blob = self.content.open_blob(&diff_id)?;
            // Unpacked in tmp/ (held, so a killed import's half is found and removed there),
            // unless tmp/ is on another filesystem than snapshots/ (a rename cannot cross).
            use std::os::unix::fs::MetadataExt;
            let snaps = self.root.join("snapshots");
            let tmp = self.content.tmp_dir();
            let scratch = match (std::fs::metadata(tmp), std::fs::metadata(&snaps)) {
                (Ok(t), Ok(s)) if t.dev() == s.dev() => tmp.to_path_buf(),
                _ => snaps,
            };
            match unpack_new_in(blob, &dir, &scratch, fs, opts) {
                Ok(_) => {}
                Err(UnpackError::Dest { .. }) if dir.exists() => {}
                Err(e) => {
                    // The blob of a rejected layer is not kept either.
                    let _ = self.content.delete(&diff_id);
                    return Err(e.into());
                }
            }
        }
        let rec = LayerRecord {
            diff_id: diff_id.clone(),
            blob_digest: Some(diff_id.clone()),
            media_type: Some(mt::OCI_LAYER.into()),
            size: written.size,
            snapshot: Some(diff_id.hex().to_string()),
        };
        self.meta.put_layer(&rec)?;
        Ok(rec)
    }

    /// Records an image from its config (serialized here, once) and its layers, which must
    /// have been imported. Returns the image ID.
    pub fn put_image(
        &mut self,
        config: &ImageConfig,
        tags: &[String],
        now: i64,
    ) -> Result<Digest, ImageError> {
        let config_bytes = serde_json::to_vec(config).map_err(|e| ImageError::BadConfig {
            digest: Digest::of(b""),
            reason: e.to_string(),
        })?;
        self.put_image_bytes(&config_bytes, tags, now)
    }

    /// Records an image from its config exactly as given (a loaded image keeps its ID).
    pub fn put_image_bytes(
        &mut self,
        config_bytes: &[u8],
        tags: &[String],
        now: i64,
    ) -> Result<Digest, ImageError> {
        self.put_distributed_image(config_bytes, None, tags, now)
    }

    /// Records an image from its config exactly as given and, when it was pulled or loaded,
    /// the manifest (bytes, media type) it came with: kept, so that pushing it unchanged
    /// sends the same bytes under the same digest. Without one, an OCI manifest of its
    /// uncompressed layers is recorded.
    pub fn put_distributed_image(
        &mut self,
        config_bytes: &[u8],
        distributed: Option<(&[u8], &str)>,
        tags: &[String],
        now: i64,
    ) -> Result<Digest, ImageError> {
        let bad = |reason: String| ImageError::BadConfig {
            digest: Digest::of(config_bytes),
            reason,
        };
        let config = ImageConfig::parse(config_bytes).map_err(|e| bad(e.to_string()))?;
        let cfg = self.content.put(config_bytes)?;
        let mut layers = Vec::new();
        let mut size = 0;
        for d in &config.rootfs.diff_ids {
            let l = self
                .meta
                .layer(d)?
                .ok_or_else(|| bad(format!("layer {d} is not in the store")))?;
            size += l.size;
            layers.push(Descriptor::new(
                l.media_type.as_deref().unwrap_or(mt::OCI_LAYER),
                l.blob_digest.clone().unwrap_or_else(|| d.clone()),
                l.size,
            ));
        }
        let manifest_digest = match distributed {
            Some((bytes, media_type)) => {
                let m = strata_oci::Document::parse_image_manifest(bytes, Some(media_type))
                    .map_err(|e| bad(e.to_string()))?;
                if m.config.digest != cfg.digest {
                    return Err(bad(format!(
                        "its manifest names config {}",
                        m.config.digest
                    )));
                }
                let d = self.content.put(bytes)?.digest;
                self.meta
                    .put_distributed_manifest(&cfg.digest, &d, media_type)?;
                d
            }
            None => {
                let manifest = Manifest::new(
                    mt::OCI_MANIFEST,
                    Descriptor::new(mt::OCI_CONFIG, cfg.digest.clone(), cfg.size),
                    layers,
                );
                let (bytes, _) = manifest.encode();
                self.content.put(&bytes)?.digest
            }
        };
        let rec = ImageRecord {
            id: cfg.digest.clone(),
            config_digest: cfg.digest.clone(),
            manifest_digest: Some(manifest_digest),
            created: config.created.clone(),
            size,
            layers: config.rootfs.diff_ids.clone(),
            tags: tags.to_vec(),
        };
        self.meta.put_image(&rec, now)?;
        Ok(cfg.digest)
    }

    /// The manifest an image was pulled or loaded with (bytes, media type), if it still has
    /// it.
    pub fn distributed_manifest(
        &self,
        image_id: &Digest,
    ) -> Result<Option<(Vec<u8>, String)>, ImageError> {
        let Some((d, media_type)) = self.meta.distributed_manifest(image_id)? else {
            return Ok(None);
        };
        if !self.content.exists(&d) {
            return Ok(None);
        }
        Ok(Some((self.content.read(&d)?, media_type)))
    }

    /// Looks an image up by tag or ID and loads its config.
    pub fn image(&self, name: &str) -> Result<Image, ImageError> {
        let record = self.meta.resolve(name)?.or_else(|| {
            // `busybox` means `busybox:latest`, as in docker.
            if name.contains(':') || name.contains('@') {
                None
            } else {
                self.meta.resolve(&format!("{name}:latest")).ok().flatten()
            }
        });
        let record = match record {
            Some(r) => r,
            // A multi-platform image: this machine's member, when it is here.
            None => match self.index(name)? {
                Some(idx) => match self.index_member_for(&idx.record, &Platform::host())? {
                    ForPlatform::Image(img) => return Ok(*img),
                    _ => {
                        return Err(ImageError::NoSuchImage(format!(
                            "{name} for {} (a multi-platform image without it here)",
                            Platform::host()
                        )));
                    }
                },
                None => return Err(ImageError::NoSuchImage(name.to_string())),
            },
        };
        let config_bytes = self.content.read(&record.config_digest)?;
        let config = ImageConfig::parse(&config_bytes).map_err(|e| ImageError::BadConfig {
            digest: record.config_digest.clone(),
            reason: e.to_string(),
        })?;
        Ok(Image {
            record,
            config,
            config_bytes,
        })
    }

    /// `docker rmi`: removes a tag; when `name` is an ID, or its last tag goes, removes the image
    /// and the layers nothing else uses (blobs and snapshots). Returns what was removed, as
    /// `Untagged: …` / `Deleted: …` lines.
    pub fn remove(&mut self, name: &str, force: bool) -> Result<Vec<String>, ImageError> {
        if let Some(idx) = self.index(name)? {
            return self.remove_index(&idx.record, name);
        }
        let img = self.image(name)?;
        let mut out = Vec::new();
        let tag = if img.record.tags.iter().any(|t| t == name) {
            Some(name.to_string())
        } else if img
            .record
            .tags
            .iter()
            .any(|t| *t == format!("{name}:latest"))
        {
            Some(format!("{name}:latest"))
        } else {
            None
        };
        match tag {
            Some(t) => {
                self.meta.untag(&t)?;
                out.push(format!("Untagged: {t}"));
                if img.record.tags.len() > 1 {
                    return Ok(out);
                }
            }
            None => {
                if img.record.tags.len() > 1 && !force {
                    return Err(ImageError::InUse {
                        image: img.record.id.short().to_string(),
                        tags: img.record.tags.len(),
                    });
                }
                for t in &img.record.tags {
                    self.meta.untag(t)?;
                    out.push(format!("Untagged: {t}"));
                }
            }
        }
        let orphans = self.meta.delete_image(&img.record.id)?;
        out.push(format!("Deleted: {}", img.record.id));
        let _ = self.content.delete(&img.record.config_digest);
        if let Some(m) = &img.record.manifest_digest {
            let _ = self.content.delete(m);
        }
        for l in orphans {
            self.remove_layer_files(&l)?;
            out.push(format!("Deleted: {}", l.diff_id));
        }
        Ok(out)
    }
}

impl ImageStore {
    /// Removes a layer's snapshot and blob (its record is already gone).
    pub fn remove_layer_files(&self, l: &LayerRecord) -> Result<(), ImageError> {
        let dir = self.snapshot_dir(&l.diff_id);
        if dir.exists() {
            remove_tree(&dir).map_err(|source| ImageError::Io {
                op: "remove snapshot",
                path: dir.clone(),
                source,
            })?;
        }
        let mut blobs = self.meta.layer_blobs_of(&l.diff_id)?;
        blobs.extend(l.blob_digest.clone());
        blobs.push(l.diff_id.clone());
        for b in blobs {
            if self.content.exists(&b) {
                self.content.delete(&b)?;
            }
        }
        Ok(())
    }

    /// A layer's blob in a compression and level, made once and recorded (later exports reuse
    /// it). The tar is the stored one for imported layers, else written again from the
    /// snapshot; either way it must hash to the diff ID, or the snapshot was tampered with.
    pub fn layer_blob(
        &mut self,
        diff_id: &Digest,
        compression: crate::compress::Compression,
        level: i32,
        force: bool,
    ) -> Result<Descriptor, ImageError> {
        use crate::compress::{Compression, ParallelCompressor};
        let media_type = compression.oci_media_type().to_string();
        let (c, lvl) = (compression.name(), level);
        // A blob as pulled (level -1: unknown) serves any level, unless forced.
        for l in [lvl, -1] {
            if l == -1 && force {
                continue;
            }
            if let Some((digest, size)) = self.meta.layer_blob(diff_id, c, l)?
                && self.content.exists(&digest)
            {
                return Ok(Descriptor::new(&media_type, digest, size));
            }
        }
        let rec = self
            .meta
            .layer(diff_id)?
            .ok_or_else(|| ImageError::BadConfig {
                digest: diff_id.clone(),
                reason: "layer is not in the store".into(),
            })?;
        let tmp = self.content.temp_file()?;
        let tmp_path = tmp.path().to_path_buf();
        let io_err = |op: &'static str| {
            let path = tmp_path.clone();
            move |source| ImageError::Io { op, path, source }
        };
        let file = tmp.as_file().try_clone().map_err(io_err("open"))?;
        let out = DigestWriter::new(io::BufWriter::new(file));
        let (out, uncompressed) = if compression == Compression::Uncompressed {
            let mut hw = DigestWriter::new(out);
            self.write_layer_tar(&rec, &mut hw)?;
            hw.finish()
        } else {
            let comp = ParallelCompressor::new(out, compression, level);
            let mut hw = DigestWriter::new(comp);
            self.write_layer_tar(&rec, &mut hw)?;
            let (comp, d) = hw.finish();
            let (inner, _) = comp.finish().map_err(io_err("compress"))?;
            (inner, d)
        };
        if uncompressed != *diff_id {
            return Err(ImageError::BadConfig {
                digest: diff_id.clone(),
                reason: format!(
                    "the layer's content now hashes to {uncompressed}: its snapshot was changed on disk, or made by an older strata whose layer tars differ; rebuild the image"
                ),
            });
        }
        let (mut buf, digest) = out.finish();
        io::Write::flush(&mut buf).map_err(io_err("write"))?;
        drop(buf);
        let size = std::fs::metadata(&tmp_path).map_err(io_err("stat"))?.len();
        self.content.commit(tmp, &digest)?;
        self.meta.put_layer_blob(diff_id, c, lvl, &digest, size)?;
        Ok(Descriptor::new(&media_type, digest, size))
    }

    /// The snapshot a layer's uncompressed tar can be written from, with the tar's size, when
    /// no blob of it is stored: a layer a build committed. An export without compression
    /// streams it straight to its destination instead of storing the tar first
    /// ([`crate::difftar::write_diff_tar`], checked against the diff ID on the way).
    pub fn snapshot_tar(&self, diff_id: &Digest) -> Result<Option<(PathBuf, u64)>, ImageError> {
        let Some(rec) = self.meta.layer(diff_id)? else {
            return Ok(None);
        };
        let dir = self.snapshot_dir(diff_id);
        if rec.blob_digest.is_some() || self.content.exists(diff_id) || !dir.is_dir() {
            return Ok(None);
        }
        Ok(Some((dir, rec.size)))
    }

    /// A layer's uncompressed tar: the stored blob of an imported layer, or the snapshot
    /// written as a tar.
    pub fn write_layer_tar(
        &self,
        rec: &LayerRecord,
        w: &mut dyn io::Write,
    ) -> Result<(), ImageError> {
        let stored = rec.blob_digest.as_ref().unwrap_or(&rec.diff_id);
        if self.content.exists(stored) {
            let mut f = self.content.open_blob(stored)?;
            io::copy(&mut f, w).map_err(|source| ImageError::Io {
                op: "read",
                path: self.content.path(stored),
                source,
            })?;
            return Ok(());
        }
        let dir = self.snapshot_dir(&rec.diff_id);
        crate::difftar::write_diff_tar(&dir, w, &Default::default())
            .map_err(ImageError::DiffTar)?;
        Ok(())
    }
}

/// Sets every mtime after `epoch` under `dir` to `epoch`.
fn clamp_tree(dir: &Path, epoch: i64) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let ts = rustix::fs::Timespec {
        tv_sec: epoch,
        tv_nsec: 0,
    };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p)?;
        if m.is_dir() {
            for e in std::fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
        if m.mtime() > epoch || (m.mtime() == epoch && m.mtime_nsec() > 0) {
            let atime = rustix::fs::Timespec {
                tv_sec: m.atime(),
                tv_nsec: m.atime_nsec() as _,
            };
            rustix::fs::utimensat(
                rustix::fs::CWD,
                &p,
                &rustix::fs::Timestamps {
                    last_access: atime,
                    last_modification: ts,
                },
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
    }
    Ok(())
}

/// Removes a snapshot directory. Snapshot contents are owned by anyone and may be read-only
/// directories; make them writable first.
fn remove_tree(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = dir.with_file_name(format!(
        ".removing-{}",
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    // Move it aside first so a half-removed snapshot is never visible under its name.
    std::fs::rename(dir, &tmp)?;
    let mut stack = vec![tmp.clone()];
    while let Some(d) = stack.pop() {
        if let Ok(m) = std::fs::symlink_metadata(&d)
            && m.is_dir()
        {
            let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
            for e in std::fs::read_dir(&d)?.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(e.path());
                }
            }
        }
    }
    std::fs::remove_dir_all(&tmp)
}

/// The digest of everything `r` yields (for diff IDs of archives read elsewhere).
pub fn digest_reader(r: impl Read) -> io::Result<(Digest, u64)> {
    let mut t = DigestReader::new(r);
    io::copy(&mut t, &mut io::sink())?;
    let (_, d, n) = t.finish();
    Ok((d, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::RecordingFs;

    fn rootfs_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [
            ("bin/sh", &b"#!"[..]),
            ("etc/passwd", &b"root:x:0:0::/root:/bin/sh\n"[..]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn config(diff: &Digest) -> ImageConfig {
        ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            rootfs: RootFs::layers(vec![diff.clone()]),
            ..ImageConfig::default()
        }
    }

    #[test]
    fn import_list_tag_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ImageStore::open(dir.path()).unwrap();
        let fs = RecordingFs::default();
        let l = s
            .import_layer(&rootfs_tar()[..], &fs, &UnpackOptions::default())
            .unwrap();
        assert!(s.snapshot_dir(&l.diff_id).join("etc/passwd").is_file());
        // The same layer again: stored and unpacked once.
        let again = s
            .import_layer(&rootfs_tar()[..], &fs, &UnpackOptions::default())
            .unwrap();
        assert_eq!(again.diff_id, l.diff_id);
        let a = s
            .put_image(&config(&l.diff_id), &["a:latest".into()], 1)
            .unwrap();
        let mut c2 = config(&l.diff_id);
        c2.created = Some("2026-01-01T00:00:00Z".into());
        let b = s
            .put_image(&c2, &["b:latest".into(), "b:v2".into()], 2)
            .unwrap();
        assert_eq!(s.image("a").unwrap().record.id, a);
        assert_eq!(
            s.image(&b.hex()[..8]).unwrap().config.created.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(s.meta.layer_refcount(&l.diff_id).unwrap(), 2);
        // Removing one tag of two keeps the image.
        assert_eq!(s.remove("b:v2", false).unwrap(), vec!["Untagged: b:v2"]);
        assert!(matches!(s.image("b:v2"), Err(ImageError::NoSuchImage(_))));
        // Removing `a` keeps the shared layer.
        let out = s.remove("a", false).unwrap();
        assert_eq!(out[0], "Untagged: a:latest");
        assert!(s.snapshot_dir(&l.diff_id).exists());
        // Removing `b` removes the layer, its blob and its snapshot.
        let out = s.remove("b:latest", false).unwrap();
        assert!(
            out.iter()
                .any(|l2| l2 == &format!("Deleted: {}", l.diff_id)),
            "{out:?}"
        );
        assert!(!s.snapshot_dir(&l.diff_id).exists());
        assert!(!s.content.exists(&l.diff_id));
    }

    #[test]
    fn gzip_layers_get_the_uncompressed_digest() {
        use std::io::Write;
        let plain = rootfs_tar();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut s = ImageStore::open(dir.path()).unwrap();
        let l = s
            .import_layer(&gz[..], &RecordingFs::default(), &UnpackOptions::default())
            .unwrap();
        assert_eq!(l.diff_id, Digest::of(&plain));
        assert_eq!(digest_reader(&plain[..]).unwrap().0, l.diff_id);
    }

    #[test]
    fn a_hostile_layer_leaves_nothing() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        h.set_size(1);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let bad = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut s = ImageStore::open(dir.path()).unwrap();
        assert!(
            s.import_layer(&bad[..], &RecordingFs::default(), &UnpackOptions::default())
                .is_err()
        );
        assert!(s.content.list().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(dir.path().join("snapshots"))
                .unwrap()
                .count(),
            0
        );
        assert!(s.meta.images().unwrap().is_empty());
    }
}
