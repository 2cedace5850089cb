//! The local image store from the command line: import, images, tag, rmi, inspect.

use crate::support::*;
use std::path::Path;
use std::process::Command;

/// A small root filesystem tarball (gzip), made here so the test needs nothing installed.
fn rootfs(path: &Path, marker: &str) {
    let f = std::fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let entries: Vec<(&str, Vec<u8>, u32)> = vec![
        (
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
            0o644,
        ),
        ("etc/marker", marker.as_bytes().to_vec(), 0o644),
        ("bin/tool", b"#!/bin/sh\n".to_vec(), 0o4755),
    ];
    for (name, data, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}

#[test]
fn import_list_tag_inspect_remove() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let tarball = dir.path().join("rootfs.tar.gz");
    rootfs(&tarball, "one");
    let out = strata_in(&root, &["import", &tarball.to_string_lossy(), "busybox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    assert!(id.starts_with("sha256:"));

    let out = strata_in(&root, &["images"]);
    let s = stdout(&out);
    assert!(s.starts_with("REPOSITORY   TAG      IMAGE ID"), "{s}");
    assert!(
        s.contains(&format!("busybox      latest   {}", &id[7..19])),
        "{s}"
    );

    assert!(
        strata_in(&root, &["tag", "busybox", "localhost:5000/app:v1"])
            .status
            .success()
    );
    let out = strata_in(&root, &["inspect", "localhost:5000/app:v1"]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j[0]["Id"], id.as_str());
    assert_eq!(
        j[0]["RepoTags"],
        serde_json::json!(["busybox:latest", "localhost:5000/app:v1"])
    );
    assert_eq!(j[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    // The layer is unpacked once, with its modes.
    let layer = j[0]["RootFS"]["Layers"][0].as_str().unwrap();
    let snap = root.join("snapshots").join(&layer[7..]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(snap.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
    assert_eq!(std::fs::read(snap.join("etc/marker")).unwrap(), b"one");

    // JSON listing.
    let out = strata_in(&root, &["images", "--format", "json"]);
    assert_eq!(stdout(&out).lines().count(), 2);

    // Removing one tag keeps the image; removing the last one removes it and its layer.
    let out = strata_in(&root, &["rmi", "busybox"]);
    assert_eq!(stdout(&out).trim(), "Untagged: busybox:latest");
    assert!(snap.exists());
    let out = strata_in(&root, &["rmi", "localhost:5000/app:v1"]);
    let s = stdout(&out);
    assert!(s.contains(&format!("Deleted: {id}")), "{s}");
    assert!(!snap.exists());
    let out = strata_in(&root, &["inspect", "busybox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no such image: busybox"));
}

#[test]
fn concurrent_imports_into_one_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let mut children = Vec::new();
    for i in 0..4 {
        let tarball = dir.path().join(format!("rootfs{i}.tar.gz"));
        // Two distinct layers, each imported twice at the same time.
        rootfs(&tarball, if i % 2 == 0 { "even" } else { "odd" });
        children.push(
            Command::new(env!("CARGO_BIN_EXE_strata"))
                .args(["import", &tarball.to_string_lossy(), &format!("img{i}")])
                .env("STRATA_ROOT", &root)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = strata_in(&root, &["images", "--format", "json"]);
    assert_eq!(stdout(&out).lines().count(), 4);
    assert_eq!(
        std::fs::read_dir(root.join("snapshots")).unwrap().count(),
        2,
        "each layer unpacked once"
    );
}

#[test]
fn hostile_import_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let tarball = dir.path().join("evil.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&tarball).unwrap());
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..14].copy_from_slice(b"../../../evil!");
    h.set_size(1);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    b.into_inner().unwrap();
    let out = strata_in(&root, &["import", &tarball.to_string_lossy(), "evil"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("climbs above the layer root"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_dir(root.join("snapshots")).unwrap().count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(root.join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}
