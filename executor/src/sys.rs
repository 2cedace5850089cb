//! Every mount, pivot_root and hostname change the built-in runtime makes, behind a trait:
//! [`LinuxSyscall`] performs them, [`RecordingSyscall`] records them so the container setup
//! logic ([`super::rootfs`]) is unit-tested without root.

use nix::mount::{MntFlags, MsFlags};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub trait Syscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    fn umount(&self, target: &Path, flags: MntFlags) -> io::Result<()>;
    /// Makes `new_root` the root: pivot_root with the old root stacked beneath, then detached.
    fn pivot_root(&self, new_root: &Path) -> io::Result<()>;
    fn sethostname(&self, name: &str) -> io::Result<()>;
    /// The directory (`dir`) or file a mount lands on at `dest` inside `root`, created when
    /// missing: every component is resolved by the kernel inside `root`, so no symlink in the
    /// image leads the mount out of it. Mount onto [`MountPoint::path`] while it lives.
    fn mount_point(&self, root: &Path, dest: &Path, dir: bool) -> io::Result<MountPoint>;
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    fn is_dir(&self, p: &Path) -> bool;
    fn exists(&self, p: &Path) -> bool;
}

/// Where a mount lands: for the real calls `/proc/self/fd/N` of the resolved directory or file
/// (held open), which the kernel maps to exactly that inode.
#[derive(Debug)]
pub struct MountPoint {
    path: PathBuf,
    _held: Option<strata_cache::inroot::Entry>,
}

impl MountPoint {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn in_root_err(e: strata_cache::inroot::InRootError) -> io::Error {
    io::Error::new(e.cause.kind(), e.to_string())
}

/// Creates the file `dest` inside `root` (its parents too) unless something is there, and
/// resolves it. A dangling symlink at `dest` gets its target created, inside the root.
fn file_mount_point(
    root: &strata_cache::inroot::Root,
    dest: &Path,
    hops: usize,
) -> io::Result<strata_cache::inroot::Entry> {
    use rustix::fs::{FileType, Mode, OFlags};
    match root.resolve(dest, true) {
        Ok(e) => return Ok(e),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(in_root_err(e)),
    }
    let parent = dest.parent().unwrap_or(Path::new("/"));
    let name = dest
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} names no file", dest.display())))?;
    let dir = root
        .mkdir_all(parent, 0o755, &mut |_| Ok(()))
        .map_err(in_root_err)?;
    if dir.kind_of(name) == Some(FileType::Symlink) {
        if hops >= 40 {
            return Err(io::Error::from_raw_os_error(40));
        }
        let t = rustix::fs::readlinkat(dir.fd(), name, Vec::new())?;
        let t = Path::new(std::ffi::OsStr::from_bytes(t.as_bytes()));
        let next = if t.is_absolute() {
            t.to_path_buf()
        } else {
            parent.join(t)
        };
        return file_mount_point(root, &next, hops + 1);
    }
    match rustix::fs::openat(
        dir.fd(),
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    ) {
        Ok(_) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    root.resolve(dest, true).map_err(in_root_err)
}

fn nix_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// The real calls.
pub struct LinuxSyscall;

impl Syscall for LinuxSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data).map_err(nix_err)
    }

    fn umount(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        nix::mount::umount2(target, flags).map_err(nix_err)
    }

    fn pivot_root(&self, new_root: &Path) -> io::Result<()> {
        nix::unistd::chdir(new_root).map_err(nix_err)?;
        nix::unistd::pivot_root(".", ".").map_err(nix_err)?;
        nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(nix_err)?;
        nix::unistd::chdir("/").map_err(nix_err)
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        nix::unistd::sethostname(name).map_err(nix_err)
    }

    fn mount_point(&self, root: &Path, dest: &Path, dir: bool) -> io::Result<MountPoint> {
        let r = strata_cache::inroot::Root::open(root).map_err(in_root_err)?;
        let e = if dir {
            r.mkdir_all(dest, 0o755, &mut |_| Ok(()))
                .map_err(in_root_err)?
        } else {
            file_mount_point(&r, dest, 0)?
        };
        Ok(MountPoint {
            path: e.path().to_path_buf(),
            _held: Some(e),
        })
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        match std::os::unix::fs::symlink(target, link) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            r => r,
        }
    }

    fn is_dir(&self, p: &Path) -> bool {
        p.is_dir()
    }

    fn exists(&self, p: &Path) -> bool {
        std::fs::symlink_metadata(p).is_ok()
    }
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Umount(PathBuf),
    PivotRoot(PathBuf),
    Hostname(String),
    Mkdir(PathBuf),
    Touch(PathBuf),
    Symlink(PathBuf, PathBuf),
}

/// Records calls; answers `is_dir`/`exists` from a fixed list of directories.
#[derive(Debug, Default)]
pub struct RecordingSyscall {
    pub calls: Mutex<Vec<Call>>,
    pub dirs: Vec<PathBuf>,
}

impl RecordingSyscall {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
    fn push(&self, c: Call) -> io::Result<()> {
        if let Ok(mut v) = self.calls.lock() {
            v.push(c);
        }
        Ok(())
    }
}

impl Syscall for RecordingSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.push(Call::Mount {
            source: source.map(Path::to_path_buf),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
        })
    }
    fn umount(&self, target: &Path, _: MntFlags) -> io::Result<()> {
        self.push(Call::Umount(target.to_path_buf()))
    }
    fn pivot_root(&self, new_root: &Path) -> io::Result<()> {
        self.push(Call::PivotRoot(new_root.to_path_buf()))
    }
    fn sethostname(&self, name: &str) -> io::Result<()> {
        self.push(Call::Hostname(name.to_string()))
    }
    fn mount_point(&self, root: &Path, dest: &Path, dir: bool) -> io::Result<MountPoint> {
        let p = root.join(dest.strip_prefix("/").unwrap_or(dest));
        self.push(if dir {
            Call::Mkdir(p.clone())
        } else {
            Call::Touch(p.clone())
        })?;
        Ok(MountPoint {
            path: p,
            _held: None,
        })
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.push(Call::Symlink(target.to_path_buf(), link.to_path_buf()))
    }
    fn is_dir(&self, p: &Path) -> bool {
        self.dirs.iter().any(|d| d == p)
    }
    fn exists(&self, p: &Path) -> bool {
        self.dirs.iter().any(|d| d == p)
    }
}
