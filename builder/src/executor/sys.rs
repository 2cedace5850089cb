//! Every mount, pivot_root and hostname change the built-in runtime makes, behind a trait:
//! [`LinuxSyscall`] performs them, [`RecordingSyscall`] records them so the container setup
//! logic ([`super::rootfs`]) is unit-tested without root.

use nix::mount::{MntFlags, MsFlags};
use std::io;
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
    fn mkdir_all(&self, p: &Path) -> io::Result<()>;
    /// Creates an empty file (a mount point for a file bind mount) if nothing is there.
    fn touch(&self, p: &Path) -> io::Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    fn is_dir(&self, p: &Path) -> bool;
    fn exists(&self, p: &Path) -> bool;
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

    fn mkdir_all(&self, p: &Path) -> io::Result<()> {
        std::fs::create_dir_all(p)
    }

    fn touch(&self, p: &Path) -> io::Result<()> {
        if std::fs::symlink_metadata(p).is_ok() {
            return Ok(());
        }
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(p)
            .map(drop)
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
    fn mkdir_all(&self, p: &Path) -> io::Result<()> {
        self.push(Call::Mkdir(p.to_path_buf()))
    }
    fn touch(&self, p: &Path) -> io::Result<()> {
        self.push(Call::Touch(p.to_path_buf()))
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
