//! Archives, OCI layout directories and cache directories whose files are not what they claim:
//! FIFOs, devices, symlinks leading out, blobs longer than their descriptors. strata must say
//! so within seconds, never hang on an open or a read, never read without a bound, and import
//! nothing. Layouts are made by hand (one small layer), so no base image is needed.

use crate::support::*;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use strata_cache::Digest;

/// Runs strata on the root `root` with a time bound: a hang is a failure, not a stuck test.
fn strata_within(root: &Path, args: &[&str], secs: u64) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .env("STRATA_ROOT", root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run strata");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strata {args:?} did not finish within {secs}s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn fails_with(out: &Output, what: &str) {
    let all = format!("{}{}", stdout(out), stderr(out));
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(all.contains(what), "wanted {what:?} in: {all}");
    assert!(!all.contains("panicked"), "{all}");
}

fn mkfifo(p: &Path) {
    let _ = std::fs::remove_file(p);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

fn link(target: &str, p: &Path) {
    let _ = std::fs::remove_file(p);
    symlink(target, p).unwrap();
}

/// A hand-made OCI layout: one uncompressed layer holding `/hello`.
struct Layout {
    dir: PathBuf,
    index: PathBuf,
    manifest: PathBuf,
    config: PathBuf,
    layer: PathBuf,
}

fn put_blob(dir: &Path, b: &[u8]) -> (PathBuf, serde_json::Value) {
    let d = Digest::of(b);
    let p = dir.join("blobs/sha256").join(d.hex());
    std::fs::write(&p, b).unwrap();
    (
        p,
        serde_json::json!({"digest": d.to_string(), "size": b.len()}),
    )
}

fn layout(dir: &Path) -> Layout {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, "hello", &b"hello\n"[..]).unwrap();
    let layer_bytes = b.into_inner().unwrap();
    let (layer, mut ld) = put_blob(dir, &layer_bytes);
    ld["mediaType"] = "application/vnd.oci.image.layer.v1.tar".into();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let config_bytes = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(&layer_bytes).to_string()]},
    }))
    .unwrap();
    let (config, mut cd) = put_blob(dir, &config_bytes);
    cd["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let manifest_bytes = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cd,
        "layers": [ld],
    }))
    .unwrap();
    let (manifest, mut md) = put_blob(dir, &manifest_bytes);
    md["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    md["annotations"] = serde_json::json!({"io.containerd.image.name": "hostile/ok:1"});
    let index = dir.join("index.json");
    std::fs::write(
        &index,
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [md]})).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    Layout {
        dir: dir.to_path_buf(),
        index,
        manifest,
        config,
        layer,
    }
}

/// A fresh directory for one test below the system's temporary directory.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir()
        .join("strata-hostile-archives")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Loads `src` into the empty root `root` and expects a failure naming `what`, with nothing
/// imported.
fn load_fails(root: &Path, src: &Path, what: &str) {
    let out = strata_within(root, &["load", "-i", &s(src)], 20);
    fails_with(&out, what);
    let images = strata_within(root, &["images", "--format", "json"], 20);
    let listed = stdout(&images);
    assert!(
        images.status.success() && matches!(listed.trim(), "" | "[]"),
        "an image appeared: {listed}"
    );
}

/// Writes the layout `dir` as a tar, with `fifo` (a path in it) as a FIFO entry and `links`
/// as symlink entries.
fn layout_tar(dir: &Path, out: &Path, fifo: Option<&str>, links: &[(&str, &str)]) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    for rel in ["oci-layout", "index.json"] {
        if fifo != Some(rel) && !links.iter().any(|l| l.0 == rel) {
            b.append_path_with_name(dir.join(rel), rel).unwrap();
        }
    }
    for e in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let rel = format!("blobs/sha256/{}", e.file_name().to_string_lossy());
        if fifo != Some(&rel[..]) && !links.iter().any(|l| l.0 == rel) {
            b.append_path_with_name(e.path(), &rel).unwrap();
        }
    }
    if let Some(rel) = fifo {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Fifo);
        h.set_size(0);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, rel, std::io::empty()).unwrap();
    }
    for (rel, target) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_link(&mut h, rel, target).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn a_hand_made_layout_loads_and_round_trips_through_save() {
    let t = scratch("roundtrip");
    let l = layout(&t.join("layout"));
    let root = t.join("root");
    let out = strata_within(&root, &["load", "-i", &s(&l.dir)], 60);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("hostile/ok:1"), "{}", stdout(&out));
    for format in ["oci", "docker"] {
        let file = t.join(format!("saved-{format}.tar"));
        let out = strata_within(
            &root,
            &["save", "--format", format, "-o", &s(&file), "hostile/ok:1"],
            60,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        // As a tar, and unpacked as a directory, into fresh roots.
        let unpacked = t.join(format!("saved-{format}"));
        std::fs::create_dir_all(&unpacked).unwrap();
        tar::Archive::new(std::fs::File::open(&file).unwrap())
            .unpack(&unpacked)
            .unwrap();
        for (n, src) in [(1, &file), (2, &unpacked)] {
            let r = t.join(format!("root-{format}-{n}"));
            let out = strata_within(&r, &["load", "-i", &s(src)], 60);
            assert!(out.status.success(), "{format} {n}: {}", stderr(&out));
            assert!(
                stdout(&out).contains("Loaded image: hostile/ok:1"),
                "{}",
                stdout(&out)
            );
        }
    }
}

#[test]
fn fifos_in_a_layout_directory_are_refused_at_once() {
    let t = scratch("fifo-dir");
    let root = t.join("root");
    let l = layout(&t.join("layout"));
    mkfifo(&l.index);
    load_fails(
        &root,
        &l.dir,
        "\"index.json\": it is a FIFO, not a regular file",
    );
    for which in ["manifest", "config", "layer"] {
        let l = layout(&t.join("layout"));
        let p = match which {
            "manifest" => &l.manifest,
            "config" => &l.config,
            _ => &l.layer,
        };
        mkfifo(p);
        load_fails(&root, &l.dir, "it is a FIFO, not a regular file");
    }
}

#[test]
fn devices_and_links_out_of_a_layout_directory_are_refused() {
    let t = scratch("links-dir");
    let root = t.join("root");
    std::fs::write(t.join("outside.json"), b"{\"manifests\": []}").unwrap();
    for which in ["index", "config", "layer"] {
        for target in ["/dev/zero", "../../outside.json", "../../../outside.json"] {
            let l = layout(&t.join("layout"));
            let p = match which {
                "index" => &l.index,
                "config" => &l.config,
                _ => &l.layer,
            };
            link(target, p);
            load_fails(
                &root,
                &l.dir,
                "is a symbolic link leading outside the archive (or to nothing)",
            );
        }
    }
    // A device node in the layout is refused before it is opened.
    if rustix::process::geteuid().is_root() {
        let l = layout(&t.join("layout"));
        std::fs::remove_file(&l.layer).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &l.layer,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o644),
            rustix::fs::makedev(1, 5), // /dev/zero
        )
        .unwrap();
        load_fails(
            &root,
            &l.dir,
            "it is a character device, not a regular file",
        );
    }
}

#[test]
fn a_blob_longer_than_its_descriptor_is_an_error() {
    let t = scratch("long-blob");
    let root = t.join("root");
    let l = layout(&t.join("layout"));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&l.layer)
        .unwrap();
    std::io::Write::write_all(&mut f, &[0u8; 4096]).unwrap();
    load_fails(&root, &l.dir, "is longer than its descriptor's");
    let l = layout(&t.join("layout"));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&l.config)
        .unwrap();
    std::io::Write::write_all(&mut f, b"  ").unwrap();
    load_fails(&root, &l.dir, "is longer than its descriptor's");
}

#[test]
fn fifos_and_links_in_a_layout_tar_are_refused() {
    let t = scratch("tar");
    let root = t.join("root");
    let l = layout(&t.join("layout"));
    let rel = |p: &Path| s(p.strip_prefix(&l.dir).unwrap());
    let tar = t.join("fifo-index.tar");
    layout_tar(&l.dir, &tar, Some("index.json"), &[]);
    load_fails(&root, &tar, "it is a FIFO, not a regular file");
    let tar = t.join("fifo-config.tar");
    layout_tar(&l.dir, &tar, Some(&rel(&l.config)), &[]);
    load_fails(&root, &tar, "it is a FIFO, not a regular file");
    let tar = t.join("zero-layer.tar");
    layout_tar(&l.dir, &tar, None, &[(&rel(&l.layer), "/dev/zero")]);
    load_fails(&root, &tar, "leading outside the archive");
    let tar = t.join("zero-index.tar");
    layout_tar(&l.dir, &tar, None, &[("index.json", "/dev/zero")]);
    load_fails(&root, &tar, "leading outside the archive");
}

#[test]
fn a_docker_archive_directory_with_a_fifo_config_or_a_device_layer_is_refused() {
    let t = scratch("docker-dir");
    let root = t.join("root");
    let l = layout(&t.join("layout"));
    let manifest = |config: &Path, layer: &Path| {
        std::fs::write(
            l.dir.join("manifest.json"),
            serde_json::to_vec(&serde_json::json!([{
                "Config": s(config.strip_prefix(&l.dir).unwrap()),
                "RepoTags": ["hostile/docker:1"],
                "Layers": [s(layer.strip_prefix(&l.dir).unwrap())],
            }]))
            .unwrap(),
        )
        .unwrap();
    };
    let fifo = l.dir.join("config-fifo.json");
    mkfifo(&fifo);
    manifest(&fifo, &l.layer);
    load_fails(&root, &l.dir, "it is a FIFO, not a regular file");
    let zero = l.dir.join("zero.tar");
    link("/dev/zero", &zero);
    manifest(&l.config, &zero);
    load_fails(&root, &l.dir, "leading outside the archive");
    mkfifo(&l.dir.join("manifest.json"));
    load_fails(&root, &l.dir, "\"manifest.json\": it is a FIFO");
}

/// `strata build --cache-from type=local,src=DIR` of a one-step build: an unreadable cache is
/// a warning naming why, and the build goes on.
fn build_with_cache_from(t: &Path, cache: &Path, what: &str) {
    let ctx = t.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nENV A=1\n").unwrap();
    let out = strata_within(
        &t.join("root"),
        &[
            "build",
            "--progress",
            "plain",
            "--cache-from",
            &format!("type=local,src={}", s(cache)),
            &s(&ctx),
        ],
        30,
    );
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.contains("importing a cache failed"), "{all}");
    assert!(all.contains(what), "wanted {what:?} in: {all}");
}

#[test]
fn a_cache_directory_with_hostile_files_is_refused_at_once() {
    let t = scratch("cache-dir");
    let cache = t.join("cache");
    std::fs::create_dir_all(cache.join("blobs/sha256")).unwrap();
    let index = cache.join("index.json");
    link("/dev/zero", &index);
    build_with_cache_from(
        &t,
        &cache,
        "the cache's index.json is a symbolic link leading outside the cache directory",
    );
    mkfifo(&index);
    build_with_cache_from(&t, &cache, "the cache's index.json: it is a FIFO");
    // A manifest blob that is a FIFO, one that is a link to /dev/zero, one longer than its
    // descriptor says.
    let m = br#"{"schemaVersion":2,"config":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2}}"#;
    let write_index = |d: &Digest, size: usize| {
        std::fs::remove_file(&index).ok();
        std::fs::write(
            &index,
            serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [
                {"digest": d.to_string(), "size": size}]}))
            .unwrap(),
        )
        .unwrap();
    };
    let d = Digest::of(m);
    let blob = cache.join("blobs/sha256").join(d.hex());
    write_index(&d, m.len());
    mkfifo(&blob);
    build_with_cache_from(&t, &cache, "it is a FIFO, not a regular file");
    link("/dev/zero", &blob);
    build_with_cache_from(&t, &cache, "leading outside the cache directory");
    std::fs::remove_file(&blob).unwrap();
    let mut long = m.to_vec();
    long.extend_from_slice(&[b' '; 100]);
    std::fs::write(&blob, &long).unwrap();
    build_with_cache_from(&t, &cache, "longer than its descriptor's");
}
