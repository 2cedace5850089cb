//! Hard links instead of copies, where the new layer's file would be an exact copy of a file
//! already in a snapshot:
//!
//! - [`Reuse::previous`]: when a context is copied again after a few of its files changed, every
//!   file whose bytes, size, mode, owner, modification time and extended attributes equal the
//!   previous result's file at the same path becomes a hard link to it.
//! - [`Reuse::layers`]: `COPY --from` a stage or image links the snapshot's own file when the
//!   copy keeps its mode, owner and time (no `--chown`/`--chmod` change) and it has no extended
//!   attributes.
//!
//! The new layer's contents are exactly what a full copy makes (so its diff ID is too); only
//! the work differs.
//!
//! While the overlay is mounted, a candidate (same size, time, mode, owner and xattrs) is not
//! created at all: links into the overlay's upper directory can only be made once the overlay
//! is gone (a hard link can't cross mounts, and overlayfs does not allow its upper directory to
//! change under it). So the copy runs first with the candidates left out, then the overlay is
//! unmounted and [`Reuse::link`] compares their bytes (in parallel) and links each one that
//! is the same, or copies it into the upper directory if not.
//!
//! Snapshots are never written in place (a RUN step's changes go to a new upper directory through
//! overlayfs's copy-up), so sharing their inodes is safe. Two cases would write to a shared
//! inode, and both are excluded: a file newer than the SOURCE_DATE_EPOCH that commit clamps
//! modification times to, and a source file with several hard links (the copy links it to its
//! first copy).

use super::{Result, carried_xattrs, copy_file, copy_times, copy_xattrs, io, set_owner_mode};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use strata_cache::inroot::Root;

/// One file left out of the copy, to be linked.
struct Deferred {
    /// Relative to the root (and so to the upper directory).
    rel: PathBuf,
    /// The file to link: the previous result's, or the source's own in its snapshot (the
    /// snapshot, and the path inside it).
    prev: (Root, PathBuf),
    /// `prev` is the source itself: nothing to compare.
    same_inode: bool,
    /// The source (its root, and the path inside it), copied instead if its bytes differ or
    /// the link can't be made.
    src: (Root, PathBuf),
    md: std::fs::Metadata,
    mode: u32,
    owner: (u32, u32),
}

/// What [`Reuse::link`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    pub linked: usize,
    /// Copied after all: other bytes behind the same size and time, or the previous file gone.
    pub copied: usize,
}

/// Where linked files come from.
enum Origin {
    /// The previous result's snapshot.
    Previous(PathBuf),
    /// The source's layer snapshots, top first.
    Layers(Vec<PathBuf>),
}

/// Snapshot files to link instead of copying. Every path inside a snapshot or the upper
/// directory is resolved by the kernel with no symlink allowed on the way
/// ([`Root::resolve_no_symlinks`]): a candidate behind one is copied, never linked.
pub struct Reuse {
    origin: Origin,
    upper: PathBuf,
    /// The snapshots opened as roots, by path.
    roots: HashMap<PathBuf, Option<Root>>,
    clamp: Option<i64>,
    deferred: Vec<Deferred>,
    /// Directories (relative) known to exist in the upper directory.
    upper_dirs: HashSet<PathBuf>,
    /// Inodes already chosen (device, inode): two paths linked to one inode would be a hard
    /// link pair in the new layer, which a full copy of two separate files does not make.
    chosen: HashSet<(u64, u64)>,
}

impl Reuse {
    /// For a copy from the context. `prev`: the previous result's snapshot; `upper`: the new
    /// layer's directory (the root seen without the overlay); `clamp`: the epoch modification
    /// times are clamped to.
    pub fn previous(prev: PathBuf, upper: PathBuf, clamp: Option<i64>) -> Reuse {
        Reuse::with(Origin::Previous(prev), upper, clamp)
    }

    /// For a copy from another filesystem made of `layers` (snapshots, top first).
    pub fn layers(layers: Vec<PathBuf>, upper: PathBuf, clamp: Option<i64>) -> Reuse {
        Reuse::with(Origin::Layers(layers), upper, clamp)
    }

    fn with(origin: Origin, upper: PathBuf, clamp: Option<i64>) -> Reuse {
        Reuse {
            origin,
            upper,
            clamp,
            roots: HashMap::new(),
            deferred: Vec::new(),
            upper_dirs: HashSet::new(),
            chosen: HashSet::new(),
        }
    }

    /// What the linked files are, for the step's log.
    pub fn what(&self) -> &'static str {
        match self.origin {
            Origin::Previous(_) => "unchanged files linked from the previous result",
            Origin::Layers(_) => "files linked from the source's snapshots",
        }
    }

    /// How many candidates wait to be linked (or copied).
    pub fn pending(&self) -> usize {
        self.deferred.len()
    }

    /// Whether the copy of the regular file `src` (a path naming it below a held directory;
    /// metadata `md`, at `src_rel` in `src_root`) to `target` (likewise; `rel` inside the
    /// root), with `mode` and `owner`, may be a link (everything but the bytes of a previous
    /// result matches). If so, it is recorded, [`Reuse::link`] makes it, and the caller must
    /// not create `target`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn defer(
        &mut self,
        src_root: &Root,
        src: &Path,
        src_rel: &Path,
        md: &std::fs::Metadata,
        target: &Path,
        rel: &Path,
        mode: u32,
        owner: (u32, u32),
    ) -> bool {
        if md.nlink() > 1 || self.clamp.is_some_and(|e| newer_than(md, e)) {
            return false;
        }
        // Nothing there now (a file replacing one of the base's is copied), and its directory
        // already in the upper directory (the overlay copies a base directory up only when
        // something is created in it).
        if std::fs::symlink_metadata(target).is_ok() {
            return false;
        }
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        if !self.upper_dirs.contains(&parent) {
            let upper = self.upper.clone();
            let Some(up) = self.root(&upper) else {
                return false;
            };
            if !up.resolve_no_symlinks(&parent).is_ok_and(|e| e.is_dir()) {
                return false;
            }
            self.upper_dirs.insert(parent);
        }
        let found = match &self.origin {
            Origin::Previous(prev) => {
                let prev = prev.clone();
                let Some(root) = self.root(&prev) else {
                    return false;
                };
                let Some((_parent, pp)) = real_path_in(&root, rel) else {
                    return false;
                };
                std::fs::symlink_metadata(&pp).ok().and_then(|pm| {
                    let same = pm.is_file()
                        && pm.len() == md.len()
                        && pm.mtime() == md.mtime()
                        && pm.mtime_nsec() == md.mtime_nsec()
                        && pm.mode() & 0o7777 == mode & 0o7777
                        && (pm.uid(), pm.gid()) == owner
                        && xattrs(src).is_some_and(|a| xattrs(&pp).is_some_and(|b| a == b));
                    (same && self.chosen.insert((pm.dev(), pm.ino()))).then_some((
                        root.clone(),
                        rel.to_path_buf(),
                        false,
                    ))
                })
            }
            Origin::Layers(layers) => {
                // The source's own file: in the topmost layer that has the path (the one an
                // overlay of them shows), the same inode as the one read, kept as it is.
                let layers = layers.clone();
                let mut own = None;
                for l in &layers {
                    let Some(root) = self.root(l) else {
                        return false;
                    };
                    let Some(name) = src_rel.file_name() else {
                        return false;
                    };
                    let parent =
                        match root.resolve_no_symlinks(src_rel.parent().unwrap_or(Path::new(""))) {
                            Ok(p) => p,
                            Err(e) if e.is_not_found() => continue,
                            // A symlink on the way (or any other surprise): copy it.
                            Err(_) => return false,
                        };
                    let Ok(p) = parent.child(name) else {
                        return false;
                    };
                    match std::fs::symlink_metadata(&p) {
                        Ok(m) => own = Some((root, (parent, p), m)),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(_) => return false,
                    }
                    break;
                }
                own.and_then(|(root, (_parent, p), pm)| {
                    let same = pm.is_file()
                        && pm.ino() == md.ino()
                        && pm.len() == md.len()
                        && pm.mtime() == md.mtime()
                        && pm.mtime_nsec() == md.mtime_nsec()
                        && pm.mode() & 0o7777 == mode & 0o7777
                        && (pm.uid(), pm.gid()) == owner
                        && no_xattrs(&p);
                    same.then_some((root, src_rel.to_path_buf(), true))
                })
            }
        };
        let Some((snap, snap_rel, same_inode)) = found else {
            return false;
        };
        self.deferred.push(Deferred {
            rel: rel.to_path_buf(),
            prev: (snap, snap_rel),
            same_inode,
            src: (src_root.clone(), src_rel.to_path_buf()),
            md: md.clone(),
            mode,
            owner,
        });
        true
    }

    /// The snapshot (or upper directory) at `path` as a root, opened once.
    fn root(&mut self, path: &Path) -> Option<Root> {
        self.roots
            .entry(path.to_path_buf())
            .or_insert_with(|| Root::open(path).ok())
            .clone()
    }

    /// Makes the recorded files in the upper directory (the overlay must be gone): a link if
    /// the bytes are the same, else a copy. Directories are done in parallel; each keeps the
    /// times it had before.
    pub fn link(self) -> Result<LinkStats> {
        use rayon::prelude::*;
        let mut by_dir: BTreeMap<PathBuf, Vec<&Deferred>> = BTreeMap::new();
        for d in &self.deferred {
            by_dir
                .entry(d.rel.parent().unwrap_or(Path::new("")).to_path_buf())
                .or_default()
                .push(d);
        }
        let upper = Root::open(&self.upper)?;
        let per_dir = by_dir
            .into_par_iter()
            .map(|(dir, files)| self.link_dir(&upper, &dir, &files))
            .collect::<Result<Vec<LinkStats>>>()?;
        Ok(per_dir
            .into_iter()
            .fold(LinkStats::default(), |a, b| LinkStats {
                linked: a.linked + b.linked,
                copied: a.copied + b.copied,
            }))
    }

    fn link_dir(&self, upper: &Root, dir: &Path, files: &[&Deferred]) -> Result<LinkStats> {
        let held = upper.resolve_no_symlinks(dir)?;
        let dir_path = held.path().join(".");
        let before = std::fs::symlink_metadata(&dir_path).map_err(io("stat", dir))?;
        let mut stats = LinkStats::default();
        let mut bufs = (vec![0u8; 128 * 1024], vec![0u8; 128 * 1024]);
        for d in files {
            let Some(name) = d.rel.file_name() else {
                continue;
            };
            let target = held.child(name).map_err(io("link", &d.rel))?;
            let src = real_path_in(&d.src.0, &d.src.1);
            let Some((_src_dir, src)) = src else {
                return Err(super::FileOpError::NotFound(format!(
                    "\"/{}\"",
                    d.src.1.display()
                )));
            };
            let prev = real_path_in(&d.prev.0, &d.prev.1);
            if let Some((_dir, prev)) = &prev
                && (d.same_inode || same_bytes(&src, prev, &mut bufs))
                && std::fs::hard_link(prev, &target).is_ok()
            {
                stats.linked += 1;
                continue;
            }
            copy_file(&src, &target)?;
            set_owner_mode(&target, d.owner, Some(d.mode))?;
            copy_xattrs(&src, &target);
            copy_times(&d.md, &target)?;
            stats.copied += 1;
        }
        copy_times(&before, &dir_path)?;
        Ok(stats)
    }
}

/// The path naming `rel` below its parent directory in `root`, with no symlink on the way,
/// and the parent held open (the path is valid while it lives); `None` when there is a
/// symlink, or nothing there.
fn real_path_in(root: &Root, rel: &Path) -> Option<(strata_cache::inroot::Entry, PathBuf)> {
    let name = rel.file_name()?;
    let parent = root
        .resolve_no_symlinks(rel.parent().unwrap_or(Path::new("")))
        .ok()?;
    let p = parent.child(name).ok()?;
    Some((parent, p))
}

fn newer_than(md: &std::fs::Metadata, epoch: i64) -> bool {
    md.mtime() > epoch || (md.mtime() == epoch && md.mtime_nsec() > 0)
}

/// Extended attributes as a copy carries them, sorted; `None` if they can't be read.
fn xattrs(p: &Path) -> Option<Vec<(std::ffi::OsString, Vec<u8>)>> {
    let mut out = Vec::new();
    for n in carried_xattrs(p).ok()? {
        out.push((n.clone(), xattr::get(p, &n).ok()??));
    }
    out.sort();
    Some(out)
}

/// Whether a file has no extended attributes at all (overlayfs's own included: a file a RUN
/// step copied up may carry `trusted.overlay.origin`, which must not travel to another layer).
fn no_xattrs(p: &Path) -> bool {
    xattr::list(p).is_ok_and(|mut names| names.next().is_none())
}

/// Whether two files hold the same bytes (false on any error).
fn same_bytes(a: &Path, b: &Path, (ba, bb): &mut (Vec<u8>, Vec<u8>)) -> bool {
    let (Ok(mut fa), Ok(mut fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    loop {
        let Ok(n) = read_full(&mut fa, ba) else {
            return false;
        };
        let Ok(m) = read_full(&mut fb, bb) else {
            return false;
        };
        if n != m || ba[..n] != bb[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
