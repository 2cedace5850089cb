//! Applying a layer tar (plain, gzip, zstd, bzip2 or xz) to a directory, safely.
//!
//! Every path is resolved inside the destination with `openat2(RESOLVE_IN_ROOT)`: absolute
//! paths, `..` and symlinks (including a directory replaced by a symlink to `/etc`) can never
//! lead outside it. Entries whose path would climb above the root, hardlinks to paths that do
//! not exist in the layer, `trusted.overlay.*` xattrs and unsupported entry types are rejected
//! with an error naming the entry. [`unpack_new`] unpacks into a temporary sibling directory and
//! renames it into place only when the whole archive was applied, so a rejected archive leaves
//! nothing behind.
//!
//! OCI whiteouts become overlay whiteouts ([`Whiteouts::Overlay`]: `.wh.NAME` → a 0/0
//! character device `NAME`, `.wh..wh..opq` → `trusted.overlay.opaque=y` on the directory) or
//! are applied directly ([`Whiteouts::Apply`]: the named entry is removed).
//! Ownership, modes (setuid, setgid, sticky), xattrs (`security.capability` among them) and
//! mtimes are kept; directory mtimes are set last.

use crate::sys::FsOps;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {entry:?}: {reason}")]
    Rejected { entry: String, reason: String },
    #[error("layer entry {entry:?}: {op}: {source}")]
    Io {
        entry: String,
        op: &'static str,
        source: io::Error,
    },
    #[error("reading the layer archive: {0}")]
    Archive(io::Error),
    #[error("the layer unpacks to more than {limit} bytes (decompression bomb?)")]
    TooLarge { limit: u64 },
    #[error("{op} {path}: {source}")]
    Dest {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// How OCI whiteout files are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Turn them into overlayfs whiteouts (the layer becomes an overlay lower directory).
    Overlay,
    /// Delete what they name (applying a layer onto a full filesystem).
    Apply,
}

#[derive(Debug, Clone)]
pub struct UnpackOptions {
    pub whiteouts: Whiteouts,
    /// Largest total of file contents accepted.
    pub max_bytes: u64,
    /// Largest number of entries accepted.
    pub max_entries: u64,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            whiteouts: Whiteouts::Overlay,
            max_bytes: 64 << 30,
            max_entries: 10_000_000,
        }
    }
}

/// What was unpacked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    pub bytes: u64,
}

/// Wraps a reader with the decompressor its first bytes call for (gzip, zstd, or none).
pub fn decompress<'a>(r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut br = BufReader::with_capacity(256 * 1024, r);
    let head = br.fill_buf()?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(br))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(br)?)
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::bufread::MultiBzDecoder::new(br))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(br))
    } else {
        Box::new(br)
    })
}

/// Splits a tar path into clean components inside the root. `.` and empty parts are dropped,
/// a leading `/` is ignored, `..` goes up but never above the root (that is an error).
fn components(raw: &[u8]) -> Result<Vec<OsString>, String> {
    let mut out: Vec<OsString> = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("path climbs above the layer root".into());
                }
            }
            p => out.push(OsString::from_vec(p.to_vec())),
        }
    }
    Ok(out)
}

/// Like [`components`], but `..` at the root stays at the root (symlink resolution in a
/// chroot).
fn components_in_root(raw: &[u8]) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            p => out.push(OsString::from_vec(p.to_vec())),
        }
    }
    out
}

fn join(parts: &[OsString]) -> PathBuf {
    let mut p = PathBuf::new();
    for c in parts {
        p.push(c);
    }
    p
}

struct Applier<'a> {
    root: OwnedFd,
    fs: &'a dyn FsOps,
    opts: &'a UnpackOptions,
    stats: UnpackStats,
    /// Directories whose times are set at the end.
    dir_times: Vec<(Vec<OsString>, i64)>,
}

fn resolve_flags() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

impl Applier<'_> {
    /// Opens (creating missing directories) the directory `parts` inside the root. A missing
    /// directory behind a symlink (`d -> /tmp`, then `d/x`) is created where the symlink points,
    /// inside the root, as `tar -x` into a chroot would.
    fn open_dir(&self, parts: &[OsString], entry: &str) -> Result<OwnedFd, UnpackError> {
        self.open_dir_depth(parts, entry, 0)
    }

    fn open_in_root(&self, p: &Path) -> rustix::io::Result<OwnedFd> {
        rustix::fs::openat2(
            self.root.as_fd(),
            p,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            resolve_flags(),
        )
    }

    fn open_dir_depth(
        &self,
        parts: &[OsString],
        entry: &str,
        depth: usize,
    ) -> Result<OwnedFd, UnpackError> {
        if depth > 40 {
            return Err(UnpackError::Rejected {
                entry: entry.to_string(),
                reason: "too many levels of symbolic links".into(),
            });
        }
        let mut fd = self
            .open_in_root(Path::new("."))
            .map_err(|e| self.io(entry, "open layer root", e.into()))?;
        for (i, c) in parts.iter().enumerate() {
            let sub = join(&parts[..=i]);
            match self.open_in_root(&sub) {
                Ok(f) => fd = f,
                Err(rustix::io::Errno::NOENT) => {
                    if Self::kind_at(fd.as_fd(), c) == Some(FileType::Symlink) {
                        // Create the symlink's target (inside the root), then retry.
                        let target = rustix::fs::readlinkat(fd.as_fd(), c.as_os_str(), Vec::new())
                            .map_err(|e| self.io(entry, "read symlink", e.into()))?;
                        let t = target.as_bytes();
                        let mut joined: Vec<u8> = Vec::new();
                        if !t.starts_with(b"/") {
                            joined.extend_from_slice(join(&parts[..i]).as_os_str().as_bytes());
                            joined.push(b'/');
                        }
                        joined.extend_from_slice(t);
                        self.open_dir_depth(&components_in_root(&joined), entry, depth + 1)?;
                    } else {
                        rustix::fs::mkdirat(fd.as_fd(), c.as_os_str(), Mode::from_raw_mode(0o755))
                            .or_else(|e| {
                                if e == rustix::io::Errno::EXIST {
                                    Ok(())
                                } else {
                                    Err(e)
                                }
                            })
                            .map_err(|e| self.io(entry, "create parent directory", e.into()))?;
                    }
                    fd = self
                        .open_in_root(&sub)
                        .map_err(|e| self.io(entry, "open parent directory", e.into()))?;
                }
                Err(rustix::io::Errno::NOTDIR) => {
                    return Err(UnpackError::Rejected {
                        entry: entry.to_string(),
                        reason: format!("{} is not a directory", sub.display()),
                    });
                }
                Err(rustix::io::Errno::LOOP) => {
                    return Err(UnpackError::Rejected {
                        entry: entry.to_string(),
                        reason: format!("{} is a symlink loop", sub.display()),
                    });
                }
                Err(e) => return Err(self.io(entry, "open parent directory", e.into())),
            }
        }
        Ok(fd)
    }

    fn io(&self, entry: &str, op: &'static str, source: io::Error) -> UnpackError {
        UnpackError::Io {
            entry: entry.to_string(),
            op,
            source,
        }
    }

    /// What is at `name` in `dir`, without following a symlink.
    fn kind_at(dir: BorrowedFd<'_>, name: &OsStr) -> Option<FileType> {
        rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| FileType::from_raw_mode(st.st_mode))
    }

    /// Removes `name` in `dir` (recursively for directories), never following symlinks.
    fn remove_all(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        match Self::kind_at(dir, name) {
            None => Ok(()),
            Some(FileType::Directory) => {
                let sub = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let mut names = Vec::new();
                for e in rustix::fs::Dir::read_from(&sub)? {
                    let e = e?;
                    let n = e.file_name().to_bytes();
                    if n != b"." && n != b".." {
                        names.push(OsString::from_vec(n.to_vec()));
                    }
                }
                for n in names {
                    Self::remove_all(sub.as_fd(), &n)?;
                }
                rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
                Ok(())
            }
            Some(_) => {
                rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
                Ok(())
            }
        }
    }

    // Long: one arm per tar entry type, each with its own checks against escaping the root.
    fn apply(&mut self, mut entry: tar::Entry<'_, impl Read>) -> Result<(), UnpackError> {
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let parts = components(&raw_path).map_err(|reason| UnpackError::Rejected {
            entry: shown.clone(),
            reason,
        })?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        self.stats.entries += 1;
        if self.stats.entries > self.opts.max_entries {
            return Err(UnpackError::Rejected {
                entry: shown,
                reason: format!("more than {} entries", self.opts.max_entries),
            });
        }
        let Some((name, parent_parts)) = parts.split_last() else {
            // The root itself ("./"): only its metadata applies.
            if kind.is_dir() {
                let mtime = header.mtime().unwrap_or(0) as i64;
                self.dir_times.push((vec![], mtime));
            }
            return Ok(());
        };
        let name_bytes = name.as_bytes();

        // Whiteouts.
        if let Some(target) = name_bytes.strip_prefix(b".wh.") {
            let dir = self.open_dir(parent_parts, &shown)?;
            let dir = rustix::fs::openat(
                dir.as_fd(),
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.io(&shown, "open directory", e.into()))?;
            if target == b".wh..opq" {
                match self.opts.whiteouts {
                    Whiteouts::Overlay => self
                        .fs
                        .set_xattr(
                            dir.as_fd(),
                            OsStr::new(""),
                            OsStr::new("trusted.overlay.opaque"),
                            b"y",
                        )
                        .map_err(|e| self.io(&shown, "mark directory opaque", e))?,
                    Whiteouts::Apply => {
                        let mut names = Vec::new();
                        for e in rustix::fs::Dir::read_from(&dir)
                            .map_err(|e| self.io(&shown, "read directory", e.into()))?
                        {
                            let e = e.map_err(|e| self.io(&shown, "read directory", e.into()))?;
                            let n = e.file_name().to_bytes();
                            if n != b"." && n != b".." {
                                names.push(OsString::from_vec(n.to_vec()));
                            }
                        }
                        for n in names {
                            Self::remove_all(dir.as_fd(), &n)
                                .map_err(|e| self.io(&shown, "apply opaque whiteout", e))?;
                        }
                    }
                }
                return Ok(());
            }
            if target.is_empty() || target == b"." || target == b".." || target.contains(&b'/') {
                return Err(UnpackError::Rejected {
                    entry: shown,
                    reason: "malformed whiteout".into(),
                });
            }
            let target = OsStr::from_bytes(target);
            Self::remove_all(dir.as_fd(), target)
                .map_err(|e| self.io(&shown, "remove whited-out entry", e))?;
            if self.opts.whiteouts == Whiteouts::Overlay {
                self.fs
                    .mknod(dir.as_fd(), target, FileType::CharacterDevice, 0, 0)
                    .map_err(|e| self.io(&shown, "create overlay whiteout", e))?;
            }
            return Ok(());
        }

        let dir = self.open_dir(parent_parts, &shown)?;
        // An O_PATH fd cannot be written through with *at calls that create; reopen.
        let dir = rustix::fs::openat(
            dir.as_fd(),
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.io(&shown, "open directory", e.into()))?;
        let existing = Self::kind_at(dir.as_fd(), name);
        let is_dir = kind.is_dir();
        if let Some(k) = existing
            && !(is_dir && k == FileType::Directory)
        {
            Self::remove_all(dir.as_fd(), name)
                .map_err(|e| self.io(&shown, "replace existing entry", e))?;
        }
        let mode = header.mode().map_err(UnpackError::Archive)? & 0o7777;
        let uid = header.uid().map_err(UnpackError::Archive)? as u32;
        let gid = header.gid().map_err(UnpackError::Archive)? as u32;
        let mtime = header.mtime().unwrap_or(0) as i64;

        match kind {
            tar::EntryType::Directory => {
                if existing != Some(FileType::Directory) {
                    rustix::fs::mkdirat(dir.as_fd(), name.as_os_str(), Mode::from_raw_mode(0o700))
                        .map_err(|e| self.io(&shown, "create directory", e.into()))?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let size = entry.size();
                if self.stats.bytes + size > self.opts.max_bytes {
                    return Err(UnpackError::TooLarge {
                        limit: self.opts.max_bytes,
                    });
                }
                let fd = rustix::fs::openat(
                    dir.as_fd(),
                    name.as_os_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| self.io(&shown, "create file", e.into()))?;
                let mut f = std::fs::File::from(fd);
                let n = io::copy(&mut (&mut entry).take(size), &mut f)
                    .map_err(|e| self.io(&shown, "write file", e))?;
                self.stats.bytes += n;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| UnpackError::Rejected {
                        entry: shown.clone(),
                        reason: "symlink without a target".into(),
                    })?
                    .into_owned();
                rustix::fs::symlinkat(OsStr::from_bytes(&target), dir.as_fd(), name.as_os_str())
                    .map_err(|e| self.io(&shown, "create symlink", e.into()))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| UnpackError::Rejected {
                        entry: shown.clone(),
                        reason: "hardlink without a target".into(),
                    })?
                    .into_owned();
                let tparts = components(&target).map_err(|reason| UnpackError::Rejected {
                    entry: shown.clone(),
                    reason: format!("hardlink target: {reason}"),
                })?;
                let Some((tname, tparent)) = tparts.split_last() else {
                    return Err(UnpackError::Rejected {
                        entry: shown,
                        reason: "hardlink to the layer root".into(),
                    });
                };
                let tdir =
                    self.open_dir_existing(tparent)
                        .ok_or_else(|| UnpackError::Rejected {
                            entry: shown.clone(),
                            reason: format!(
                                "hardlink target {} is not in the layer",
                                String::from_utf8_lossy(&target)
                            ),
                        })?;
                rustix::fs::linkat(
                    tdir.as_fd(),
                    tname.as_os_str(),
                    dir.as_fd(),
                    name.as_os_str(),
                    AtFlags::empty(),
                )
                .map_err(|e| {
                    if e == rustix::io::Errno::NOENT {
                        UnpackError::Rejected {
                            entry: shown.clone(),
                            reason: format!(
                                "hardlink target {} is not in the layer",
                                String::from_utf8_lossy(&target)
                            ),
                        }
                    } else {
                        self.io(&shown, "create hardlink", e.into())
                    }
                })?;
                // A hardlink shares the target's metadata.
                return Ok(());
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let dev = rustix::fs::makedev(major, minor);
                self.fs
                    .mknod(dir.as_fd(), name, ft, mode, dev)
                    .map_err(|e| self.io(&shown, "create device node", e))?;
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {
                return Ok(());
            }
            other => {
                return Err(UnpackError::Rejected {
                    entry: shown,
                    reason: format!("unsupported entry type {other:?}"),
                });
            }
        }

        // Extended attributes (PAX SCHILY.xattr.*).
        if let Ok(Some(exts)) = entry.pax_extensions() {
            for ext in exts {
                let ext = ext.map_err(UnpackError::Archive)?;
                let Some(key) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                    continue;
                };
                if key.starts_with(b"trusted.overlay.") {
                    return Err(UnpackError::Rejected {
                        entry: shown,
                        reason: "carries an overlayfs control xattr (trusted.overlay.*)".into(),
                    });
                }
                self.fs
                    .set_xattr(dir.as_fd(), name, OsStr::from_bytes(key), ext.value_bytes())
                    .map_err(|e| self.io(&shown, "set xattr", e))?;
            }
        }
        // Ownership first (chown clears setuid/setgid), then mode, then times.
        self.fs
            .chown(dir.as_fd(), name, uid, gid)
            .map_err(|e| self.io(&shown, "set owner", e))?;
        if kind != tar::EntryType::Symlink {
            rustix::fs::chmodat(
                dir.as_fd(),
                name.as_os_str(),
                Mode::from_raw_mode(mode),
                AtFlags::empty(),
            )
            .map_err(|e| self.io(&shown, "set mode", e.into()))?;
        }
        if is_dir {
            self.dir_times.push((parts.clone(), mtime));
        } else {
            set_times(dir.as_fd(), name, mtime).map_err(|e| self.io(&shown, "set mtime", e))?;
        }
        Ok(())
    }

    fn open_dir_existing(&self, parts: &[OsString]) -> Option<OwnedFd> {
        rustix::fs::openat2(
            self.root.as_fd(),
            if parts.is_empty() {
                PathBuf::from(".")
            } else {
                join(parts)
            },
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            resolve_flags(),
        )
        .ok()
    }
}

fn set_times(dir: BorrowedFd<'_>, name: &OsStr, mtime: i64) -> io::Result<()> {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        dir,
        name,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

/// Applies the layer archive `r` (plain, gzip or zstd) to the existing directory `dest`.
pub fn unpack(
    r: impl Read,
    dest: &Path,
    fs: &dyn FsOps,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let root = rustix::fs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Dest {
        op: "open",
        path: dest.to_path_buf(),
        source: e.into(),
    })?;
    let mut a = Applier {
        root,
        fs,
        opts,
        stats: UnpackStats::default(),
        dir_times: vec![],
    };
    let reader = decompress(r).map_err(UnpackError::Archive)?;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(UnpackError::Archive)? {
        let entry = entry.map_err(UnpackError::Archive)?;
        a.apply(entry)?;
    }
    // Directory times last, deepest first, so writing children does not move them.
    a.dir_times.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    for (parts, mtime) in std::mem::take(&mut a.dir_times) {
        let shown = join(&parts).display().to_string();
        match parts.split_last() {
            None => {
                let d = a.open_dir(&[], ".")?;
                let d = rustix::fs::openat(
                    d.as_fd(),
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| a.io(".", "open", e.into()))?;
                set_times(d.as_fd(), OsStr::new("."), mtime)
                    .map_err(|e| a.io(".", "set mtime", e))?;
            }
            Some((name, parent)) => {
                let d = a.open_dir(parent, &shown)?;
                let d = rustix::fs::openat(
                    d.as_fd(),
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| a.io(&shown, "open", e.into()))?;
                if Applier::kind_at(d.as_fd(), name) == Some(FileType::Directory) {
                    set_times(d.as_fd(), name, mtime).map_err(|e| a.io(&shown, "set mtime", e))?;
                }
            }
        }
    }
    Ok(a.stats)
}

/// Unpacks into a new directory `dest` (which must not exist): the archive is applied to a
/// temporary sibling that is renamed to `dest` only on success and removed on failure.
pub fn unpack_new(
    r: impl Read,
    dest: &Path,
    fs: &dyn FsOps,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    unpack_new_in(r, dest, parent, fs, opts)
}

/// [`unpack_new`] with the temporary directory in `scratch` (on the same filesystem as
/// `dest`), held with an exclusive `flock` until it is renamed, so another process can tell
/// an unpack in progress from the remains of a killed one.
pub fn unpack_new_in(
    r: impl Read,
    dest: &Path,
    scratch: &Path,
    fs: &dyn FsOps,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let tmp = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(scratch)
        .map_err(|e| UnpackError::Dest {
            op: "create temporary directory in",
            path: scratch.to_path_buf(),
            source: e,
        })?;
    let _held = std::fs::File::open(tmp.path())
        .and_then(|d| {
            rustix::fs::flock(&d, rustix::fs::FlockOperation::LockExclusive)?;
            Ok(d)
        })
        .map_err(|e| UnpackError::Dest {
            op: "lock",
            path: tmp.path().to_path_buf(),
            source: e,
        })?;
    let stats = unpack(r, tmp.path(), fs, opts)?;
    let tmp_path = tmp.keep();
    std::fs::rename(&tmp_path, dest).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp_path);
        UnpackError::Dest {
            op: "rename into",
            path: dest.to_path_buf(),
            source: e,
        }
    })?;
    Ok(stats)
}

#[cfg(test)]
mod tests;
