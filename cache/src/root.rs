//! The state root's permissions: the root and every directory in it that holds image data
//! (layer snapshots with their setuid files and device nodes, blobs, containers, cache mounts,
//! writes in progress) are private to their owner, mode 0700. They are made with that mode by
//! `mkdir` (never widened by the umask, never made open and narrowed later), and [`prepare`]
//! narrows roots an earlier strata made 0755 when this user owns them.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of the state root and of its directories that hold image data.
pub const PRIVATE_MODE: u32 = 0o700;

/// The directories of a state root that hold image data (made by [`prepare`]).
pub const PRIVATE_DIRS: &[&str] = &[
    "blobs",
    "blobs/sha256",
    "snapshots",
    "containers",
    "cachemounts",
    "tmp",
    "locks",
];

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// Another user made the directory: whatever is in it (a symlink in place of `tmp/`, a
    /// planted `metadata.db`) would be theirs to choose.
    #[error(
        "{path} is owned by uid {uid}, not by this user (uid {euid}): refusing to use a state root another user controls; choose another --root or STRATA_ROOT"
    )]
    Foreign { path: PathBuf, uid: u32, euid: u32 },
    #[error(
        "{path} is a symbolic link, not a directory: refusing to follow it inside the state root"
    )]
    Symlink { path: PathBuf },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RootError + 'a {
    move |source| RootError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Makes one directory with mode 0700; an existing directory is left as it is. A umask can
/// only take bits away from `mkdir`'s mode; bits it took from the owner are given back (the
/// directory was never more open than 0700).
fn mkdir_private(dir: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(PRIVATE_MODE).create(dir) {
        Ok(()) => {
            let m = std::fs::symlink_metadata(dir)?;
            if m.mode() & 0o7777 != PRIVATE_MODE {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_MODE))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `dir` and every missing directory above it with mode 0700, for directories inside
/// the state root (whose parents are private too).
pub fn private_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        private_dir_all(parent)?;
    }
    mkdir_private(dir)
}

/// Creates the state root itself: its missing parents as usual, the root with mode 0700.
pub fn create_root(root: &Path) -> io::Result<()> {
    if root.is_dir() {
        return Ok(());
    }
    if let Some(parent) = root.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    mkdir_private(root)
}

/// Narrows `dir` (or the directory a symlink there leads to, for the root itself) to 0700 when
/// it is not. A directory another user owns is refused, as is a symlink in place of one of the
/// root's data directories (`follow` unset).
fn narrow(dir: &Path, euid: u32, follow: bool) -> Result<(), RootError> {
    let m = match if follow {
        std::fs::metadata(dir)
    } else {
        std::fs::symlink_metadata(dir)
    } {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspect", dir)(e)),
    };
    if m.file_type().is_symlink() {
        return Err(RootError::Symlink {
            path: dir.to_path_buf(),
        });
    }
    if !m.is_dir() {
        return Ok(());
    }
    if m.uid() != euid {
        return Err(RootError::Foreign {
            path: dir.to_path_buf(),
            uid: m.uid(),
            euid,
        });
    }
    if m.mode() & 0o7777 != PRIVATE_MODE {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_MODE))
            .map_err(io_err("make private", dir))?;
    }
    Ok(())
}

/// Makes `root` ready for use: creates it and its [`PRIVATE_DIRS`] with mode 0700, and narrows
/// to 0700 those an earlier strata made more open. A root (or a data directory in it) another
/// user owns is refused, and so is a data directory that is a symlink: another user could
/// have planted either. Returns warnings (none today; kept for the callers' reporting).
pub fn prepare(root: &Path) -> Result<Vec<String>, RootError> {
    let euid = rustix::process::geteuid().as_raw();
    // Checked before anything is made in it.
    narrow(root, euid, true)?;
    create_root(root).map_err(io_err("create the state root", root))?;
    narrow(root, euid, true)?;
    for d in PRIVATE_DIRS {
        let p = root.join(d);
        narrow(&p, euid, false)?;
        private_dir_all(&p).map_err(io_err("create", &p))?;
        narrow(&p, euid, false)?;
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_new_root_and_its_data_directories_are_private() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("parent/root");
        assert!(prepare(&root).unwrap().is_empty());
        assert_eq!(mode(&root), 0o700);
        for dir in PRIVATE_DIRS {
            assert_eq!(mode(&root.join(dir)), 0o700, "{dir}");
        }
        // The parents are made as usual, not private.
        assert_ne!(mode(&d.path().join("parent")), 0o700);
    }

    #[test]
    fn an_open_root_of_this_user_is_narrowed() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        for dir in ["", "snapshots", "blobs/sha256", "tmp"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            std::fs::set_permissions(root.join(dir), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        assert!(prepare(&root).unwrap().is_empty());
        for dir in ["", "snapshots", "blobs", "blobs/sha256", "tmp"] {
            assert_eq!(mode(&root.join(dir)), 0o700, "{dir}");
        }
    }

    #[test]
    fn a_root_reached_through_a_symlink_is_narrowed() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = d.path().join("root");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(prepare(&link).unwrap().is_empty());
        assert_eq!(mode(&real), 0o700);
        assert_eq!(mode(&real.join("snapshots")), 0o700);
    }

    #[test]
    fn a_root_of_another_user_or_with_symlinked_directories_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let victim = d.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        std::fs::write(victim.join("f"), "x").unwrap();
        std::os::unix::fs::symlink(&victim, root.join("tmp")).unwrap();
        let e = prepare(&root).unwrap_err();
        assert!(matches!(e, RootError::Symlink { .. }), "{e}");
        assert!(victim.join("f").exists());
        assert_ne!(mode(&victim), 0o700);
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipping the other-user half: changing a directory's owner needs root");
            assert!(std::env::var_os("CI").is_none(), "CI runs as root");
            return;
        }
        let other = d.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&other, Some(65534), Some(65534)).unwrap();
        let e = prepare(&other).unwrap_err();
        assert!(e.to_string().contains("owned by uid 65534"), "{e}");
        assert_eq!(mode(&other), 0o755);
        assert!(!other.join("snapshots").exists());
    }
}
