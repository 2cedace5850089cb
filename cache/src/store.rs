//! The content store: blobs addressed by their sha256 digest under `<root>/blobs/sha256/<hex>`
//! (the layout of an OCI image layout's `blobs/`).
//!
//! A blob is written to a temporary file in `<root>/tmp`, hashed while it is written, fsynced,
//! checked against the expected digest and renamed into place, so a reader never sees a partial
//! blob and a crash leaves at most an orphan in `tmp/` (removed by [`ContentStore::clean_tmp`]).
//!
//! Several strata processes share one root, so a temporary file is held with an exclusive
//! `flock` by the process writing it for as long as it is open: an entry of `tmp/` that can be
//! locked has no live writer.

use crate::digest::Digest;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use strata_oci::DigestReader;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("content is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("blob {0} is not in the store")]
    NotFound(Digest),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The content store of one state root.
#[derive(Debug, Clone)]
pub struct ContentStore {
    blobs: PathBuf,
    tmp: PathBuf,
}

/// Entries of `tmp/` and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TmpUsage {
    pub entries: usize,
    pub bytes: u64,
    /// Of those, the entries no live process holds, and their bytes.
    pub unheld_entries: usize,
    pub unheld_bytes: u64,
}

/// What [`ContentStore::clean_tmp`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TmpCleaned {
    pub entries: usize,
    pub bytes: u64,
}

/// An entry of `tmp/`, opened and locked when no one else holds it (`None`: a live process
/// holds it). Only files and directories are opened (strata writes nothing else there, and
/// opening a FIFO would wait for a writer).
fn try_hold(path: &Path, meta: &fs::Metadata) -> Option<Option<File>> {
    use rustix::fs::{FlockOperation, flock};
    if !(meta.is_file() || meta.is_dir()) {
        return Some(None);
    }
    let Ok(f) = File::open(path) else {
        return Some(None);
    };
    match flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Some(Some(f)),
        Err(_) => None,
    }
}

/// The bytes of a file, or of every file below a directory.
fn tree_bytes(path: &Path, meta: &fs::Metadata) -> u64 {
    if !meta.is_dir() {
        return meta.len();
    }
    let mut n = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                n += m.len();
            }
        }
    }
    n
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub digest: Digest,
    pub size: u64,
}

impl ContentStore {
    /// Opens (creating if needed) the store under `root`.
    pub fn open(root: &Path) -> Result<ContentStore, StoreError> {
        let blobs = root.join("blobs/sha256");
        let tmp = root.join("tmp");
        for d in [&blobs, &tmp] {
            crate::root::private_dir_all(d).map_err(io_err("create", d))?;
        }
        Ok(ContentStore { blobs, tmp })
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.blobs.join(d.hex())
    }

    pub fn exists(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File, StoreError> {
        let p = self.path(d);
        File::open(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound(d.clone()),
            _ => StoreError::Io {
                op: "open",
                path: p,
                source: e,
            },
        })
    }

    pub fn size(&self, d: &Digest) -> Result<u64, StoreError> {
        let p = self.path(d);
        fs::metadata(&p)
            .map(|m| m.len())
            .map_err(|_| StoreError::NotFound(d.clone()))
    }

    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, StoreError> {
        let p = self.path(d);
        fs::read(&p).map_err(|_| StoreError::NotFound(d.clone()))
    }

    /// A temporary file in the store's `tmp/`, removed when dropped unless persisted, and
    /// locked (`flock`) while it is open, so no other process takes it for a leftover.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        use rustix::fs::{FlockOperation, flock};
        let f = tempfile::Builder::new()
            .prefix("ingest-")
            .tempfile_in(&self.tmp)
            .map_err(io_err("create temporary file in", &self.tmp))?;
        // Blocks only while a cleaner looks at it (it leaves young entries alone).
        flock(f.as_file(), FlockOperation::LockExclusive)
            .map_err(|e| io_err("lock", f.path())(e.into()))?;
        Ok(f)
    }

    /// The directory of writes in progress.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Stores everything `r` yields. With `expected`, the content must hash to it (nothing is
    /// stored otherwise); `limit` caps the size.
    pub fn ingest(
        &self,
        r: impl Read,
        expected: Option<&Digest>,
        limit: Option<u64>,
    ) -> Result<Written, StoreError> {
        if let Some(d) = expected
            && self.exists(d)
        {
            // Already here: drain nothing, trust the content address.
            return Ok(Written {
                digest: d.clone(),
                size: self.size(d)?,
            });
        }
        let mut tmp = self.temp_file()?;
        let mut reader = DigestReader::new(r);
        let tmp_path = tmp.path().to_path_buf();
        {
            let mut limited: Box<dyn Read> = match limit {
                Some(l) => Box::new((&mut reader).take(l + 1)),
                None => Box::new(&mut reader),
            };
            io::copy(&mut limited, tmp.as_file_mut()).map_err(io_err("write", &tmp_path))?;
        }
        if let Some(l) = limit
            && reader.len() > l
        {
            return Err(StoreError::TooLarge { limit: l });
        }
        let digest = reader.digest();
        if let Some(e) = expected
            && *e != digest
        {
            return Err(StoreError::DigestMismatch {
                expected: e.clone(),
                actual: digest,
            });
        }
        self.commit(tmp, &digest)?;
        Ok(Written {
            digest,
            size: reader.len(),
        })
    }

    /// Stores `bytes`.
    pub fn put(&self, bytes: &[u8]) -> Result<Written, StoreError> {
        self.ingest(bytes, None, None)
    }

    /// Moves a fully written temporary file into place as blob `digest` (fsync, rename,
    /// fsync of the directory). The caller vouches for the digest.
    pub fn commit(&self, tmp: tempfile::NamedTempFile, digest: &Digest) -> Result<(), StoreError> {
        let dest = self.path(digest);
        tmp.as_file()
            .sync_all()
            .map_err(io_err("fsync", tmp.path()))?;
        if dest.exists() {
            return Ok(());
        }
        tmp.persist(&dest).map_err(|e| StoreError::Io {
            op: "rename into",
            path: dest.clone(),
            source: e.error,
        })?;
        if let Ok(dir) = File::open(&self.blobs) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    pub fn delete(&self, d: &Digest) -> Result<(), StoreError> {
        let p = self.path(d);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Io {
                op: "remove",
                path: p,
                source: e,
            }),
        }
    }

    /// Every blob in the store.
    pub fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.blobs).map_err(io_err("list", &self.blobs))? {
            let e = e.map_err(io_err("list", &self.blobs))?;
            if let Ok(d) = format!("sha256:{}", e.file_name().to_string_lossy()).parse() {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes what killed strata processes left in `tmp/`: entries no live process holds and
    /// unchanged for a minute (a writer that has not locked its new file yet is younger).
    pub fn clean_leftovers(&self) -> TmpCleaned {
        match self.clean_tmp(std::time::Duration::from_secs(60)) {
            Ok(done) => {
                if done.entries > 0 {
                    tracing::debug!(
                        "removed {} leftover temporary files ({} bytes)",
                        done.entries,
                        done.bytes
                    );
                }
                done
            }
            Err(e) => {
                tracing::warn!("cleaning {}: {e}", self.tmp.display());
                TmpCleaned::default()
            }
        }
    }

    /// What `tmp/` holds: every entry, and those no live process holds.
    pub fn tmp_usage(&self) -> Result<TmpUsage, StoreError> {
        let mut u = TmpUsage::default();
        for e in fs::read_dir(&self.tmp)
            .map_err(io_err("list", &self.tmp))?
            .flatten()
        {
            let path = e.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let bytes = tree_bytes(&path, &meta);
            u.entries += 1;
            u.bytes += bytes;
            if try_hold(&path, &meta).is_some() {
                u.unheld_entries += 1;
                u.unheld_bytes += bytes;
            }
        }
        Ok(u)
    }

    /// Removes leftovers of interrupted writes: entries of `tmp/` no live process holds (see
    /// [`ContentStore::temp_file`]) and last modified at least `min_age` ago (an entry an older
    /// strata is writing without a lock keeps changing).
    pub fn clean_tmp(&self, min_age: std::time::Duration) -> Result<TmpCleaned, StoreError> {
        let mut done = TmpCleaned::default();
        let now = std::time::SystemTime::now();
        for e in fs::read_dir(&self.tmp)
            .map_err(io_err("list", &self.tmp))?
            .flatten()
        {
            let path = e.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let old = meta
                .modified()
                .map(|t| now.duration_since(t).unwrap_or_default() >= min_age)
                .unwrap_or(false);
            if !old {
                continue;
            }
            // Held while it is removed, so no one can take it up meanwhile.
            let Some(_held) = try_hold(&path, &meta) else {
                continue;
            };
            let bytes = tree_bytes(&path, &meta);
            let removed = if meta.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match removed {
                Ok(()) => {
                    done.entries += 1;
                    done.bytes += bytes;
                }
                Err(e) => tracing::warn!("could not remove {}: {e}", path.display()),
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_read_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let s = ContentStore::open(dir.path()).unwrap();
        let w = s.put(b"hello").unwrap();
        assert_eq!(w.size, 5);
        assert_eq!(s.read(&w.digest).unwrap(), b"hello");
        assert_eq!(s.list().unwrap(), vec![w.digest.clone()]);
        // Writing it again changes nothing.
        assert_eq!(s.put(b"hello").unwrap(), w);
        let other = Digest::of(b"other");
        match s.ingest(&b"hello"[..], Some(&other), None) {
            Err(StoreError::DigestMismatch { expected, actual }) => {
                assert_eq!(expected, other);
                assert_eq!(actual, w.digest);
            }
            r => panic!("{r:?}"),
        }
        assert!(!s.exists(&other));
        // Nothing half-written is left behind.
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let s = ContentStore::open(dir.path()).unwrap();
        let big = vec![7u8; 1000];
        assert!(matches!(
            s.ingest(&big[..], None, Some(999)),
            Err(StoreError::TooLarge { limit: 999 })
        ));
        assert!(s.ingest(&big[..], None, Some(1000)).is_ok());
        assert_eq!(s.list().unwrap().len(), 1);
    }

    fn age(p: &Path, secs: u64) {
        let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
        File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn leftovers_in_tmp_go_unless_held_or_young() {
        let dir = tempfile::tempdir().unwrap();
        let s = ContentStore::open(dir.path()).unwrap();
        let tmp = dir.path().join("tmp");
        let min = std::time::Duration::from_secs(60);
        // A killed writer's file, old: removed, its bytes counted.
        fs::write(tmp.join("ingest-dead"), vec![1u8; 5000]).unwrap();
        age(&tmp.join("ingest-dead"), 120);
        // A killed writer's directory, old.
        fs::create_dir(tmp.join("dir-dead")).unwrap();
        fs::write(tmp.join("dir-dead/f"), vec![2u8; 300]).unwrap();
        let t = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        File::open(tmp.join("dir-dead"))
            .unwrap()
            .set_modified(t)
            .unwrap();
        // Young and unheld: may be a writer that has not locked it yet.
        fs::write(tmp.join("ingest-young"), b"abc").unwrap();
        // A live writer's file, old: kept.
        let live = s.temp_file().unwrap();
        io::Write::write_all(&mut live.as_file(), &[3u8; 700]).unwrap();
        age(live.path(), 120);
        let u = s.tmp_usage().unwrap();
        assert_eq!((u.entries, u.bytes), (4, 5000 + 300 + 3 + 700));
        assert_eq!((u.unheld_entries, u.unheld_bytes), (3, 5000 + 300 + 3));
        let done = s.clean_tmp(min).unwrap();
        assert_eq!(
            done,
            TmpCleaned {
                entries: 2,
                bytes: 5300
            }
        );
        assert!(live.path().exists());
        assert!(tmp.join("ingest-young").exists());
        // Without an age limit, only what someone holds stays (a FIFO is removed, not
        // opened: that would wait for a writer).
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tmp.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert_eq!(s.clean_tmp(std::time::Duration::ZERO).unwrap().entries, 2);
        assert!(live.path().exists());
        drop(live);
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    }

    #[test]
    fn missing_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let s = ContentStore::open(dir.path()).unwrap();
        let d = Digest::of(b"x");
        assert!(matches!(s.open_blob(&d), Err(StoreError::NotFound(_))));
        s.delete(&d).unwrap();
    }
}
