//! Reading the files a build is handed (secrets, Dockerfiles, `.dockerignore`) as regular
//! files only, opened without blocking and read with a size bound.
//!
//! A path the user names is the user's own and is followed ([`open_regular`]); a file found
//! in the build context is resolved inside the context ([`open_in_context`]), as BuildKit
//! resolves it inside the transferred context. Either way the open never blocks (a FIFO
//! opens at once and is then refused), the file is checked with `fstat`, and at most
//! `limit + 1` bytes are read, so neither `/dev/zero` nor a huge file can grow strata.

use rustix::fs::{FileType, Mode, OFlags};
use std::fs::File;
use std::io::Read;
use std::path::Path;
use strata_cache::inroot::{Entry, Root};

/// BuildKit's limit for one secret (`MaxSecretSize`, 500 KiB).
pub const SECRET_LIMIT: u64 = 500 * 1024;
/// The largest Dockerfile strata reads.
pub const DOCKERFILE_LIMIT: u64 = 16 * 1024 * 1024;
/// The largest `.dockerignore` strata reads.
pub const DOCKERIGNORE_LIMIT: u64 = 4 * 1024 * 1024;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("it does not exist")]
    NotFound,
    #[error("it is a symbolic link leading out of the build context (or to nothing)")]
    LinkOutside,
    #[error("it is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("it is larger than the limit of {}", human(*limit))]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            ReadError::NotFound
        } else {
            ReadError::Io(e)
        }
    }
}

impl From<rustix::io::Errno> for ReadError {
    fn from(e: rustix::io::Errno) -> Self {
        std::io::Error::from(e).into()
    }
}

/// `500 KiB`, `16 MiB`: a limit as it is written in messages.
pub fn human(n: u64) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

fn kind_name(t: FileType) -> &'static str {
    match t {
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Symlink => "a symbolic link",
        _ => "not a regular file",
    }
}

/// Files are first opened as a path only (`O_PATH`): opening a device node or a FIFO for
/// reading already reaches its driver (a watchdog armed, a tape rewound) or blocks.
fn flags() -> OFlags {
    OFlags::PATH | OFlags::CLOEXEC
}

/// Refuses anything but a regular file (on what `e`, an `O_PATH` descriptor, names), then
/// opens that same file for reading.
fn regular(e: &Entry) -> Result<File, ReadError> {
    match e.file_type()? {
        FileType::RegularFile => Ok(e.open_read()?),
        t => Err(ReadError::NotRegular(kind_name(t))),
    }
}

/// A socket cannot be opened (`ENXIO`): say what it is.
fn explain_open_error(e: rustix::io::Errno, path: &Path) -> ReadError {
    if e == rustix::io::Errno::NXIO
        && let Ok(st) = rustix::fs::stat(path)
    {
        return ReadError::NotRegular(kind_name(FileType::from_raw_mode(st.st_mode)));
    }
    e.into()
}

/// Opens the user's own `path` (symlinks followed) as a regular file, without blocking.
pub fn open_regular(path: &Path) -> Result<File, ReadError> {
    let fd =
        rustix::fs::open(path, flags(), Mode::empty()).map_err(|e| explain_open_error(e, path))?;
    regular(&Entry::from_fd(fd))
}

/// Opens `name` inside the build context `root` as a regular file, every component
/// (symlinks, `..`) resolved inside `root` ([`open_regular_in`]).
pub fn open_in_context(root: &Root, name: &str) -> Result<File, ReadError> {
    open_regular_in(root, name)
}

/// Opens `path` inside `root` (a directory strata was handed: an OCI layout, an unpacked
/// archive, a cache directory) as a regular file. The path is resolved inside `root`
/// (symlinks and `..` never leave it) and held as `O_PATH`, which opens nothing; only once
/// that file is known to be a regular file is it opened for reading (through its descriptor,
/// so it is the same file), so a FIFO or a device is never opened at all. A symlink whose
/// target is not inside `root` is [`ReadError::LinkOutside`].
pub fn open_regular_in(root: &Root, path: impl AsRef<Path>) -> Result<File, ReadError> {
    let path = path.as_ref();
    let entry = root.resolve(path, true).map_err(|e| {
        if e.is_not_found()
            && root
                .resolve(path, false)
                .ok()
                .and_then(|l| l.metadata().ok())
                .is_some_and(|m| m.file_type().is_symlink())
        {
            ReadError::LinkOutside
        } else {
            ReadError::from(e.cause)
        }
    })?;
    regular(&entry)
}

/// Opens a directory to resolve names inside it.
pub fn open_dir(path: &Path) -> Result<Root, ReadError> {
    Root::open(path).map_err(|e| ReadError::from(e.cause))
}

/// Reads at most `limit` bytes; more is an error (at most `limit + 1` bytes are read).
pub fn read_limited(r: impl Read, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    r.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(out)
}

/// A regular file's contents, bounded: the file's size reserves the buffer up to the limit.
pub fn read_file(f: File, limit: u64) -> Result<Vec<u8>, ReadError> {
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut out = Vec::with_capacity(size.min(limit) as usize);
    (&f).take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(out)
}

/// A secret's value: a regular file (the user's path, followed; FIFOs, devices, directories
/// and sockets refused) or an environment variable, at most BuildKit's 500 KiB either way.
pub fn read_secret(id: &str, source: &SecretSource) -> Result<Vec<u8>, String> {
    match source {
        SecretSource::File(p) => open_regular(p)
            .and_then(|f| read_file(f, SECRET_LIMIT))
            .map_err(|e| format!("secret {id}: {}: {e}", p.display())),
        SecretSource::Env(v) => env_secret(id, v, std::env::var_os(v)),
    }
}

/// The value of the environment variable `var` for the secret `id`, if it is set and within
/// the limit.
fn env_secret(id: &str, var: &str, value: Option<std::ffi::OsString>) -> Result<Vec<u8>, String> {
    let value = value
        .ok_or_else(|| format!("secret {id}: the environment variable {var} is not set"))?
        .into_encoded_bytes();
    if value.len() as u64 > SECRET_LIMIT {
        return Err(format!(
            "secret {id}: the environment variable {var} is larger than the limit of {}",
            human(SECRET_LIMIT)
        ));
    }
    Ok(value)
}

/// Where a `--secret` comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    File(std::path::PathBuf),
    Env(String),
}

/// A writer into memory that refuses more than `limit` bytes in all (a document fetched
/// whole, read no further than its bound).
pub struct CappedWriter {
    out: Vec<u8>,
    limit: u64,
}

impl CappedWriter {
    pub fn new(limit: u64) -> CappedWriter {
        CappedWriter {
            out: Vec::new(),
            limit,
        }
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.out
    }
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if (self.out.len() + buf.len()) as u64 > self.limit {
            return Err(std::io::Error::other(format!(
                "larger than the limit of {}",
                human(self.limit)
            )));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_secret_over_500_kib_is_refused() {
        let big = std::ffi::OsString::from("x".repeat(SECRET_LIMIT as usize + 1));
        let e = env_secret("tok", "TOK", Some(big)).unwrap_err();
        assert_eq!(
            e,
            "secret tok: the environment variable TOK is larger than the limit of 500 KiB"
        );
        let max = std::ffi::OsString::from("x".repeat(SECRET_LIMIT as usize));
        assert_eq!(
            env_secret("tok", "TOK", Some(max)).unwrap().len(),
            500 * 1024
        );
        assert!(
            env_secret("tok", "TOK", None)
                .unwrap_err()
                .contains("is not set")
        );
    }

    #[test]
    fn dev_zero_is_refused_before_reading() {
        match open_regular(Path::new("/dev/zero")) {
            Err(ReadError::NotRegular(k)) => assert_eq!(k, "a character device"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(
            open_regular(&p),
            Err(ReadError::NotRegular("a FIFO"))
        ));
        let dir = open_dir(d.path()).unwrap();
        assert!(matches!(
            open_in_context(&dir, "fifo"),
            Err(ReadError::NotRegular("a FIFO"))
        ));
    }

    #[test]
    fn directories_and_sockets_are_refused() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            open_regular(d.path()),
            Err(ReadError::NotRegular("a directory"))
        ));
        let sock = d.path().join("sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(matches!(
            open_regular(&sock),
            Err(ReadError::NotRegular("a socket"))
        ));
    }

    #[test]
    fn reading_stops_one_byte_past_the_limit() {
        let mut src = std::io::repeat(0).take(u64::MAX);
        match read_limited(&mut src, 1000) {
            Err(ReadError::TooLarge { limit: 1000 }) => {}
            other => panic!("{other:?}"),
        }
        // limit + 1 bytes consumed, no more.
        assert_eq!(src.limit(), u64::MAX - 1001);
        assert_eq!(read_limited(&[7u8; 1000][..], 1000).unwrap().len(), 1000);
        assert_eq!(
            ReadError::TooLarge {
                limit: SECRET_LIMIT
            }
            .to_string(),
            "it is larger than the limit of 500 KiB"
        );
    }

    #[test]
    fn names_in_a_root_are_resolved_inside_and_never_opened_unless_regular() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("layout");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(d.path().join("outside"), "host").unwrap();
        std::fs::write(dir.join("index.json"), "{}").unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero")).unwrap();
        std::os::unix::fs::symlink("../outside", dir.join("out")).unwrap();
        std::os::unix::fs::symlink("/index.json", dir.join("abs")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let root = strata_cache::inroot::Root::open(&dir).unwrap();
        assert!(matches!(
            open_regular_in(&root, "fifo"),
            Err(ReadError::NotRegular("a FIFO"))
        ));
        assert!(matches!(
            open_regular_in(&root, "zero"),
            Err(ReadError::LinkOutside)
        ));
        assert!(matches!(
            open_regular_in(&root, "out"),
            Err(ReadError::LinkOutside)
        ));
        assert!(matches!(
            open_regular_in(&root, "missing"),
            Err(ReadError::NotFound)
        ));
        assert!(matches!(
            open_regular_in(&root, "."),
            Err(ReadError::NotRegular("a directory"))
        ));
        let f = open_regular_in(&root, "abs").unwrap();
        assert_eq!(read_file(f, 10).unwrap(), b"{}");
    }

    #[test]
    fn context_names_resolve_inside_the_context() {
        let d = tempfile::tempdir().unwrap();
        let ctx = d.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        std::fs::write(d.path().join("outside"), "secret").unwrap();
        std::fs::write(ctx.join("real"), "FROM x\n").unwrap();
        std::os::unix::fs::symlink("../outside", ctx.join("out")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", ctx.join("zero")).unwrap();
        std::os::unix::fs::symlink("real", ctx.join("in")).unwrap();
        let dir = open_dir(&ctx).unwrap();
        assert!(matches!(
            open_in_context(&dir, "out"),
            Err(ReadError::LinkOutside)
        ));
        assert!(matches!(
            open_in_context(&dir, "zero"),
            Err(ReadError::LinkOutside)
        ));
        assert!(matches!(
            open_in_context(&dir, "missing"),
            Err(ReadError::NotFound)
        ));
        let f = open_in_context(&dir, "in").unwrap();
        assert_eq!(read_file(f, 100).unwrap(), b"FROM x\n");
    }
}
