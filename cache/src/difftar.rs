//! A snapshot directory as a layer tar.
//!
//! A snapshot holds a layer's diff the way overlayfs writes an upper directory: whiteouts are
//! 0/0 character devices and opaque directories carry `trusted.overlay.opaque=y`. As a tar they
//! become OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`). The tar is deterministic for a given
//! directory (entries sorted by name, hard links found by inode, no access times), so its digest
//! (the layer's diff ID) can be computed without keeping the tar, and the same bytes written
//! again whenever an exporter needs the blob.

use crate::digest::Digest;
use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

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

/// How a snapshot is written as a tar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TarOptions {
    /// `SOURCE_DATE_EPOCH`: mtimes after it are written as it (as BuildKit's
    /// rewrite-timestamp does).
    pub clamp_mtime: Option<i64>,
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
    let mut w = crate::images::HashWriter::new(io::sink());
    let stats = write_diff_tar(dir, &mut w, opts)?;
    Ok((w.finish().1, stats))
}

/// Writes the snapshot under `dir` as a layer tar to `out`: ustar headers, PAX records for
/// long or non-ASCII names and link targets and for extended attributes.
pub fn write_diff_tar(
    dir: &Path,
    out: impl Write,
    opts: &TarOptions,
) -> Result<DiffStats, DiffTarError> {
    let mut counter = CountWriter { inner: out, n: 0 };
    let mut b = tar::Builder::new(&mut counter);
    b.mode(tar::HeaderMode::Complete);
    b.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut entries = 0u64;
    let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(dir.to_path_buf(), Vec::new())];
    while let Some((d, rel)) = stack.pop() {
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(&d)
            .map_err(io_err("list", &d))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err("list", &d))?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let abs = d.join(&name);
            // Names are bytes: nothing is lost to UTF-8 conversion.
            let mut path = rel.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name.as_bytes());
            let m = std::fs::symlink_metadata(&abs).map_err(io_err("stat", &abs))?;
            entries += 1;
            let ft = m.file_type();
            let mtime = match opts.clamp_mtime {
                Some(e) => m.mtime().min(e),
                None => m.mtime(),
            }
            .max(0) as u64;
            let mut h = tar::Header::new_ustar();
            h.set_mode(m.mode() & 0o7777);
            h.set_uid(m.uid() as u64);
            h.set_gid(m.gid() as u64);
            h.set_mtime(mtime);
            h.set_size(0);
            let w = |e: io::Error| DiffTarError::Io {
                op: "write",
                path: abs.clone(),
                source: e,
            };
            if ft.is_char_device() && m.rdev() == 0 {
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
            let xattrs = xattrs_of(&abs);
            if ft.is_dir() {
                h.set_entry_type(tar::EntryType::Directory);
                let mut dname = path.clone();
                dname.push(b'/');
                append(&mut b, &mut h, &dname, None, xattrs, io::empty()).map_err(w)?;
                let opaque = xattr::get(&abs, "trusted.overlay.opaque")
                    .ok()
                    .flatten()
                    .is_some_and(|v| v == b"y");
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
                subdirs.push((abs, path));
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&abs).map_err(io_err("readlink", &abs))?;
                h.set_entry_type(tar::EntryType::Symlink);
                append(
                    &mut b,
                    &mut h,
                    &path,
                    Some(target.as_os_str().as_bytes()),
                    xattrs,
                    io::empty(),
                )
                .map_err(w)?;
            } else if ft.is_file() {
                if m.nlink() > 1 {
                    if let Some(first) = links.get(&(m.dev(), m.ino())) {
                        h.set_entry_type(tar::EntryType::Link);
                        append(
                            &mut b,
                            &mut h,
                            &path,
                            Some(first.as_slice()),
                            xattrs,
                            io::empty(),
                        )
                        .map_err(w)?;
                        continue;
                    }
                    links.insert((m.dev(), m.ino()), path.clone());
                }
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(m.len());
                let f = std::fs::File::open(&abs).map_err(io_err("open", &abs))?;
                // Exactly the size the header announced, even if the file changes meanwhile.
                let mut data = io::Read::chain(io::Read::take(f, m.len()), io::repeat(0));
                append(
                    &mut b,
                    &mut h,
                    &path,
                    None,
                    xattrs,
                    io::Read::take(&mut data, m.len()),
                )
                .map_err(w)?;
            } else if ft.is_char_device() || ft.is_block_device() {
                h.set_entry_type(if ft.is_char_device() {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                let dev = m.rdev();
                h.set_device_major(rustix::fs::major(dev)).map_err(w)?;
                h.set_device_minor(rustix::fs::minor(dev)).map_err(w)?;
                append(&mut b, &mut h, &path, None, xattrs, io::empty()).map_err(w)?;
            } else if ft.is_fifo() {
                h.set_entry_type(tar::EntryType::Fifo);
                append(&mut b, &mut h, &path, None, xattrs, io::empty()).map_err(w)?;
            }
            // Sockets are not archived (as in Docker).
        }
        for s in subdirs.into_iter().rev() {
            stack.push(s);
        }
    }
    b.finish().map_err(io_err("write", dir))?;
    drop(b);
    Ok(DiffStats {
        entries,
        size: counter.n,
    })
}

/// Extended attributes other than overlay's own, as PAX records (sorted).
fn xattrs_of(abs: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(names) = xattr::list(abs) else {
        return vec![];
    };
    let mut recs: Vec<(String, Vec<u8>)> = Vec::new();
    for n in names {
        let n = n.to_string_lossy().into_owned();
        if n.starts_with("trusted.overlay.") {
            continue;
        }
        if let Ok(Some(v)) = xattr::get(abs, &n) {
            recs.push((format!("SCHILY.xattr.{n}"), v));
        }
    }
    recs.sort();
    recs
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
}
