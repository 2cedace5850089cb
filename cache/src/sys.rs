//! Privileged filesystem calls, behind a trait so the logic that uses them can be tested
//! without root: device nodes (overlay whiteouts are 0/0 character devices), extended
//! attributes (`trusted.overlay.opaque`, `security.capability`) and ownership.
//!
//! [`RealFs`] performs them; [`RecordingFs`] records them and performs only what needs no
//! privilege, so unit tests can check the calls an unpack makes.

use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{AtFlags, FileType, Mode};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Mutex;

/// The calls an unpack needs that may require privileges.
pub trait FsOps: Send + Sync {
    /// `mknodat(dir, name, kind|mode, dev)` for character/block devices and fifos.
    fn mknod(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: FileType,
        mode: u32,
        dev: u64,
    ) -> io::Result<()>;
    /// Sets an extended attribute on `name` in `dir` without following a symlink.
    fn set_xattr(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        key: &OsStr,
        value: &[u8],
    ) -> io::Result<()>;
    /// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)`.
    fn chown(&self, dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> io::Result<()>;
}

/// The path of `name` in the directory `dir`, through /proc (for calls that have no `*at` form).
fn proc_path(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    use std::os::fd::AsRawFd;
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    if !name.is_empty() && name.as_bytes() != b"." {
        p.push(name);
    }
    p
}

/// Performs the calls.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl FsOps for RealFs {
    fn mknod(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: FileType,
        mode: u32,
        dev: u64,
    ) -> io::Result<()> {
        rustix::fs::mknodat(dir.as_fd(), name, kind, Mode::from_raw_mode(mode), dev)?;
        Ok(())
    }

    fn set_xattr(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        key: &OsStr,
        value: &[u8],
    ) -> io::Result<()> {
        if name.is_empty() {
            rustix::fs::fsetxattr(dir, key, value, rustix::fs::XattrFlags::empty())?;
        } else {
            let p = proc_path(dir, name);
            rustix::fs::lsetxattr(&p, key, value, rustix::fs::XattrFlags::empty())?;
        }
        Ok(())
    }

    fn chown(&self, dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
        let flags = if name.is_empty() {
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW
        } else {
            AtFlags::SYMLINK_NOFOLLOW
        };
        rustix::fs::chownat(
            dir.as_fd(),
            name,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            flags,
        )?;
        Ok(())
    }
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsCall {
    Mknod {
        name: String,
        kind: &'static str,
        mode: u32,
        dev: u64,
    },
    SetXattr {
        name: String,
        key: String,
        value: Vec<u8>,
    },
    Chown {
        name: String,
        uid: u32,
        gid: u32,
    },
}

/// Records every call. Device nodes become empty regular files (so later steps find
/// something at that name), xattrs and ownership are only recorded.
#[derive(Debug, Default)]
pub struct RecordingFs {
    calls: Mutex<Vec<FsCall>>,
}

impl RecordingFs {
    pub fn calls(&self) -> Vec<FsCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
    fn record(&self, c: FsCall) {
        if let Ok(mut v) = self.calls.lock() {
            v.push(c);
        }
    }
}

/// The absolute path of `name` in `dir`, for the record.
fn full_name(dir: BorrowedFd<'_>, name: &OsStr) -> String {
    let base = std::fs::read_link(proc_path(dir, OsStr::new(""))).unwrap_or_default();
    let p = if name.is_empty() {
        base
    } else {
        base.join(name)
    };
    p.to_string_lossy().into_owned()
}

fn kind_name(k: FileType) -> &'static str {
    match k {
        FileType::CharacterDevice => "char",
        FileType::BlockDevice => "block",
        FileType::Fifo => "fifo",
        _ => "other",
    }
}

impl FsOps for RecordingFs {
    fn mknod(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: FileType,
        mode: u32,
        dev: u64,
    ) -> io::Result<()> {
        self.record(FsCall::Mknod {
            name: full_name(dir, name),
            kind: kind_name(kind),
            mode,
            dev,
        });
        let fd = rustix::fs::openat(
            dir,
            name,
            rustix::fs::OFlags::CREATE
                | rustix::fs::OFlags::EXCL
                | rustix::fs::OFlags::WRONLY
                | rustix::fs::OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        drop(fd);
        Ok(())
    }

    fn set_xattr(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        key: &OsStr,
        value: &[u8],
    ) -> io::Result<()> {
        self.record(FsCall::SetXattr {
            name: full_name(dir, name),
            key: key.to_string_lossy().into_owned(),
            value: value.to_vec(),
        });
        Ok(())
    }

    fn chown(&self, dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
        self.record(FsCall::Chown {
            name: full_name(dir, name),
            uid,
            gid,
        });
        Ok(())
    }
}
