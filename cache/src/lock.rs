//! The state root's lock: builds and containers hold it shared while they use layers; garbage
//! collection (`strata prune`, `strata rmi`) holds it exclusively, so it never removes a layer
//! a running build is about to stack or copy from. An `flock`, so a killed process releases it.

use rustix::fs::{FlockOperation, flock};
use std::fs::File;
use std::io;
use std::path::Path;

#[derive(Debug)]
pub struct RootLock {
    _file: File,
}

/// The root's lock file, in a root that [`crate::root::prepare`] found this user's own; a
/// symlink in its place is not followed.
fn open(root: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    crate::root::prepare(root).map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(root.join("lock"))
}

impl RootLock {
    /// Waits for the shared lock.
    pub fn shared(root: &Path) -> io::Result<RootLock> {
        let f = open(root)?;
        flock(&f, FlockOperation::LockShared)?;
        Ok(RootLock { _file: f })
    }

    /// The exclusive lock if no one holds the lock now.
    pub fn try_exclusive(root: &Path) -> io::Result<Option<RootLock>> {
        let f = open(root)?;
        match flock(&f, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(RootLock { _file: f })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits for the exclusive lock.
    pub fn exclusive(root: &Path) -> io::Result<RootLock> {
        let f = open(root)?;
        flock(&f, FlockOperation::LockExclusive)?;
        Ok(RootLock { _file: f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_holders_keep_out_the_exclusive_one() {
        let d = tempfile::tempdir().unwrap();
        let a = RootLock::shared(d.path()).unwrap();
        let _b = RootLock::shared(d.path()).unwrap();
        assert!(RootLock::try_exclusive(d.path()).unwrap().is_none());
        drop(a);
        drop(_b);
        let x = RootLock::try_exclusive(d.path()).unwrap();
        assert!(x.is_some());
    }
}
