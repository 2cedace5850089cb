//! Unpacking tests: hostile archives stay inside, ownership, devices and whiteouts.

use super::*;
use crate::sys::{FsCall, RealFs, RecordingFs};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// One tar entry for a test archive. Names are written raw, so hostile paths survive.
struct E {
    name: &'static [u8],
    kind: tar::EntryType,
    mode: u32,
    data: &'static [u8],
    link: &'static [u8],
    xattrs: Vec<(&'static str, &'static [u8])>,
    uid: u64,
}

fn e(name: &'static [u8], kind: tar::EntryType) -> E {
    E {
        name,
        kind,
        mode: if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        },
        data: b"",
        link: b"",
        xattrs: vec![],
        uid: 0,
    }
}

fn file(name: &'static [u8], data: &'static [u8]) -> E {
    E {
        data,
        ..e(name, tar::EntryType::Regular)
    }
}
fn dir(name: &'static [u8]) -> E {
    e(name, tar::EntryType::Directory)
}
fn symlink(name: &'static [u8], target: &'static [u8]) -> E {
    E {
        link: target,
        ..e(name, tar::EntryType::Symlink)
    }
}
fn hardlink(name: &'static [u8], target: &'static [u8]) -> E {
    E {
        link: target,
        ..e(name, tar::EntryType::Link)
    }
}

fn tar_of(entries: Vec<E>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for x in entries {
        if !x.xattrs.is_empty() {
            let pax: Vec<(String, &[u8])> = x
                .xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
                .collect();
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), *v)))
                .unwrap();
        }
        let mut h = tar::Header::new_gnu();
        {
            let g = h.as_gnu_mut().unwrap();
            g.name[..x.name.len()].copy_from_slice(x.name);
            g.linkname[..x.link.len()].copy_from_slice(x.link);
        }
        h.set_entry_type(x.kind);
        h.set_mode(x.mode);
        h.set_size(x.data.len() as u64);
        h.set_uid(x.uid);
        h.set_gid(x.uid);
        h.set_mtime(1_000_000_000);
        h.set_cksum();
        b.append(&h, x.data).unwrap();
    }
    b.into_inner().unwrap()
}

fn unpack_with(
    fs: &dyn FsOps,
    entries: Vec<E>,
    whiteouts: Whiteouts,
) -> (tempfile::TempDir, Result<UnpackStats, UnpackError>) {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("layer");
    std::fs::create_dir(&dest).unwrap();
    let opts = UnpackOptions {
        whiteouts,
        ..UnpackOptions::default()
    };
    let r = unpack(&tar_of(entries)[..], &dest, fs, &opts);
    (dir, r)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn files_dirs_links_modes_and_times() {
    let fs = RecordingFs::default();
    let mut suid = file(b"bin/tool", b"#!/bin/sh\n");
    suid.mode = 0o4755;
    let mut sticky = dir(b"tmp/");
    sticky.mode = 0o1777;
    let mut cap = file(b"bin/ping", b"elf");
    cap.xattrs = vec![("security.capability", b"\x01\x00\x00\x02")];
    cap.uid = 1000;
    let (d, r) = unpack_with(
        &fs,
        vec![
            dir(b"./"),
            dir(b"bin/"),
            suid,
            sticky,
            cap,
            symlink(b"bin/sh", b"busybox"),
            hardlink(b"bin/tool2", b"bin/tool"),
            e(b"run/fifo", tar::EntryType::Fifo),
        ],
        Whiteouts::Overlay,
    );
    let stats = r.unwrap();
    assert_eq!(stats.entries, 8);
    let root = d.path().join("layer");
    assert_eq!(
        std::fs::read(root.join("bin/tool")).unwrap(),
        b"#!/bin/sh\n"
    );
    assert_eq!(
        std::fs::metadata(root.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
    assert_eq!(
        std::fs::metadata(root.join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        std::fs::metadata(root.join("bin/tool2")).unwrap().ino(),
        std::fs::metadata(root.join("bin/tool")).unwrap().ino()
    );
    assert_eq!(
        std::fs::metadata(root.join("bin/tool")).unwrap().mtime(),
        1_000_000_000
    );
    assert_eq!(
        std::fs::metadata(root.join("bin")).unwrap().mtime(),
        1_000_000_000,
        "directory times are set last"
    );
    let calls = fs.calls();
    let rootstr = root.to_string_lossy().to_string();
    assert!(
        calls.contains(&FsCall::SetXattr {
            name: format!("{rootstr}/bin/ping"),
            key: "security.capability".into(),
            value: b"\x01\x00\x00\x02".to_vec()
        }),
        "{calls:?}"
    );
    assert!(calls.contains(&FsCall::Chown {
        name: format!("{rootstr}/bin/ping"),
        uid: 1000,
        gid: 1000
    }));
    assert!(
        calls
            .iter()
            .any(|c| matches!(c, FsCall::Mknod { kind: "fifo", .. }))
    );
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let fs = RecordingFs::default();
    let (d, r) = unpack_with(
        &fs,
        vec![
            dir(b"etc/"),
            file(b"etc/.wh.old.conf", b""),
            file(b"var/cache/.wh..wh..opq", b""),
        ],
        Whiteouts::Overlay,
    );
    r.unwrap();
    let root = d.path().join("layer").to_string_lossy().to_string();
    let calls = fs.calls();
    assert!(
        calls.contains(&FsCall::Mknod {
            name: format!("{root}/etc/old.conf"),
            kind: "char",
            mode: 0,
            dev: 0
        }),
        "{calls:?}"
    );
    assert!(
        calls.contains(&FsCall::SetXattr {
            name: format!("{root}/var/cache"),
            key: "trusted.overlay.opaque".into(),
            value: b"y".to_vec()
        }),
        "{calls:?}"
    );
    assert!(!Path::new(&root).join("etc/.wh.old.conf").exists());
}

#[test]
fn whiteouts_applied_directly() {
    let fs = RecordingFs::default();
    let (d, r) = unpack_with(
        &fs,
        vec![
            file(b"a/keep", b"1"),
            file(b"a/gone", b"2"),
            file(b"b/x", b"3"),
            file(b"a/.wh.gone", b""),
            file(b"b/.wh..wh..opq", b""),
            file(b"b/new", b"4"),
        ],
        Whiteouts::Apply,
    );
    r.unwrap();
    let root = d.path().join("layer");
    assert!(root.join("a/keep").exists());
    assert!(!root.join("a/gone").exists());
    assert!(!root.join("b/x").exists());
    assert!(root.join("b/new").exists());
}

#[test]
fn escapes_are_rejected_or_contained() {
    // `..` above the root: rejected.
    let fs = RecordingFs::default();
    let (d, r) = unpack_with(&fs, vec![file(b"../evil", b"x")], Whiteouts::Overlay);
    assert!(
        matches!(&r, Err(UnpackError::Rejected { reason, .. }) if reason.contains("climbs above")),
        "{r:?}"
    );
    assert!(!d.path().join("evil").exists());
    // Absolute paths, symlinks to / and directories replaced by symlinks: contained.
    let (d, r) = unpack_with(
        &fs,
        vec![
            file(b"/abs", b"1"),
            symlink(b"up", b"../../../.."),
            file(b"up/through-up", b"2"),
            symlink(b"root", b"/"),
            file(b"root/through-root", b"3"),
            dir(b"d/"),
            symlink(b"d", b"/tmp"),
            file(b"d/through-d", b"4"),
            file(b"a/../b/normalized", b"5"),
        ],
        Whiteouts::Overlay,
    );
    r.unwrap();
    let root = d.path().join("layer");
    for p in [
        "abs",
        "through-up",
        "through-root",
        "tmp/through-d",
        "b/normalized",
    ] {
        assert!(root.join(p).is_file(), "{p} should be inside the layer");
    }
    assert!(!d.path().join("through-up").exists());
    assert!(!Path::new("/through-root").exists());
    assert!(!Path::new("/tmp/through-d").exists());
}

#[test]
fn hostile_hardlinks_and_xattrs_are_rejected() {
    let fs = RecordingFs::default();
    let (_d, r) = unpack_with(
        &fs,
        vec![hardlink(b"passwd", b"/etc/passwd")],
        Whiteouts::Overlay,
    );
    assert!(
        matches!(&r, Err(UnpackError::Rejected { reason, .. }) if reason.contains("not in the layer")),
        "{r:?}"
    );
    let (_d, r) = unpack_with(
        &fs,
        vec![hardlink(b"x", b"../../../etc/passwd")],
        Whiteouts::Overlay,
    );
    assert!(matches!(&r, Err(UnpackError::Rejected { .. })), "{r:?}");
    let mut bad = dir(b"d/");
    bad.xattrs = vec![("trusted.overlay.redirect", b"/etc")];
    let (_d, r) = unpack_with(&fs, vec![bad], Whiteouts::Overlay);
    assert!(
        matches!(&r, Err(UnpackError::Rejected { reason, .. }) if reason.contains("trusted.overlay")),
        "{r:?}"
    );
}

#[test]
fn failed_unpacks_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("snap");
    let fs = RecordingFs::default();
    let archive = tar_of(vec![file(b"ok", b"fine"), file(b"../../evil", b"x")]);
    assert!(unpack_new(&archive[..], &dest, &fs, &UnpackOptions::default()).is_err());
    assert!(!dest.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no temporary directory left"
    );
    // A bomb beyond the limit is refused the same way.
    let big = tar_of(vec![file(b"a", b"0123456789"), file(b"b", b"0123456789")]);
    let opts = UnpackOptions {
        max_bytes: 15,
        ..UnpackOptions::default()
    };
    assert!(matches!(
        unpack_new(&big[..], &dest, &fs, &opts),
        Err(UnpackError::TooLarge { limit: 15 })
    ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // A truncated archive is an error, not a half layer.
    let t = tar_of(vec![file(b"a", b"0123456789")]);
    assert!(unpack_new(&t[..600], &dest, &fs, &UnpackOptions::default()).is_err());
    assert!(!dest.exists());
}

#[test]
fn compressed_layers() {
    use std::io::Write;
    let plain = tar_of(vec![file(b"hello", b"world")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    for (name, data) in [("plain", plain.clone()), ("gzip", gz), ("zstd", zst)] {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("l");
        unpack_new(
            &data[..],
            &dest,
            &RecordingFs::default(),
            &UnpackOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            std::fs::read(dest.join("hello")).unwrap(),
            b"world",
            "{name}"
        );
    }
}

#[test]
fn real_ownership_devices_and_whiteouts_as_root() {
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("skipping: needs root (CI runs as root)");
        return;
    }
    let mut owned = file(b"home/app/file", b"x");
    owned.uid = 1000;
    let mut null = e(b"dev/null", tar::EntryType::Char);
    null.mode = 0o666;
    let (d, r) = unpack_with(
        &RealFs,
        vec![
            owned,
            null,
            file(b"etc/.wh.gone", b""),
            file(b"opaque/.wh..wh..opq", b""),
        ],
        Whiteouts::Overlay,
    );
    r.unwrap();
    let root = d.path().join("layer");
    let m = std::fs::metadata(root.join("home/app/file")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 1000));
    let wh = std::fs::symlink_metadata(root.join("etc/gone")).unwrap();
    assert_eq!(wh.rdev(), 0);
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &wh.file_type()
    ));
    let opaque = xattr::get(root.join("opaque"), "trusted.overlay.opaque").unwrap();
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
}

#[test]
fn every_compression_is_recognized() {
    use std::io::Write;
    let data = b"plain bytes, compressed five ways".repeat(100);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&data).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&data).unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&data).unwrap();
    for packed in [
        data.clone(),
        gz.finish().unwrap(),
        zstd::encode_all(&data[..], 1).unwrap(),
        bz.finish().unwrap(),
        xz.finish().unwrap(),
    ] {
        let mut out = Vec::new();
        decompress(&packed[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}
