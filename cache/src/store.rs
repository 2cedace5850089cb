//! The content store: blobs addressed by their sha256 digest under `<root>/blobs/sha256/<hex>`
//! (the layout of an OCI image layout's `blobs/`).
//!
//! A blob is written to a temporary file in `<root>/tmp`, hashed while it is written, fsynced,
//! checked against the expected digest and renamed into place, so a reader never sees a partial
//! blob and a crash leaves at most an orphan in `tmp/` (removed by [`ContentStore::clean_tmp`]).

use crate::digest::Digest;
use sha2::{Digest as _, Sha256};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

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

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub digest: Digest,
    pub size: u64,
}

/// Writes everything read through it to a hasher too.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
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

    /// A temporary file in the store's `tmp/`, removed when dropped unless persisted.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        tempfile::Builder::new()
            .prefix("ingest-")
            .tempfile_in(&self.tmp)
            .map_err(io_err("create temporary file in", &self.tmp))
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
        let mut reader = HashingReader {
            inner: r,
            hasher: Sha256::new(),
            count: 0,
        };
        let tmp_path = tmp.path().to_path_buf();
        {
            let mut limited: Box<dyn Read> = match limit {
                Some(l) => Box::new((&mut reader).take(l + 1)),
                None => Box::new(&mut reader),
            };
            io::copy(&mut limited, tmp.as_file_mut()).map_err(io_err("write", &tmp_path))?;
        }
        if let Some(l) = limit
            && reader.count > l
        {
            return Err(StoreError::TooLarge { limit: l });
        }
        let digest = Digest::from_hasher(reader.hasher);
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
            size: reader.count,
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

    /// Removes leftovers of interrupted writes (temporary files older than `min_age`).
    pub fn clean_tmp(&self, min_age: std::time::Duration) -> Result<usize, StoreError> {
        let mut n = 0;
        let now = std::time::SystemTime::now();
        for e in fs::read_dir(&self.tmp)
            .map_err(io_err("list", &self.tmp))?
            .flatten()
        {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() >= min_age)
                .unwrap_or(false);
            if old && fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
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

    #[test]
    fn missing_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let s = ContentStore::open(dir.path()).unwrap();
        let d = Digest::of(b"x");
        assert!(matches!(s.open_blob(&d), Err(StoreError::NotFound(_))));
        s.delete(&d).unwrap();
    }
}
