//! Content checksums of directory trees (the build context), as BuildKit's `contenthash`
//! computes them: every selected entry contributes its path, a header-like record (type, mode,
//! owner, size, symlink target, device numbers, xattrs other than `security.*` — except
//! `security.capability` — and `trusted.overlay.*`) and, for regular files, the sha256 of the
//! content. Modification times never count, so touching a file changes nothing.
//!
//! File contents are hashed in parallel (rayon), and a metadata cache in SQLite keyed by
//! (path, device, inode, size, mtime, ctime) lets an unchanged file be skipped without reading
//! it again.

use crate::digest::Digest;
use crate::metadata::{FileIdentity, Metadata, MetadataError};
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// What the walker does with a path (relative to the root, `/`-separated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    Include,
    Exclude,
    /// Excluded itself, but something below may be included (`.dockerignore` exceptions).
    ExcludeButDescend,
}

/// One selected entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySum {
    pub path: String,
    pub digest: Digest,
}

/// The checksum of a tree and what it took.
#[derive(Debug, Clone)]
pub struct TreeSum {
    pub digest: Digest,
    pub entries: Vec<EntrySum>,
    /// Regular files whose content had to be read (not answered by the metadata cache).
    pub files_read: usize,
}

struct Pending {
    path: String,
    abs: PathBuf,
    header: Vec<u8>,
    /// Regular files: their identity, for the metadata cache.
    file: Option<FileIdentity>,
}

fn io_err<'a>(op: &'static str, p: &'a Path) -> impl FnOnce(io::Error) -> HashError + 'a {
    move |source| HashError::Io {
        op,
        path: p.to_path_buf(),
        source,
    }
}

fn header(m: &std::fs::Metadata, abs: &Path) -> Result<Vec<u8>, HashError> {
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_file() {
        "file"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "socket"
    };
    let mut h = format!(
        "{kind} mode={:o} uid={} gid={} size={}",
        m.mode() & 0o7777,
        m.uid(),
        m.gid(),
        if ft.is_file() { m.len() } else { 0 }
    )
    .into_bytes();
    if ft.is_symlink() {
        let t = std::fs::read_link(abs).map_err(io_err("readlink", abs))?;
        h.extend_from_slice(b" link=");
        h.extend_from_slice(t.as_os_str().as_bytes());
    }
    if ft.is_char_device() || ft.is_block_device() {
        h.extend_from_slice(format!(" dev={}", m.rdev()).as_bytes());
    }
    if !ft.is_symlink()
        && let Ok(names) = xattr::list(abs)
    {
        let mut names: Vec<_> = names
            .filter(|n| {
                let b = n.as_bytes();
                (!b.starts_with(b"security.") || b == b"security.capability")
                    && !b.starts_with(b"trusted.overlay.")
            })
            .collect();
        names.sort();
        for n in names {
            if let Ok(Some(v)) = xattr::get(abs, &n) {
                h.extend_from_slice(b" xattr=");
                h.extend_from_slice(n.as_bytes());
                h.push(b'=');
                h.extend_from_slice(hex::encode(v).as_bytes());
            }
        }
    }
    Ok(h)
}

fn hash_file(p: &Path) -> Result<Digest, HashError> {
    let mut f = std::fs::File::open(p).map_err(io_err("open", p))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(io_err("read", p))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Digest::from_hasher(h))
}

fn rel_of(rel: &str, name: &std::ffi::OsStr) -> String {
    if rel.is_empty() {
        name.to_string_lossy().into_owned()
    } else {
        format!("{rel}/{}", name.to_string_lossy())
    }
}

/// A directory entry the walk keeps: what it adds to the sum (`None`: excluded itself), and
/// whether to descend into it.
struct Visited {
    pending: Option<Pending>,
    descend: Option<(PathBuf, String)>,
}

/// One directory entry (`None`: excluded).
fn visit(
    dir: &Path,
    rel: &str,
    name: &std::ffi::OsStr,
    select: &(dyn Fn(&str, bool) -> Selection + Sync),
) -> Result<Option<Visited>, HashError> {
    let abs = dir.join(name);
    let path = rel_of(rel, name);
    let m = std::fs::symlink_metadata(&abs).map_err(io_err("stat", &abs))?;
    let is_dir = m.is_dir();
    match select(&path, is_dir) {
        Selection::Exclude => Ok(None),
        Selection::ExcludeButDescend => Ok(Some(Visited {
            pending: None,
            descend: is_dir.then_some((abs, path)),
        })),
        Selection::Include => {
            let file = m.is_file().then(|| FileIdentity {
                dev: m.dev(),
                ino: m.ino(),
                size: m.len(),
                mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            });
            let pending = Pending {
                header: header(&m, &abs)?,
                path: path.clone(),
                abs: abs.clone(),
                file,
            };
            Ok(Some(Visited {
                pending: Some(pending),
                descend: is_dir.then_some((abs, path)),
            }))
        }
    }
}

/// Checksums the tree under `root`: every entry `select` includes (directories are descended
/// into unless excluded). With `cache`, file contents already hashed at the same (path, device,
/// inode, size, mtime, ctime) are not read again.
pub fn checksum_tree(
    root: &Path,
    select: &(dyn Fn(&str, bool) -> Selection + Sync),
    cache: Option<&mut Metadata>,
) -> Result<TreeSum, HashError> {
    // 1. Walk, depth-first in name order. A directory's entries are stat'ed (and their xattrs
    //    listed) in parallel: on a no-op build of a large context those calls are most of the time.
    let mut pending: Vec<Pending> = Vec::new();
    let mut stack: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(&dir)
            .map_err(io_err("list", &dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err("list", &dir))?;
        names.sort();
        let visited: Vec<Option<Visited>> = names
            .par_iter()
            .map(|name| visit(&dir, &rel, name, select))
            .collect::<Result<_, _>>()?;
        let mut subdirs = Vec::new();
        for v in visited.into_iter().flatten() {
            pending.extend(v.pending);
            subdirs.extend(v.descend);
        }
        stack.extend(subdirs.into_iter().rev());
    }
    // 2. Contents: from the metadata cache, else read (in parallel).
    let root_key = root.to_string_lossy().into_owned();
    let mut known: Vec<Option<Digest>> = vec![None; pending.len()];
    if let Some(c) = cache.as_deref() {
        let recorded = c.cached_checksums(&root_key)?;
        for (i, p) in pending.iter().enumerate() {
            if let Some(f) = p.file
                && let Some((id, d)) = recorded.get(&p.path)
                && *id == f
            {
                known[i] = Some(d.clone());
            }
        }
    }
    let computed: Vec<Option<Result<Digest, HashError>>> = pending
        .par_iter()
        .zip(known.par_iter())
        .map(|(p, k)| match (p.file, k) {
            (Some(_), None) => Some(hash_file(&p.abs)),
            _ => None,
        })
        .collect();
    let mut files_read = 0;
    let mut fresh: Vec<(String, FileIdentity, Digest)> = Vec::new();
    let mut entries = Vec::with_capacity(pending.len());
    let mut tree = Sha256::new();
    for ((p, k), c) in pending.iter().zip(known).zip(computed) {
        let content = match (k, c) {
            (Some(d), _) => Some(d),
            (None, Some(r)) => {
                let d = r?;
                files_read += 1;
                if let Some(f) = p.file {
                    fresh.push((p.path.clone(), f, d.clone()));
                }
                Some(d)
            }
            (None, None) => None,
        };
        let mut h = Sha256::new();
        h.update(p.path.as_bytes());
        h.update([0]);
        h.update(&p.header);
        if let Some(d) = &content {
            h.update(b" content=");
            h.update(d.as_str().as_bytes());
        }
        let digest = Digest::from_hasher(h);
        tree.update(digest.as_str().as_bytes());
        tree.update(b"\n");
        entries.push(EntrySum {
            path: p.path.clone(),
            digest,
        });
    }
    if let Some(c) = cache
        && !fresh.is_empty()
    {
        c.put_checksums(&root_key, &fresh)?;
    }
    Ok(TreeSum {
        digest: Digest::from_hasher(tree),
        entries,
        files_read,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn all(_: &str, _: bool) -> Selection {
        Selection::Include
    }

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("src/sub")).unwrap();
        std::fs::write(d.path().join("src/a.txt"), "a").unwrap();
        std::fs::write(d.path().join("src/sub/b.txt"), "b").unwrap();
        std::fs::write(d.path().join("notes.md"), "n").unwrap();
        std::os::unix::fs::symlink("src/a.txt", d.path().join("link")).unwrap();
        d
    }

    fn sum(d: &Path) -> Digest {
        checksum_tree(d, &all, None).unwrap().digest
    }

    #[test]
    fn content_modes_and_links_count_mtimes_do_not() {
        let d = tree();
        let base = sum(d.path());
        assert_eq!(sum(d.path()), base);
        // mtime only: same.
        let f = d.path().join("src/a.txt");
        let t = rustix::fs::Timespec {
            tv_sec: 12345,
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &f,
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
        assert_eq!(sum(d.path()), base);
        // chmod: different.
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        let chmodded = sum(d.path());
        assert_ne!(chmodded, base);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        // content: different.
        std::fs::write(&f, "A").unwrap();
        assert_ne!(sum(d.path()), base);
        std::fs::write(&f, "a").unwrap();
        // symlink target: different.
        std::fs::remove_file(d.path().join("link")).unwrap();
        std::os::unix::fs::symlink("src/sub/b.txt", d.path().join("link")).unwrap();
        assert_ne!(sum(d.path()), base);
    }

    #[test]
    fn excluded_files_do_not_count_and_exceptions_are_found() {
        let d = tree();
        let no_md = |p: &str, _: bool| {
            if p.ends_with(".md") {
                Selection::Exclude
            } else {
                Selection::Include
            }
        };
        let before = checksum_tree(d.path(), &no_md, None).unwrap();
        std::fs::write(d.path().join("notes.md"), "changed").unwrap();
        let after = checksum_tree(d.path(), &no_md, None).unwrap();
        assert_eq!(before.digest, after.digest);
        assert!(!after.entries.iter().any(|e| e.path == "notes.md"));
        // `*` then `!src/sub/**`: only what is below src/sub.
        let only_sub = |p: &str, _: bool| {
            if p.starts_with("src/sub/") {
                Selection::Include
            } else if p == "src" || p == "src/sub" {
                Selection::ExcludeButDescend
            } else {
                Selection::Exclude
            }
        };
        let s = checksum_tree(d.path(), &only_sub, None).unwrap();
        let paths: Vec<&str> = s.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["src/sub/b.txt"]);
    }

    #[test]
    fn the_metadata_cache_skips_unchanged_files() {
        let d = tree();
        let state = tempfile::tempdir().unwrap();
        let mut m = Metadata::open(state.path()).unwrap();
        let first = checksum_tree(d.path(), &all, Some(&mut m)).unwrap();
        assert_eq!(first.files_read, 3);
        let second = checksum_tree(d.path(), &all, Some(&mut m)).unwrap();
        assert_eq!(second.files_read, 0);
        assert_eq!(second.digest, first.digest);
        std::fs::write(d.path().join("src/a.txt"), "changed").unwrap();
        let third = checksum_tree(d.path(), &all, Some(&mut m)).unwrap();
        assert_eq!(third.files_read, 1);
        assert_ne!(third.digest, first.digest);
    }
}
