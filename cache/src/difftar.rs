//! A snapshot directory as a layer tar.
//!
//! A snapshot holds a layer's diff the way overlayfs writes an upper directory: whiteouts are
//! 0/0 character devices and opaque directories carry `trusted.overlay.opaque=y`. As a tar they
//! become OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`). The tar is deterministic for a given
//! directory (entries sorted by name, hard links found by inode, no access times), so its digest
//! (the layer's diff ID) can be computed without keeping the tar, and the same bytes written
//! again whenever an exporter needs the blob.

use crate::digest::Digest;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DiffTarError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DiffTarError + 'a {
    move |source| DiffTarError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What [`write_diff_tar`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffStats {
    /// Entries in the directory (0: the layer changes nothing).
    pub entries: u64,
    /// Bytes of tar written.
    pub size: u64,
}

/// Counts and hashes what is written through it.
struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    n: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The diff ID (sha256 of the tar) of a snapshot directory, and its stats, without keeping the
/// tar.
pub fn diff_id(dir: &Path) -> Result<(Digest, DiffStats), DiffTarError> {
    let mut w = HashWriter {
        inner: io::sink(),
        hasher: Sha256::new(),
        n: 0,
    };
    let stats = write_diff_tar(dir, &mut w)?;
    Ok((Digest::from_hasher(w.hasher), stats))
}

/// Writes the snapshot under `dir` as a layer tar to `out`.
pub fn write_diff_tar(dir: &Path, out: impl Write) -> Result<DiffStats, DiffTarError> {
    let mut counter = HashWriter {
        inner: out,
        hasher: Sha256::new(),
        n: 0,
    };
    let mut b = tar::Builder::new(&mut counter);
    b.mode(tar::HeaderMode::Complete);
    b.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let mut entries = 0u64;
    let mut stack: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, rel)) = stack.pop() {
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(&d)
            .map_err(io_err("list", &d))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err("list", &d))?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let abs = d.join(&name);
            let name = name.to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let m = std::fs::symlink_metadata(&abs).map_err(io_err("stat", &abs))?;
            entries += 1;
            let ft = m.file_type();
            let mut h = tar::Header::new_gnu();
            h.set_mode(m.mode() & 0o7777);
            h.set_uid(m.uid() as u64);
            h.set_gid(m.gid() as u64);
            h.set_mtime(m.mtime().max(0) as u64);
            h.set_size(0);
            if ft.is_char_device() && m.rdev() == 0 {
                // An overlay whiteout.
                let wh = match path.rsplit_once('/') {
                    Some((parent, n)) => format!("{parent}/.wh.{n}"),
                    None => format!(".wh.{path}"),
                };
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                b.append_data(&mut h, &wh, io::empty())
                    .map_err(io_err("write", &abs))?;
                continue;
            }
            append_xattrs(&mut b, &abs)?;
            if ft.is_dir() {
                h.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut h, format!("{path}/"), io::empty())
                    .map_err(io_err("write", &abs))?;
                let opaque = xattr::get(&abs, "trusted.overlay.opaque")
                    .ok()
                    .flatten()
                    .is_some_and(|v| v == b"y");
                if opaque {
                    let mut o = tar::Header::new_gnu();
                    o.set_entry_type(tar::EntryType::Regular);
                    o.set_mode(0o644);
                    o.set_size(0);
                    o.set_mtime(m.mtime().max(0) as u64);
                    b.append_data(&mut o, format!("{path}/.wh..wh..opq"), io::empty())
                        .map_err(io_err("write", &abs))?;
                }
                subdirs.push((abs, path));
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&abs).map_err(io_err("readlink", &abs))?;
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, &path, &target)
                    .map_err(io_err("write", &abs))?;
            } else if ft.is_file() {
                if m.nlink() > 1 {
                    if let Some(first) = links.get(&(m.dev(), m.ino())) {
                        h.set_entry_type(tar::EntryType::Link);
                        b.append_link(&mut h, &path, first)
                            .map_err(io_err("write", &abs))?;
                        continue;
                    }
                    links.insert((m.dev(), m.ino()), path.clone());
                }
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(m.len());
                let f = std::fs::File::open(&abs).map_err(io_err("open", &abs))?;
                b.append_data(&mut h, &path, f)
                    .map_err(io_err("write", &abs))?;
            } else if ft.is_char_device() || ft.is_block_device() {
                h.set_entry_type(if ft.is_char_device() {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                let dev = m.rdev();
                h.set_device_major(rustix::fs::major(dev))
                    .map_err(io_err("write", &abs))?;
                h.set_device_minor(rustix::fs::minor(dev))
                    .map_err(io_err("write", &abs))?;
                b.append_data(&mut h, &path, io::empty())
                    .map_err(io_err("write", &abs))?;
            } else if ft.is_fifo() {
                h.set_entry_type(tar::EntryType::Fifo);
                b.append_data(&mut h, &path, io::empty())
                    .map_err(io_err("write", &abs))?;
            }
            // Sockets are not archived (as in Docker).
        }
        for s in subdirs.into_iter().rev() {
            stack.push(s);
        }
    }
    b.finish().map_err(io_err("write", dir))?;
    drop(b);
    Ok(DiffStats {
        entries,
        size: counter.n,
    })
}

/// Extended attributes other than overlay's own, as PAX records.
fn append_xattrs<W: Write>(b: &mut tar::Builder<W>, abs: &Path) -> Result<(), DiffTarError> {
    let Ok(names) = xattr::list(abs) else {
        return Ok(());
    };
    let mut recs: Vec<(String, Vec<u8>)> = Vec::new();
    for n in names {
        let n = n.to_string_lossy().into_owned();
        if n.starts_with("trusted.overlay.") {
            continue;
        }
        if let Ok(Some(v)) = xattr::get(abs, &n) {
            recs.push((format!("SCHILY.xattr.{n}"), v));
        }
    }
    if recs.is_empty() {
        return Ok(());
    }
    recs.sort();
    b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
        .map_err(io_err("write", abs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::RecordingFs;
    use crate::unpack::{UnpackOptions, Whiteouts, unpack_new};

    #[test]
    fn deterministic_and_roundtrips() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::fs::write(src.join("a/b/f"), "hello").unwrap();
        std::fs::hard_link(src.join("a/b/f"), src.join("a/g")).unwrap();
        std::os::unix::fs::symlink("b/f", src.join("a/l")).unwrap();
        let long = "x".repeat(150);
        std::fs::write(src.join(&long), "long name").unwrap();
        let (d1, s1) = diff_id(&src).unwrap();
        let (d2, _) = diff_id(&src).unwrap();
        assert_eq!(d1, d2);
        assert_eq!(s1.entries, 6);
        let mut buf = Vec::new();
        let s3 = write_diff_tar(&src, &mut buf).unwrap();
        assert_eq!(s3.size, buf.len() as u64);
        assert_eq!(Digest::of(&buf), d1);
        let out = d.path().join("out");
        let opts = UnpackOptions {
            whiteouts: Whiteouts::Apply,
            ..UnpackOptions::default()
        };
        unpack_new(&buf[..], &out, &RecordingFs::default(), &opts).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("a/g")).unwrap(), "hello");
        assert_eq!(
            std::fs::read_link(out.join("a/l")).unwrap(),
            Path::new("b/f")
        );
        assert_eq!(
            std::fs::read_to_string(out.join(&long)).unwrap(),
            "long name"
        );
    }

    #[test]
    fn content_changes_the_diff_id_and_empty_has_no_entries() {
        let d = tempfile::tempdir().unwrap();
        let (_, s) = diff_id(d.path()).unwrap();
        assert_eq!(s.entries, 0);
        std::fs::write(d.path().join("f"), "1").unwrap();
        let (a, _) = diff_id(d.path()).unwrap();
        std::fs::write(d.path().join("f"), "2").unwrap();
        let (b, _) = diff_id(d.path()).unwrap();
        assert_ne!(a, b);
    }
}
