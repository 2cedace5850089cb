//! A snapshot directory as a layer tar.
//!
//! A snapshot holds a layer's diff the way overlayfs writes an upper directory: whiteouts are
//! 0/0 character devices and opaque directories carry `trusted.overlay.opaque=y`. As a tar they
//! become OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`). The tar is deterministic for a given
//! directory (entries sorted by name, hard links found by inode, no access times), so its digest
//! (the layer's diff ID) can be computed without keeping the tar, and the same bytes written
//! again whenever an exporter needs the blob.
//!
//! The tree may be live (a cache mount another build's step is changing), so it is walked
//! through descriptors, never by host paths built from its names: each directory is opened
//! below its parent's descriptor with `O_NOFOLLOW | O_DIRECTORY`, entries are stat'ed, opened
//! and read with `*at` calls that do not follow them, and a regular file is read only from a
//! descriptor whose `fstat` says it is one. A name that became a symlink is archived as the
//! symlink or refused, never followed out of the tree.

use crate::digest::Digest;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};
use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

#[derive(Debug, thiserror::Error)]
pub enum DiffTarError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DiffTarError + 'a {
    move |source| DiffTarError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// An error about `rel` below `dir` (the host path is only shown, never used).
fn rel_err(op: &'static str, dir: &Path, rel: &[u8], e: impl Into<io::Error>) -> DiffTarError {
    DiffTarError::Io {
        op,
        path: dir.join(OsStr::from_bytes(rel)),
        source: e.into(),
    }
}

/// How a snapshot is written as a tar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TarOptions {
    /// `SOURCE_DATE_EPOCH`: mtimes after it are written as it (as BuildKit's
    /// rewrite-timestamp does).
    pub clamp_mtime: Option<i64>,
    /// The tree may change while it is read (a cache mount a running step of another build
    /// uses): every file is opened as a path first and opened for reading only once `fstat`
    /// says it is a regular file, so a device node swapped in for a file is never opened.
    /// One more open per file; snapshots, which never change, do without.
    pub live: bool,
}

/// What [`write_diff_tar`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffStats {
    /// Entries in the directory (0: the layer changes nothing).
    pub entries: u64,
    /// Bytes of tar written.
    pub size: u64,
}

/// Counts what is written through it.
struct CountWriter<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for CountWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The diff ID (sha256 of the tar) of a snapshot directory, and its stats, without keeping the
/// tar.
pub fn diff_id(dir: &Path, opts: &TarOptions) -> Result<(Digest, DiffStats), DiffTarError> {
    let mut w = strata_oci::DigestWriter::new(io::sink());
    let stats = write_diff_tar(dir, &mut w, opts)?;
    Ok((w.finish().1, stats))
}

/// How a directory is opened for listing: never through a symlink.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// How a regular file is opened for reading: never through a symlink, and a FIFO or device
/// that took its name does not block the open.
const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// The fields of a `stat` the tar records.
#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    nlink: u64,
    dev: u64,
    ino: u64,
    size: u64,
    rdev: u64,
}

impl Meta {
    // The field types differ between architectures (u32 or u64 link counts, ...).
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    fn of(st: &rustix::fs::Stat) -> Meta {
        Meta {
            mode: st.st_mode as u32,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            mtime: st.st_mtime as i64,
            nlink: st.st_nlink as u64,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            rdev: st.st_rdev as u64,
        }
    }

    fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }
}

/// Opens the directory `name` below `parent` for listing. A symlink there (also one that
/// replaced a directory after it was listed) is refused (`ELOOP`/`ENOTDIR`), never followed.
fn open_dir_at(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())?)
}

/// Opens the regular file `name` below `dir` for reading, with its metadata from the open
/// descriptor. A symlink is refused, never followed; anything else that is not a regular file
/// (a directory, FIFO or device that took the name) is closed unread.
fn open_file_at(dir: BorrowedFd<'_>, name: &CStr, live: bool) -> io::Result<(File, Meta)> {
    if live {
        let path = crate::inroot::Entry::from_fd(rustix::fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?);
        let m = Meta::of(&rustix::fs::fstat(path.fd())?);
        if m.file_type() != FileType::RegularFile {
            return Err(io::Error::other("not a regular file"));
        }
        return Ok((path.open_read()?, m));
    }
    let fd = rustix::fs::openat(dir, name, FILE_FLAGS, Mode::empty())?;
    let m = Meta::of(&rustix::fs::fstat(&fd)?);
    if m.file_type() != FileType::RegularFile {
        return Err(io::Error::other("not a regular file"));
    }
    Ok((File::from(fd), m))
}

/// The names in the directory `fd` (without `.` and `..`), sorted by bytes, each with the type
/// the directory reports (`Unknown` on file systems that do not say). `buf` is reused.
fn list_dir(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> io::Result<Vec<(CString, FileType)>> {
    let mut names = Vec::new();
    let mut it = RawDir::new(fd, buf.spare_capacity_mut());
    while let Some(e) = it.next() {
        let e = e?;
        let name = e.file_name();
        if matches!(name.to_bytes(), b"." | b"..") {
            continue;
        }
        names.push((name.to_owned(), e.file_type()));
    }
    names.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(names)
}

/// The metadata of `name` below `dir`, not following it. A name listed as a regular file is
/// opened right away and stat'ed through its descriptor (the data then comes from the same
/// inode as the header); anything else, or a file that is no longer one, is stat'ed by name.
fn stat_entry(
    dir: BorrowedFd<'_>,
    name: &CStr,
    listed: FileType,
    live: bool,
) -> io::Result<(Meta, Option<File>)> {
    if listed == FileType::RegularFile
        && let Ok((f, m)) = open_file_at(dir, name, live)
    {
        return Ok((m, Some(f)));
    }
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok((Meta::of(&st), None))
}

/// A directory still to be listed: `name` below the (open) `parent`.
struct Pending {
    parent: Rc<OwnedFd>,
    name: CString,
    rel: Vec<u8>,
}

/// Writes the snapshot under `dir` as a layer tar to `out`: ustar headers, PAX records for
/// long or non-ASCII names and link targets and for extended attributes.
///
/// `dir` itself is a host path strata chose (not followed if it is a symlink); everything
/// below it is reached through descriptors (see the module's documentation). An entry that
/// changes type while it is read (a directory or file replaced by a symlink) is an error.
// Long: the walk, with one arm per file type (whiteouts, hard links, xattrs) writing its header.
pub fn write_diff_tar(
    dir: &Path,
    out: impl Write,
    opts: &TarOptions,
) -> Result<DiffStats, DiffTarError> {
    let root = rustix::fs::open(dir, DIR_FLAGS, Mode::empty())
        .map_err(|e| io_err("open", dir)(e.into()))?;
    let mut counter = CountWriter { inner: out, n: 0 };
    let mut b = tar::Builder::new(&mut counter);
    b.mode(tar::HeaderMode::Complete);
    b.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut entries = 0u64;
    // Reused: getdents buffer, entry path, /proc path for xattrs, symlink target.
    let mut dirbuf: Vec<u8> = Vec::with_capacity(32 * 1024);
    let mut path: Vec<u8> = Vec::new();
    let mut proc: Vec<u8> = Vec::new();
    let mut target: Vec<u8> = Vec::new();
    let mut stack: Vec<Pending> = Vec::new();
    let mut next = Some((root, Vec::new()));
    loop {
        let (fd, rel) = match next.take() {
            Some(d) => d,
            None => match stack.pop() {
                None => break,
                Some(p) => {
                    let fd = open_dir_at(p.parent.as_fd(), &p.name)
                        .map_err(|e| rel_err("open directory", dir, &p.rel, e))?;
                    (fd, p.rel)
                }
            },
        };
        let names = list_dir(fd.as_fd(), &mut dirbuf).map_err(|e| rel_err("list", dir, &rel, e))?;
        proc.clear();
        write!(proc, "/proc/self/fd/{}/", fd.as_raw_fd()).expect("write to a Vec");
        let proc_base = proc.len();
        let mut subdirs: Vec<(CString, Vec<u8>)> = Vec::new();
        for (name, listed) in names {
            // Names are bytes: nothing is lost to UTF-8 conversion.
            path.clear();
            path.extend_from_slice(&rel);
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name.as_bytes());
            // For xattrs of entries not opened: `/proc/self/fd/N/name`, read with the
            // l* calls (the last component is not followed).
            proc.truncate(proc_base);
            proc.extend_from_slice(name.as_bytes());
            let by_name = XattrsOf::Path(Path::new(OsStr::from_bytes(&proc)));
            let (m, file) = stat_entry(fd.as_fd(), &name, listed, opts.live)
                .map_err(|e| rel_err("stat", dir, &path, e))?;
            entries += 1;
            let ft = m.file_type();
            let mtime = match opts.clamp_mtime {
                Some(e) => m.mtime.min(e),
                None => m.mtime,
            }
            .max(0) as u64;
            let mut h = tar::Header::new_ustar();
            h.set_mode(m.mode & 0o7777);
            h.set_uid(m.uid as u64);
            h.set_gid(m.gid as u64);
            h.set_mtime(mtime);
            h.set_size(0);
            let w = |e: io::Error| rel_err("write", dir, &path, e);
            if ft == FileType::CharacterDevice && m.rdev == 0 {
                // An overlay whiteout.
                let cut = path.iter().rposition(|c| *c == b'/').map_or(0, |i| i + 1);
                let mut wh = path[..cut].to_vec();
                wh.extend_from_slice(b".wh.");
                wh.extend_from_slice(&path[cut..]);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_uid(0);
                h.set_gid(0);
                append(&mut b, &mut h, &wh, None, vec![], io::empty()).map_err(w)?;
                continue;
            }
            match ft {
                FileType::Directory => {
                    let (xattrs, opaque) = xattrs_of(by_name);
                    h.set_entry_type(tar::EntryType::Directory);
                    let mut dname = path.clone();
                    dname.push(b'/');
                    append(&mut b, &mut h, &dname, None, xattrs, io::empty()).map_err(w)?;
                    if opaque {
                        let mut o = tar::Header::new_ustar();
                        o.set_entry_type(tar::EntryType::Regular);
                        o.set_mode(0o644);
                        o.set_uid(0);
                        o.set_gid(0);
                        o.set_size(0);
                        o.set_mtime(mtime);
                        let mut name = path.clone();
                        name.extend_from_slice(b"/.wh..wh..opq");
                        append(&mut b, &mut o, &name, None, vec![], io::empty()).map_err(w)?;
                    }
                    subdirs.push((name, path.clone()));
                }
                FileType::Symlink => {
                    let t = rustix::fs::readlinkat(fd.as_fd(), &name, std::mem::take(&mut target))
                        .map_err(|e| rel_err("readlink", dir, &path, e))?;
                    target = t.into_bytes();
                    let (xattrs, _) = xattrs_of(by_name);
                    h.set_entry_type(tar::EntryType::Symlink);
                    append(&mut b, &mut h, &path, Some(&target), xattrs, io::empty()).map_err(w)?;
                }
                FileType::RegularFile => {
                    if m.nlink > 1 {
                        if let Some(first) = links.get(&(m.dev, m.ino)) {
                            let (xattrs, _) =
                                xattrs_of(file.as_ref().map_or(by_name, XattrsOf::File));
                            h.set_entry_type(tar::EntryType::Link);
                            append(&mut b, &mut h, &path, Some(first), xattrs, io::empty())
                                .map_err(w)?;
                            continue;
                        }
                        links.insert((m.dev, m.ino), path.clone());
                    }
                    let f = match file {
                        Some(f) => f,
                        None => {
                            // Stat'ed by name: open it, and read it only if it is still the
                            // file the header describes.
                            let (f, now) = open_file_at(fd.as_fd(), &name, opts.live)
                                .map_err(|e| rel_err("open", dir, &path, e))?;
                            if (now.dev, now.ino) != (m.dev, m.ino) {
                                return Err(rel_err(
                                    "open",
                                    dir,
                                    &path,
                                    io::Error::other("replaced while the tree was read"),
                                ));
                            }
                            f
                        }
                    };
                    let (xattrs, _) = xattrs_of(XattrsOf::File(&f));
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(m.size);
                    // Exactly the size the header announced, even if the file changes meanwhile.
                    let mut data = io::Read::chain(io::Read::take(f, m.size), io::repeat(0));
                    append(
                        &mut b,
                        &mut h,
                        &path,
                        None,
                        xattrs,
                        io::Read::take(&mut data, m.size),
                    )
                    .map_err(w)?;
                }
                FileType::CharacterDevice | FileType::BlockDevice => {
                    let (xattrs, _) = xattrs_of(by_name);
                    h.set_entry_type(if ft == FileType::CharacterDevice {
                        tar::EntryType::Char
                    } else {
                        tar::EntryType::Block
                    });
                    h.set_device_major(rustix::fs::major(m.rdev)).map_err(w)?;
                    h.set_device_minor(rustix::fs::minor(m.rdev)).map_err(w)?;
                    append(&mut b, &mut h, &path, None, xattrs, io::empty()).map_err(w)?;
                }
                FileType::Fifo => {
                    let (xattrs, _) = xattrs_of(by_name);
                    h.set_entry_type(tar::EntryType::Fifo);
                    append(&mut b, &mut h, &path, None, xattrs, io::empty()).map_err(w)?;
                }
                // Sockets are not archived (as in Docker).
                _ => {}
            }
        }
        if !subdirs.is_empty() {
            let parent = Rc::new(fd);
            for (name, rel) in subdirs.into_iter().rev() {
                stack.push(Pending {
                    parent: parent.clone(),
                    name,
                    rel,
                });
            }
        }
    }
    b.finish().map_err(io_err("write", dir))?;
    drop(b);
    Ok(DiffStats {
        entries,
        size: counter.n,
    })
}

/// Where an entry's extended attributes are read: its open descriptor, or
/// `/proc/self/fd/N/name` (N its directory) without following the last component.
#[derive(Clone, Copy)]
enum XattrsOf<'a> {
    File(&'a File),
    Path(&'a Path),
}

/// Extended attributes other than overlay's own, as PAX records (sorted), and whether
/// Whether a layer, a copy or a copied snapshot carries the xattr `name`: all but overlayfs's
/// own (`trusted.overlay.*`: opaque markers and redirects belong to the directory they are
/// on, never to its content elsewhere). The one rule for layers (here), file ops and the
/// copying snapshotter.
pub fn carried_xattr(name: &str) -> bool {
    !name.starts_with("trusted.overlay.")
}

/// `trusted.overlay.opaque` is `y`.
fn xattrs_of(of: XattrsOf<'_>) -> (Vec<(String, Vec<u8>)>, bool) {
    use xattr::FileExt;
    let names = match of {
        XattrsOf::File(f) => f.list_xattr(),
        XattrsOf::Path(p) => xattr::list(p),
    };
    let Ok(names) = names else {
        return (vec![], false);
    };
    let get = |n: &OsStr| match of {
        XattrsOf::File(f) => f.get_xattr(n),
        XattrsOf::Path(p) => xattr::get(p, n),
    };
    let mut recs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut opaque = false;
    for n in names {
        if n == "trusted.overlay.opaque" {
            opaque = get(&n).ok().flatten().is_some_and(|v| v == b"y");
            continue;
        }
        let n = n.to_string_lossy().into_owned();
        if !carried_xattr(&n) {
            continue;
        }
        if let Ok(Some(v)) = get(OsStr::new(&n)) {
            recs.push((format!("SCHILY.xattr.{n}"), v));
        }
    }
    recs.sort();
    (recs, opaque)
}

/// Appends one entry: a PAX header first when the name or link target does not fit ustar's
/// 100 bytes or is not ASCII, or there are extended attributes; the ustar fields then hold the
/// names cut to fit.
fn append<W: Write>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    path: &[u8],
    link: Option<&[u8]>,
    mut pax: Vec<(String, Vec<u8>)>,
    data: impl io::Read,
) -> io::Result<()> {
    let long = |v: &[u8]| v.len() > 100 || !v.is_ascii();
    if let Some(l) = link
        && long(l)
    {
        pax.insert(0, ("linkpath".into(), l.to_vec()));
    }
    if long(path) {
        pax.insert(0, ("path".into(), path.to_vec()));
    }
    if !pax.is_empty() {
        b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
    }
    let u = h
        .as_ustar_mut()
        .ok_or_else(|| io::Error::other("not a ustar header"))?;
    let n = path.len().min(100);
    u.name = [0; 100];
    u.name[..n].copy_from_slice(&path[..n]);
    if let Some(l) = link {
        let n = l.len().min(100);
        u.linkname = [0; 100];
        u.linkname[..n].copy_from_slice(&l[..n]);
    }
    h.set_cksum();
    b.append(h, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::RecordingFs;
    use crate::unpack::{UnpackOptions, Whiteouts, unpack_new};

    #[test]
    fn deterministic_and_roundtrips() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::fs::write(src.join("a/b/f"), "hello").unwrap();
        std::fs::hard_link(src.join("a/b/f"), src.join("a/g")).unwrap();
        std::os::unix::fs::symlink("b/f", src.join("a/l")).unwrap();
        let long = "x".repeat(150);
        std::fs::write(src.join(&long), "long name").unwrap();
        let (d1, s1) = diff_id(&src, &TarOptions::default()).unwrap();
        let (d2, _) = diff_id(&src, &TarOptions::default()).unwrap();
        assert_eq!(d1, d2);
        assert_eq!(s1.entries, 6);
        let mut buf = Vec::new();
        let s3 = write_diff_tar(&src, &mut buf, &TarOptions::default()).unwrap();
        assert_eq!(s3.size, buf.len() as u64);
        assert_eq!(Digest::of(&buf), d1);
        let out = d.path().join("out");
        let opts = UnpackOptions {
            whiteouts: Whiteouts::Apply,
            ..UnpackOptions::default()
        };
        unpack_new(&buf[..], &out, &RecordingFs::default(), &opts).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("a/g")).unwrap(), "hello");
        assert_eq!(
            std::fs::read_link(out.join("a/l")).unwrap(),
            Path::new("b/f")
        );
        assert_eq!(
            std::fs::read_to_string(out.join(&long)).unwrap(),
            "long name"
        );
    }

    #[test]
    fn content_changes_the_diff_id_and_empty_has_no_entries() {
        let d = tempfile::tempdir().unwrap();
        let (_, s) = diff_id(d.path(), &TarOptions::default()).unwrap();
        assert_eq!(s.entries, 0);
        std::fs::write(d.path().join("f"), "1").unwrap();
        let (a, _) = diff_id(d.path(), &TarOptions::default()).unwrap();
        std::fs::write(d.path().join("f"), "2").unwrap();
        let (b, _) = diff_id(d.path(), &TarOptions::default()).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn whiteouts_names_and_clamped_times() {
        use std::os::unix::ffi::OsStrExt;
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("opq")).unwrap();
        xattr::set(src.join("opq"), "trusted.overlay.opaque", b"y").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.join("gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        let odd = std::ffi::OsStr::from_bytes(b"caf\xc3\xa9 \xff name");
        std::fs::write(src.join(odd), "x").unwrap();
        std::os::unix::fs::symlink("t".repeat(120), src.join("long-link")).unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(src.join(odd))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000_000))
            .unwrap();
        let mut buf = Vec::new();
        let opts = TarOptions {
            clamp_mtime: Some(1_000_000_000),
            ..Default::default()
        };
        write_diff_tar(&src, &mut buf, &opts).unwrap();
        let mut a = tar::Archive::new(&buf[..]);
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let p = e.path_bytes().into_owned();
            let mtime = e.header().mtime().unwrap();
            let link = e.link_name_bytes().map(|l| l.into_owned());
            seen.push((p, mtime, link));
        }
        let names: Vec<&[u8]> = seen.iter().map(|s| s.0.as_slice()).collect();
        assert_eq!(
            names,
            vec![
                &b"caf\xc3\xa9 \xff name"[..],
                b".wh.gone",
                b"long-link",
                b"opq/",
                b"opq/.wh..wh..opq"
            ]
        );
        assert_eq!(seen[0].1, 1_000_000_000, "clamped to the epoch");
        assert_eq!(seen[2].2.as_deref(), Some("t".repeat(120).as_bytes()));
        // PAX, not GNU long-name records.
        assert!(buf.windows(8).any(|w| w == b"linkpath"));
        assert!(!buf.windows(13).any(|w| w == b"././@LongLink"));
    }

    /// A canary directory outside the tree, with a file whose name and content must never
    /// appear in a tar of the tree.
    fn canary(d: &Path) -> PathBuf {
        let c = d.join("outside");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("canary-secret-name"), "canary-secret-content").unwrap();
        c
    }

    fn leaks(tar: &[u8]) -> bool {
        tar.windows(18).any(|w| w == b"canary-secret-name")
            || tar.windows(21).any(|w| w == b"canary-secret-content")
    }

    #[test]
    fn symlink_to_an_outside_directory_is_archived_as_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let outside = canary(d.path());
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::os::unix::fs::symlink(&outside, src.join("sub/link")).unwrap();
        std::os::unix::fs::symlink(outside.join("canary-secret-name"), src.join("flink")).unwrap();
        let mut buf = Vec::new();
        let s = write_diff_tar(&src, &mut buf, &TarOptions::default()).unwrap();
        assert_eq!(s.entries, 3);
        assert!(!buf.windows(21).any(|w| w == b"canary-secret-content"));
        let mut a = tar::Archive::new(&buf[..]);
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let link = e.link_name_bytes().map(|l| l.into_owned());
            seen.push((e.path_bytes().into_owned(), e.header().entry_type(), link));
        }
        assert_eq!(
            seen,
            vec![
                (
                    b"flink".to_vec(),
                    tar::EntryType::Symlink,
                    Some(
                        outside
                            .join("canary-secret-name")
                            .as_os_str()
                            .as_bytes()
                            .to_vec()
                    )
                ),
                (b"sub/".to_vec(), tar::EntryType::Directory, None),
                (
                    b"sub/link".to_vec(),
                    tar::EntryType::Symlink,
                    Some(outside.as_os_str().as_bytes().to_vec())
                ),
            ]
        );
    }

    #[test]
    fn a_directory_replaced_by_a_symlink_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let outside = canary(d.path());
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("x")).unwrap();
        let root = rustix::fs::open(&src, DIR_FLAGS, Mode::empty()).unwrap();
        // Listed as a directory, then swapped for a symlink before it is opened.
        assert!(open_dir_at(root.as_fd(), c"x").is_ok());
        std::fs::remove_dir(src.join("x")).unwrap();
        std::os::unix::fs::symlink(&outside, src.join("x")).unwrap();
        let e = open_dir_at(root.as_fd(), c"x").unwrap_err();
        assert!(
            matches!(e.raw_os_error(), Some(40) | Some(20)),
            "ELOOP or ENOTDIR: {e}"
        );
        // A file replaced by a symlink to an outside file, or by a FIFO, is not read (and
        // the FIFO's open does not block).
        std::fs::write(src.join("f"), "inside").unwrap();
        assert!(open_file_at(root.as_fd(), c"f", false).is_ok());
        std::fs::remove_file(src.join("f")).unwrap();
        std::os::unix::fs::symlink(outside.join("canary-secret-name"), src.join("f")).unwrap();
        assert!(open_file_at(root.as_fd(), c"f", false).is_err());
        std::fs::remove_file(src.join("f")).unwrap();
        rustix::fs::mknodat(
            root.as_fd(),
            c"f",
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert!(open_file_at(root.as_fd(), c"f", false).is_err());
        // Listed as a regular file: the symlink or FIFO is stat'ed, not opened.
        std::fs::remove_file(src.join("f")).unwrap();
        std::os::unix::fs::symlink(outside.join("canary-secret-name"), src.join("f")).unwrap();
        let (m, f) = stat_entry(root.as_fd(), c"f", FileType::RegularFile, false).unwrap();
        assert_eq!(m.file_type(), FileType::Symlink);
        assert!(f.is_none());
        // The root itself is not followed either.
        std::os::unix::fs::symlink(&outside, d.path().join("rootlink")).unwrap();
        assert!(
            write_diff_tar(
                &d.path().join("rootlink"),
                io::sink(),
                &TarOptions::default()
            )
            .is_err()
        );
    }

    /// Another process swaps a directory and a symlink to a host directory back and forth
    /// (`RENAME_EXCHANGE`) while the tree is archived: every walk either fails or writes a
    /// tar without the outside directory's files.
    #[test]
    fn racing_directory_symlink_swaps_never_leak_outside_files() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        /// Stops the swapping thread also when an assertion fails.
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let d = tempfile::tempdir().unwrap();
        let outside = canary(d.path());
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("a/dir")).unwrap();
        for i in 0..20 {
            std::fs::write(src.join(format!("a/dir/f{i}")), "inside").unwrap();
        }
        std::os::unix::fs::symlink(&outside, src.join("a/link")).unwrap();
        let stop = AtomicBool::new(false);
        let swaps = AtomicU64::new(0);
        let (mut ok, mut failed) = (0, 0);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..10_000_000u64 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        src.join("a/dir"),
                        rustix::fs::CWD,
                        src.join("a/link"),
                        rustix::fs::RenameFlags::EXCHANGE,
                    )
                    .unwrap();
                    swaps.fetch_add(1, Ordering::Relaxed);
                    // Varying pauses: some walks see a state held still for a while.
                    for _ in 0..i % 200 {
                        std::thread::yield_now();
                    }
                }
            });
            let _stop = Stop(&stop);
            while swaps.load(Ordering::Relaxed) == 0 {
                std::thread::yield_now();
            }
            for _ in 0..50 {
                let mut buf = Vec::new();
                match write_diff_tar(&src, &mut buf, &TarOptions::default()) {
                    Ok(_) => {
                        assert!(!leaks(&buf), "a file outside the tree was archived");
                        ok += 1;
                    }
                    Err(_) => failed += 1,
                }
            }
        });
        assert_eq!(ok + failed, 50);
    }

    #[test]
    fn a_live_tree_is_written_the_same_and_never_opens_what_is_not_a_file() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::fs::write(src.join("a/b/f"), "data").unwrap();
        std::fs::write(src.join("g"), "more").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("l")).unwrap();
        let (mut plain, mut live) = (Vec::new(), Vec::new());
        write_diff_tar(&src, &mut plain, &TarOptions::default()).unwrap();
        let opts = TarOptions {
            live: true,
            ..Default::default()
        };
        write_diff_tar(&src, &mut live, &opts).unwrap();
        assert_eq!(plain, live);
        // What is not a regular file is refused without being opened for reading.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let root = rustix::fs::open(&src, DIR_FLAGS, Mode::empty()).unwrap();
        assert!(open_file_at(root.as_fd(), c"fifo", true).is_err());
        assert!(open_file_at(root.as_fd(), c"l", true).is_err());
        assert!(open_file_at(root.as_fd(), c"g", true).is_ok());
    }
}
