//! Paths inside a directory whose contents the build does not control (a layer, a stage's
//! filesystem, a container's root, the context, an upper directory): every path is resolved by
//! the kernel inside that directory (`openat2` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`:
//! absolute symlinks and `..` stay inside, a loop or a chain too long is `ELOOP`) and the result
//! is held as a file descriptor. Callers operate through it: `*at` calls on the descriptor, or
//! [`Entry::path`], `/proc/self/fd/N`, which the kernel maps to exactly the opened file and
//! never resolves again; [`Entry::child`] names one component below a directory entry.
//!
//! Nothing here returns a host path built from names inside the root.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// How many symlinks a missing directory may be created behind, one after the other, in
/// [`Root::mkdir_all`] (the kernel's own limit for one resolution is 40).
const MAX_LINK_HOPS: usize = 40;

/// An error, with the path inside the root it is about.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {}", describe(.cause))]
pub struct InRootError {
    pub op: &'static str,
    /// The path as named inside the root (never the host path).
    pub path: String,
    /// What the kernel said (its text is already part of this error's message).
    pub cause: io::Error,
}

fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(40) => "too many levels of symbolic links (a symlink loop or a chain longer than \
                     40), resolved inside the image's root"
            .into(),
        Some(20) => "a component of the path is not a directory".into(),
        _ => e.to_string(),
    }
}

impl InRootError {
    pub fn new(op: &'static str, path: impl AsRef<Path>, cause: io::Error) -> InRootError {
        InRootError {
            op,
            path: display(path.as_ref()),
            cause,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.cause.kind() == io::ErrorKind::NotFound
    }
}

fn display(p: &Path) -> String {
    let s = p.to_string_lossy();
    if s.starts_with('/') {
        s.into_owned()
    } else {
        format!("/{s}")
    }
}

type Result<T> = std::result::Result<T, InRootError>;

fn resolve_flags() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// `path` relative to the root: leading `/` dropped, empty → `.`.
fn relative(path: &Path) -> PathBuf {
    let parts: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect();
    if parts.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        parts
    }
}

/// A directory that paths are resolved inside of.
#[derive(Debug, Clone)]
pub struct Root {
    fd: Arc<OwnedFd>,
}

/// One resolved file or directory inside a [`Root`], held open (`O_PATH`).
#[derive(Debug, Clone)]
pub struct Entry {
    fd: Arc<OwnedFd>,
    proc: PathBuf,
}

impl Root {
    /// Opens `dir`, a host path strata chose (a snapshot, a mount point, the context
    /// directory), as the root. Only this path is resolved on the host.
    pub fn open(dir: &Path) -> Result<Root> {
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| InRootError {
            op: "open",
            path: dir.display().to_string(),
            cause: e.into(),
        })?;
        Ok(Root { fd: Arc::new(fd) })
    }

    /// A resolved directory entry as the root of further resolutions.
    pub fn from_entry(e: &Entry) -> Root {
        Root { fd: e.fd.clone() }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The root itself as an entry.
    pub fn entry(&self) -> Entry {
        Entry::new(self.fd.clone())
    }

    /// Resolves `path` inside the root, following symlinks (inside the root) in every component
    /// and, when `follow` is set, in the last one too.
    pub fn resolve(&self, path: impl AsRef<Path>, follow: bool) -> Result<Entry> {
        let path = path.as_ref();
        let mut flags = OFlags::PATH | OFlags::CLOEXEC;
        if !follow {
            flags |= OFlags::NOFOLLOW;
        }
        self.openat2(path, flags, resolve_flags())
            .map(|fd| Entry::new(Arc::new(fd)))
            .map_err(|e| InRootError::new("resolve", path, e))
    }

    /// Resolves `path` like [`Root::resolve`] but refuses every symlink on the way (also
    /// inside the root) and any `..` that leaves it: for paths strata made itself and expects
    /// to be real directories all the way (an upper directory's mount-point stubs, a snapshot's
    /// directories).
    pub fn resolve_no_symlinks(&self, path: impl AsRef<Path>) -> Result<Entry> {
        let path = path.as_ref();
        self.openat2(
            path,
            OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .map(|fd| Entry::new(Arc::new(fd)))
        .map_err(|e| InRootError::new("resolve", path, e))
    }

    /// Opens the regular file at `path` (symlinks followed inside the root) for reading.
    /// Anything else is refused before it is opened for reading: a device node's driver is
    /// never reached and a FIFO never blocks (the file is opened as a path, checked, then
    /// opened through its descriptor).
    pub fn open_file(&self, path: impl AsRef<Path>) -> Result<std::fs::File> {
        let path = path.as_ref();
        let e = self.resolve(path, true)?;
        match e.file_type() {
            Ok(FileType::RegularFile) => {}
            Ok(_) => {
                return Err(InRootError::new(
                    "open",
                    path,
                    io::Error::other("not a regular file"),
                ));
            }
            Err(er) => return Err(InRootError::new("stat", path, er)),
        }
        e.open_read()
            .map_err(|er| InRootError::new("open", path, er))
    }

    /// Reads the regular file at `path`, at most `limit` bytes (more is an error).
    pub fn read_file(&self, path: impl AsRef<Path>, limit: u64) -> Result<Vec<u8>> {
        use std::io::Read;
        let path = path.as_ref();
        let f = self.open_file(path)?;
        let mut out = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| InRootError::new("read", path, e))?;
        if out.len() as u64 > limit {
            return Err(InRootError::new(
                "read",
                path,
                io::Error::other(format!("larger than {limit} bytes")),
            ));
        }
        Ok(out)
    }

    /// The directory at `path`, created with its missing parents (`mode`; `created` is called
    /// for each new one, outermost first). Symlinks along the way are followed inside the root;
    /// a missing directory behind a dangling symlink is created where the symlink points (as
    /// `mkdir -p` in a chroot does).
    pub fn mkdir_all(
        &self,
        path: impl AsRef<Path>,
        mode: u32,
        created: &mut dyn FnMut(&Entry) -> Result<()>,
    ) -> Result<Entry> {
        self.mkdir_hops(&relative(path.as_ref()), mode, created, 0)
    }

    fn mkdir_hops(
        &self,
        rel: &Path,
        mode: u32,
        created: &mut dyn FnMut(&Entry) -> Result<()>,
        hops: usize,
    ) -> Result<Entry> {
        let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        if let Ok(fd) = self.openat2(rel, dir_flags, resolve_flags()) {
            return Ok(Entry::new(Arc::new(fd)));
        }
        let mut cur = self.entry();
        let mut prefix = PathBuf::new();
        for c in rel.components() {
            let name = c.as_os_str();
            prefix.push(name);
            match self.openat2(&prefix, dir_flags, resolve_flags()) {
                Ok(fd) => {
                    cur = Entry::new(Arc::new(fd));
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(InRootError::new("create directory", &prefix, e)),
            }
            if name == ".." {
                return Err(InRootError::new(
                    "create directory",
                    &prefix,
                    io::Error::from(io::ErrorKind::NotFound),
                ));
            }
            match cur.kind_of(name) {
                Some(FileType::Symlink) => {
                    if hops >= MAX_LINK_HOPS {
                        return Err(InRootError::new(
                            "create directory",
                            &prefix,
                            io::Error::from_raw_os_error(40),
                        ));
                    }
                    // A dangling symlink: create its target, inside the root, then go on.
                    let target = rustix::fs::readlinkat(cur.fd(), name, Vec::new())
                        .map_err(|e| InRootError::new("read symlink", &prefix, e.into()))?;
                    let target = Path::new(OsStr::from_bytes(target.as_bytes()));
                    let joined = if target.is_absolute() {
                        relative(target)
                    } else {
                        prefix
                            .parent()
                            .unwrap_or(Path::new(""))
                            .join(target)
                            .components()
                            .collect()
                    };
                    self.mkdir_hops(&relative(&joined), mode, created, hops + 1)?;
                }
                Some(_) => {
                    return Err(InRootError::new(
                        "create directory",
                        &prefix,
                        io::Error::from_raw_os_error(20),
                    ));
                }
                None => match rustix::fs::mkdirat(cur.fd(), name, Mode::from_raw_mode(mode)) {
                    Ok(()) => {
                        let e = cur
                            .open_dir(name)
                            .map_err(|e| InRootError::new("open directory", &prefix, e.cause))?;
                        created(&e)?;
                    }
                    Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => {
                        return Err(InRootError::new("create directory", &prefix, e.into()));
                    }
                },
            }
            cur = self
                .openat2(&prefix, dir_flags, resolve_flags())
                .map(|fd| Entry::new(Arc::new(fd)))
                .map_err(|e| InRootError::new("open directory", &prefix, e))?;
        }
        Ok(cur)
    }

    /// `(parent, name)` of `path`: the parent directory resolved inside the root (symlinks
    /// followed), the last component left for the caller's `*at` call (never followed by it
    /// unless it asks). `None` for the root itself.
    pub fn parent_of(&self, path: impl AsRef<Path>) -> Result<Option<(Entry, OsString)>> {
        let rel = relative(path.as_ref());
        let Some(name) = rel.file_name().map(|n| n.to_os_string()) else {
            return Ok(None);
        };
        if rel.components().next_back() == Some(Component::ParentDir) {
            // `a/..`: the parent of what it names; resolve it fully instead.
            return Ok(None);
        }
        let parent = rel.parent().unwrap_or(Path::new(""));
        let e = self.resolve(parent, true)?;
        if !e.is_dir() {
            return Err(InRootError::new(
                "resolve",
                parent,
                io::Error::from_raw_os_error(20),
            ));
        }
        Ok(Some((e, name)))
    }

    /// `(directory, name)` naming what `path` names: the directory resolved inside the root,
    /// and when `follow` is set a symlink at the end followed, inside the root, to the entry it
    /// leads to (at most 40 of them), so the pair names the file itself. `None` for the root
    /// itself (or a path ending in `..`).
    pub fn resolve_last(
        &self,
        path: impl AsRef<Path>,
        follow: bool,
    ) -> Result<Option<(Entry, OsString)>> {
        let asked = path.as_ref();
        let mut path = relative(asked);
        let root_real = self.entry().real_path().ok();
        for _ in 0..=MAX_LINK_HOPS {
            let Some((dir, name)) = self.parent_of(&path)? else {
                return Ok(None);
            };
            if !follow || dir.kind_of(&name) != Some(FileType::Symlink) {
                return Ok(Some((dir, name)));
            }
            let t = rustix::fs::readlinkat(dir.fd(), name.as_os_str(), Vec::new())
                .map_err(|e| InRootError::new("read symlink", asked, e.into()))?;
            let t = PathBuf::from(OsStr::from_bytes(t.as_bytes()));
            // A relative target is relative to where the link really is inside the root.
            let parent = dir
                .real_path()
                .ok()
                .zip(root_real.as_ref())
                .and_then(|(p, r)| p.strip_prefix(r).ok().map(Path::to_path_buf))
                .unwrap_or_default();
            path = relative(&if t.is_absolute() { t } else { parent.join(t) });
        }
        Err(InRootError::new(
            "resolve",
            asked,
            io::Error::from_raw_os_error(40),
        ))
    }

    fn openat2(&self, path: &Path, flags: OFlags, resolve: ResolveFlags) -> io::Result<OwnedFd> {
        let rel = relative(path);
        loop {
            match rustix::fs::openat2(self.fd.as_fd(), &rel, flags, Mode::empty(), resolve) {
                // The kernel asks to retry when a rename raced the lookup.
                Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => continue,
                r => return r.map_err(io::Error::from),
            }
        }
    }
}

impl Entry {
    /// An entry for a descriptor opened elsewhere (with `O_PATH`, say).
    pub fn from_fd(fd: OwnedFd) -> Entry {
        Entry::new(Arc::new(fd))
    }

    /// The type of the entry itself (a symlink's when it was resolved without following).
    pub fn file_type(&self) -> io::Result<FileType> {
        Ok(FileType::from_raw_mode(
            rustix::fs::fstat(&*self.fd)?.st_mode,
        ))
    }

    /// The entry opened for reading through its descriptor: the same inode, never a name
    /// looked up again. For a regular file the caller has checked ([`Entry::file_type`]):
    /// opening a device or FIFO for reading reaches its driver or blocks.
    pub fn open_read(&self) -> io::Result<std::fs::File> {
        let fd = rustix::fs::open(
            &self.proc,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )?;
        Ok(std::fs::File::from(fd))
    }

    fn new(fd: Arc<OwnedFd>) -> Entry {
        use std::os::fd::AsRawFd;
        let proc = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        Entry { fd, proc }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `/proc/self/fd/N`: a path the kernel maps to exactly this file, valid while the entry
    /// (or a clone) lives. For path-taking calls that follow their last component (open,
    /// stat, mount, read_dir); calls that do not follow it (lstat, rename, unlink) must use the
    /// descriptor instead.
    pub fn path(&self) -> &Path {
        &self.proc
    }

    /// One component below this directory: `/proc/self/fd/N/name`. `name` must be a single
    /// file name (no `/`, not `..`), so nothing but this directory's own entry is looked up.
    pub fn child(&self, name: &OsStr) -> io::Result<PathBuf> {
        check_name(name)?;
        Ok(self.proc.join(name))
    }

    /// Metadata of the entry itself (a symlink's own when it was resolved without following).
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        let dup = self.fd.try_clone()?;
        std::fs::File::from(dup).metadata()
    }

    pub fn is_dir(&self) -> bool {
        rustix::fs::fstat(&*self.fd)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
    }

    /// The type of `name` in this directory, not following it; `None` when it is missing.
    pub fn kind_of(&self, name: &OsStr) -> Option<FileType> {
        rustix::fs::statat(self.fd.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| FileType::from_raw_mode(st.st_mode))
    }

    /// Metadata of `name` in this directory, not following it.
    pub fn child_metadata(&self, name: &OsStr) -> io::Result<std::fs::Metadata> {
        std::fs::symlink_metadata(self.child(name)?)
    }

    /// The directory `name` directly below this one; a symlink there is refused (`ELOOP` /
    /// `ENOTDIR`), never followed.
    pub fn open_dir(&self, name: &OsStr) -> Result<Entry> {
        check_name(name).map_err(|e| InRootError::new("open", Path::new(name), e))?;
        rustix::fs::openat(
            self.fd.as_fd(),
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(|fd| Entry::new(Arc::new(fd)))
        .map_err(|e| InRootError::new("open", Path::new(name), e.into()))
    }

    /// `name` directly below this directory, not followed if it is a symlink.
    pub fn open_child(&self, name: &OsStr) -> Result<Entry> {
        check_name(name).map_err(|e| InRootError::new("open", Path::new(name), e))?;
        rustix::fs::openat(
            self.fd.as_fd(),
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(|fd| Entry::new(Arc::new(fd)))
        .map_err(|e| InRootError::new("open", Path::new(name), e.into()))
    }

    /// Removes `name` from this directory (a directory with everything below it), never
    /// following a symlink; missing is not an error.
    pub fn remove_child_all(&self, name: &OsStr) -> io::Result<()> {
        check_name(name)?;
        match self.kind_of(name) {
            None => Ok(()),
            Some(FileType::Directory) => {
                let sub = self.open_dir(name).map_err(|e| e.cause)?;
                let names: Vec<OsString> = std::fs::read_dir(sub.path())?
                    .map(|e| e.map(|e| e.file_name()))
                    .collect::<io::Result<_>>()?;
                for n in names {
                    sub.remove_child_all(&n)?;
                }
                rustix::fs::unlinkat(self.fd.as_fd(), name, AtFlags::REMOVEDIR)
                    .map_err(io::Error::from)
            }
            Some(_) => rustix::fs::unlinkat(self.fd.as_fd(), name, AtFlags::empty())
                .map_err(io::Error::from),
        }
    }

    /// The host path of the entry as the kernel reports it, for messages and for recording
    /// where a resolved directory is: never resolved again to reach the file.
    pub fn real_path(&self) -> io::Result<PathBuf> {
        let b = rustix::fs::readlink(&self.proc, Vec::new()).map_err(io::Error::from)?;
        Ok(PathBuf::from(OsStr::from_bytes(b.as_bytes())))
    }
}

fn check_name(name: &OsStr) -> io::Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a single file name"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "inside\n").unwrap();
        std::fs::create_dir_all(d.path().join("outside")).unwrap();
        std::fs::write(d.path().join("outside/secret"), "host\n").unwrap();
        (d, root)
    }

    #[test]
    fn absolute_and_parent_symlinks_stay_inside() {
        let (d, root) = tree();
        symlink("/", root.join("up")).unwrap();
        symlink("../../../../outside", root.join("rel")).unwrap();
        let r = Root::open(&root).unwrap();
        let e = r.resolve("/up/etc/passwd", true).unwrap();
        assert_eq!(std::fs::read_to_string(e.path()).unwrap(), "inside\n");
        assert!(r.resolve("/rel/secret", true).unwrap_err().is_not_found());
        assert!(d.path().join("outside/secret").exists());
    }

    #[test]
    fn a_chain_longer_than_the_kernel_allows_is_an_error_not_a_path() {
        let (_d, root) = tree();
        for i in 1..=41 {
            symlink(format!("/l{}", i + 1), root.join(format!("l{i}"))).unwrap();
        }
        symlink("/", root.join("l42")).unwrap();
        let r = Root::open(&root).unwrap();
        let err = r.resolve("/l1/etc/passwd", true).unwrap_err();
        assert_eq!(err.cause.raw_os_error(), Some(40), "{err}");
        assert!(err.to_string().contains("too many levels"), "{err}");
        // A loop, too.
        symlink("/loop", root.join("loop")).unwrap();
        assert_eq!(
            r.resolve("/loop/x", true).unwrap_err().cause.raw_os_error(),
            Some(40)
        );
        assert!(r.mkdir_all("/l1/new", 0o755, &mut |_| Ok(())).is_err());
    }

    #[test]
    fn mkdir_all_creates_behind_dangling_symlinks_inside() {
        let (d, root) = tree();
        symlink("/made/here", root.join("dangling")).unwrap();
        symlink(d.path().join("outside"), root.join("abs")).unwrap();
        let r = Root::open(&root).unwrap();
        let mut n = 0;
        let e = r
            .mkdir_all("/dangling/x", 0o755, &mut |_| {
                n += 1;
                Ok(())
            })
            .unwrap();
        assert!(e.is_dir());
        assert!(root.join("made/here/x").is_dir());
        assert_eq!(n, 3);
        // An absolute host path as target is a path inside the root.
        r.mkdir_all("/abs/y", 0o755, &mut |_| Ok(())).unwrap();
        assert!(!d.path().join("outside/y").exists());
        assert!(
            root.join(d.path().strip_prefix("/").unwrap())
                .join("outside/y")
                .is_dir()
        );
    }

    #[test]
    fn no_symlinks_refuses_every_link() {
        let (_d, root) = tree();
        symlink("etc", root.join("e")).unwrap();
        let r = Root::open(&root).unwrap();
        assert!(r.resolve_no_symlinks("etc/passwd").is_ok());
        assert!(r.resolve_no_symlinks("e/passwd").is_err());
        assert!(r.resolve_no_symlinks("../x").is_err());
    }

    #[test]
    fn open_file_refuses_fifos_and_bounds_reads() {
        let (_d, root) = tree();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let r = Root::open(&root).unwrap();
        assert!(r.open_file("fifo").is_err());
        assert_eq!(r.read_file("etc/passwd", 100).unwrap(), b"inside\n");
        assert!(r.read_file("etc/passwd", 3).is_err());
    }

    #[test]
    fn children_are_single_names_and_never_followed() {
        let (_d, root) = tree();
        symlink("/", root.join("s")).unwrap();
        let r = Root::open(&root).unwrap();
        let top = r.entry();
        assert!(top.child(OsStr::new("../x")).is_err());
        assert!(top.open_dir(OsStr::new("s")).is_err());
        assert_eq!(top.kind_of(OsStr::new("s")), Some(FileType::Symlink));
        top.remove_child_all(OsStr::new("s")).unwrap();
        assert!(root.join("etc/passwd").exists());
        let (p, name) = r.parent_of("/etc/passwd").unwrap().unwrap();
        assert_eq!(name, "passwd");
        assert!(p.is_dir());
    }

    #[test]
    fn resolve_last_names_the_file_a_final_symlink_leads_to() {
        let (_d, root) = tree();
        std::fs::create_dir_all(root.join("x/y")).unwrap();
        std::fs::write(root.join("x/z"), "z").unwrap();
        symlink("/x/y", root.join("a")).unwrap();
        symlink("../z", root.join("x/y/l")).unwrap();
        symlink("/l2", root.join("l1")).unwrap();
        symlink("/l1", root.join("l2")).unwrap();
        let r = Root::open(&root).unwrap();
        let (dir, name) = r.resolve_last("/a/l", true).unwrap().unwrap();
        assert_eq!(name, "z");
        assert_eq!(
            std::fs::read_to_string(dir.child(&name).unwrap()).unwrap(),
            "z"
        );
        let (_, name) = r.resolve_last("/a/l", false).unwrap().unwrap();
        assert_eq!(name, "l");
        assert_eq!(
            r.resolve_last("/l1", true)
                .unwrap_err()
                .cause
                .raw_os_error(),
            Some(40)
        );
        assert!(r.resolve_last("/", true).unwrap().is_none());
    }
}
