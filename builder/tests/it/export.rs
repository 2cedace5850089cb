//! Exporters, save/load, reproducible output and interop with skopeo and umoci (as root, on a
//! busybox base made offline).

use crate::support::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn base_tar() -> Option<&'static Path> {
    static TAR: OnceLock<Option<PathBuf>> = OnceLock::new();
    base_tar_in(&TAR, "strata-export-tests")
}

/// A fresh directory `name` with a state root that has busybox imported.
fn fixture(name: &str) -> Option<Fixture> {
    Some(Fixture::with_busybox(base_tar()?, name))
}

fn sha256(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    stdout(&out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The sample context with a few more kinds of files.
fn context(fx: &Fixture) -> String {
    let ctx = fx.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox AS build\nRUN mkdir -p /out/d && echo data > '/out/name with spaces' && echo é > /out/café && ln -s café /out/link && ln /out/café /out/hard && mkfifo /out/fifo && chmod 4755 /out/café && chmod 1777 /out/d && chown -h 1000:1000 /out/link\nRUN rm /etc/group && rm -r /home\n\nFROM busybox\nCOPY --from=build /out /out\nRUN rm /etc/passwd\nENV A=1\nCMD [\"sh\"]\n",
    )
    .unwrap();
    ctx.to_string_lossy().into_owned()
}

#[test]
fn every_output_and_the_archives_are_well_formed() {
    let Some(fx) = fixture("outputs") else { return };
    let ctx = context(&fx);
    let (oci, docker, local, tar, dir) = (
        fx.path("oci.tar"),
        fx.path("docker.tar"),
        fx.path("local"),
        fx.path("rootfs.tar"),
        fx.path("ocidir"),
    );
    let id = fx.ok(&[
        "build",
        "-q",
        "-t",
        "exp:1",
        "-o",
        "type=image",
        "-o",
        &format!("type=oci,dest={oci}"),
        "-o",
        &format!("type=docker,dest={docker}"),
        "-o",
        &format!("type=local,dest={local}"),
        "-o",
        &format!("type=tar,dest={tar}"),
        "-o",
        &format!("type=oci,dest={dir},tar=false,compression=zstd"),
        &ctx,
    ]);
    let id = id.trim();
    // The local store got the tag.
    assert!(fx.ok(&["images"]).contains("exp"));
    // The OCI layout directory: index → manifest → config (the image ID) and zstd layers whose
    // content hashes to the config's diff IDs.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(&dir).join("index.json")).unwrap())
            .unwrap();
    let m = &index["manifests"][0];
    assert_eq!(
        m["annotations"]["io.containerd.image.name"],
        "docker.io/library/exp:1"
    );
    assert_eq!(m["annotations"]["org.opencontainers.image.ref.name"], "1");
    let blob = |d: &str| std::fs::read(Path::new(&dir).join("blobs/sha256").join(&d[7..])).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(m["digest"].as_str().unwrap())).unwrap();
    assert_eq!(manifest["config"]["digest"], id);
    let config: serde_json::Value =
        serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), diff_ids.len());
    for (l, d) in layers.iter().zip(diff_ids) {
        assert_eq!(
            l["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        let raw = zstd_decode(&blob(l["digest"].as_str().unwrap()));
        assert_eq!(format!("sha256:{}", hex_sha(&raw)), d.as_str().unwrap());
    }
    // The new layers carry OCI whiteouts for what the steps deleted, and the files as built.
    let last = zstd_decode(&blob(layers.last().unwrap()["digest"].as_str().unwrap()));
    let names = tar_names(&last);
    assert!(names.contains(&"etc/.wh.passwd".to_string()), "{names:?}");
    // The docker archive: manifest.json, Docker media types, tags.
    let out = Command::new("tar")
        .args(["-xOf", &docker, "manifest.json"])
        .output()
        .unwrap();
    let dm: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dm[0]["RepoTags"][0], "exp:1");
    // type=local and type=tar: the final root filesystem.
    let l = Path::new(&local);
    assert_eq!(
        std::fs::read_to_string(l.join("out/name with spaces")).unwrap(),
        "data\n"
    );
    assert!(!l.join("etc/passwd").exists() && l.join("etc/group").exists());
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let caf = std::fs::metadata(l.join("out/café")).unwrap();
    assert_eq!(caf.mode() & 0o7777, 0o4755);
    assert_eq!(caf.nlink(), 2, "the hard link is kept");
    assert_eq!(
        std::fs::metadata(l.join("out/d")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert!(
        std::fs::symlink_metadata(l.join("out/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let link = std::fs::symlink_metadata(l.join("out/link")).unwrap();
    assert_eq!((link.uid(), link.gid()), (1000, 1000));
    let mut raw = Vec::new();
    std::fs::File::open(&tar)
        .unwrap()
        .read_to_end(&mut raw)
        .unwrap();
    let names = tar_names(&raw);
    assert!(
        names.contains(&"out/name with spaces".to_string()),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains(".wh.")));
}

/// An archive's files: (path, bytes).
type Entries = Vec<(String, Vec<u8>)>;

fn hex_sha(b: &[u8]) -> String {
    strata_cache::Digest::of(b).hex().to_string()
}

fn zstd_decode(b: &[u8]) -> Vec<u8> {
    let mut r = strata_cache::unpack::decompress(b).unwrap();
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}

fn tar_names(raw: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(raw);
    a.entries()
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string()
        })
        .collect()
}

#[test]
fn save_and_load_keep_the_image_id() {
    let Some(fx) = fixture("saveload") else {
        return;
    };
    let ctx = context(&fx);
    let id = fx.ok(&["build", "-q", "-t", "sl", &ctx]);
    for format in ["docker", "oci"] {
        let file = fx.path(&format!("saved-{format}.tar"));
        fx.ok(&["save", "--format", format, "-o", &file, "sl"]);
        fx.ok(&["rmi", "sl"]);
        let out = fx.ok(&["load", "-i", &file]);
        assert!(out.contains("Loaded image: sl:latest"), "{out}");
        let v: serde_json::Value = serde_json::from_str(&fx.ok(&["inspect", "sl"])).unwrap();
        assert_eq!(v[0]["Id"], id.trim(), "{format}");
        let run = fx.ok(&["run", "--rm", "sl", "cat", "/out/name with spaces"]);
        assert_eq!(run, "data\n");
    }
    // history lists every step, the newest first.
    let h = fx.ok(&["history", "--no-trunc", "sl"]);
    assert!(h.lines().nth(1).unwrap().contains("CMD [\"sh\"]"), "{h}");
    assert!(h.contains("strata import"), "{h}");
}

#[test]
fn hostile_or_broken_archives_import_nothing() {
    let Some(fx) = fixture("hostile") else { return };
    let good = fx.path("good.tar");
    fx.ok(&["save", "-o", &good, "busybox"]);
    // Rewrites good.tar with `f` applied to its (path, bytes) entries.
    let variant = |name: &str, f: &dyn Fn(&mut Entries)| -> String {
        let mut entries: Entries = Vec::new();
        let mut a = tar::Archive::new(std::fs::File::open(&good).unwrap());
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            if e.header().entry_type().is_dir() {
                continue;
            }
            let p = e.path().unwrap().to_string_lossy().into_owned();
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            entries.push((p, v));
        }
        f(&mut entries);
        let out = fx.path(name);
        let mut b = tar::Builder::new(std::fs::File::create(&out).unwrap());
        for (p, v) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(v.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            // Raw names, so `..` survives.
            let n = p.as_bytes();
            h.as_gnu_mut().unwrap().name[..n.len()].copy_from_slice(n);
            h.set_cksum();
            b.append(&h, &v[..]).unwrap();
        }
        b.finish().unwrap();
        out
    };
    let manifest = |es: &mut Entries| -> serde_json::Value {
        let m = es.iter().find(|e| e.0 == "manifest.json").unwrap();
        serde_json::from_slice(&m.1).unwrap()
    };
    let set_manifest = |es: &mut Entries, v: serde_json::Value| {
        let m = es.iter_mut().find(|e| e.0 == "manifest.json").unwrap();
        m.1 = serde_json::to_vec(&v).unwrap();
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "traversal entry",
            variant("t1.tar", &|es| {
                es.push(("../../escaped".into(), b"x".to_vec()))
            }),
            "",
        ),
        (
            "manifest naming a path outside",
            variant("t2.tar", &|es| {
                let mut m = manifest(es);
                m[0]["Config"] = "../../../../etc/hostname".into();
                set_manifest(es, m);
            }),
            "outside",
        ),
        (
            "layer that does not match the config",
            variant("t3.tar", &|es| {
                let m = manifest(es);
                let layer = m[0]["Layers"][0].as_str().unwrap().to_string();
                let e = es.iter_mut().find(|e| e.0 == layer).unwrap();
                let n = e.1.len();
                // Another valid gzip stream: a different layer.
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut gz, &vec![0u8; 1024]).unwrap();
                e.1 = gz.finish().unwrap();
                assert!(n > 0);
            }),
            "",
        ),
        (
            "truncated layer",
            variant("t4.tar", &|es| {
                let m = manifest(es);
                let layer = m[0]["Layers"][0].as_str().unwrap().to_string();
                let e = es.iter_mut().find(|e| e.0 == layer).unwrap();
                e.1.truncate(e.1.len() / 2);
            }),
            "",
        ),
        (
            "OCI blob whose digest is wrong",
            variant("t5.tar", &|es| {
                es.retain(|e| e.0 != "manifest.json");
                let idx = es.iter().find(|e| e.0 == "index.json").unwrap();
                let v: serde_json::Value = serde_json::from_slice(&idx.1).unwrap();
                let d = v["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
                let m = es.iter_mut().find(|e| e.0.ends_with(&d)).unwrap();
                m.1.push(b' ');
            }),
            "digest",
        ),
        (
            "not an archive at all",
            {
                let p = fx.path("t6.tar");
                std::fs::write(&p, b"hello").unwrap();
                p
            },
            "",
        ),
    ];
    // Loaded into an empty root, so nothing can be skipped as already there.
    let empty = fx.other_root("empty-root");
    for (what, file, msg) in cases {
        let out = empty.strata(&["load", "-i", &file]);
        assert!(!out.status.success(), "{what}: loaded");
        let err = stderr(&out);
        assert!(err.contains("error"), "{what}: {err}");
        assert!(err.contains(msg), "{what}: {err}");
        assert!(
            !out.status.success() && !err.contains("panicked"),
            "{what}: {err}"
        );
        let images = empty.strata(&["images", "--format", "json"]);
        let listed = stdout(&images);
        assert!(
            images.status.success() && matches!(listed.trim(), "" | "[]"),
            "{what}: an image appeared: {listed}"
        );
        assert_eq!(
            std::fs::read_dir(empty.root.join("snapshots"))
                .unwrap()
                .count(),
            0,
            "{what}: a layer was left"
        );
    }
    assert!(!fx.dir.parent().unwrap().join("escaped").exists());
}

#[test]
fn source_date_epoch_builds_are_byte_identical() {
    let Some(a) = fixture("repro-a") else { return };
    let Some(b) = fixture("repro-b") else { return };
    let ctx = context(&a);
    // The same base image in both roots: imported with the epoch as its creation time.
    for fx in [&a, &b] {
        fx.import_busybox(base_tar().unwrap(), Some("1600000000"));
    }
    let mut digests = Vec::new();
    for (fx, threads) in [(&a, "2"), (&b, "1")] {
        let oci = fx.path("oci.tar");
        let out = fx
            .cmd(&[
                "build",
                "-q",
                "--max-parallelism",
                threads,
                "-o",
                &format!("type=oci,dest={oci}"),
                "-o",
                &format!("type=docker,dest={}", fx.path("docker.tar")),
                &ctx,
            ])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        digests.push((
            stdout(&out).trim().to_string(),
            sha256(Path::new(&oci)),
            sha256(Path::new(&fx.path("docker.tar"))),
        ));
    }
    assert_eq!(
        digests[0], digests[1],
        "two fresh roots gave different bytes"
    );
    let v: serde_json::Value = serde_json::from_str(&a.ok(&["inspect", &digests[0].0])).unwrap();
    assert_eq!(v[0]["Created"], "2023-11-14T22:13:20Z");
}

#[test]
fn other_tools_accept_the_archives() {
    let Some(fx) = fixture("interop") else { return };
    let have = |t: &str| Command::new(t).arg("--version").output().is_ok();
    if !have("skopeo") || !have("umoci") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs skopeo and umoci"
        );
        eprintln!("skipping: skopeo or umoci is not installed");
        return;
    }
    let ctx = context(&fx);
    let (oci, docker, dir) = (fx.path("oci.tar"), fx.path("docker.tar"), fx.path("layout"));
    fx.ok(&[
        "build",
        "-q",
        "-t",
        "interop:v1",
        "-o",
        &format!("type=oci,dest={oci}"),
        "-o",
        &format!("type=docker,dest={docker}"),
        "-o",
        &format!("type=oci,dest={dir},tar=false"),
        &ctx,
    ]);
    for src in [
        format!("oci-archive:{oci}"),
        format!("docker-archive:{docker}"),
        format!("oci:{dir}:v1"),
    ] {
        let out = Command::new("skopeo")
            .args(["inspect", &src])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect {src}: {}",
            stderr(&out)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Env"][1], "A=1", "{src}");
    }
    let copied = fx.path("copied");
    let out = Command::new("skopeo")
        .args([
            "copy",
            &format!("docker-archive:{docker}"),
            &format!("oci:{copied}:x"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo copy: {}", stderr(&out));
    let bundle = fx.path("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--image", &format!("{dir}:v1"), &bundle])
        .output()
        .unwrap();
    assert!(out.status.success(), "umoci unpack: {}", stderr(&out));
    let rootfs = Path::new(&bundle).join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("out/name with spaces")).unwrap(),
        "data\n"
    );
    assert!(
        !rootfs.join("etc/passwd").exists(),
        "the whiteout was applied"
    );
    // And strata loads what skopeo wrote.
    fx.ok(&["load", "-i", &copied]);
}

/// `imagefs.py list`'s view of an image (the anchors' comparison tool, reimplemented so the
/// test needs nothing outside the checkout): layers applied in order with OCI whiteouts, one
/// line per path with type, mode, owner and content digest or link target.
fn flatten(layers: &[Vec<u8>]) -> Vec<String> {
    use std::collections::BTreeMap;
    fn norm(n: &str) -> String {
        n.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect::<Vec<_>>()
            .join("/")
    }
    let mut fs: BTreeMap<String, (String, String, String, String)> = BTreeMap::new();
    for raw in layers {
        let entries: Vec<(tar::Header, String, Vec<u8>)> = {
            let mut a = tar::Archive::new(&raw[..]);
            a.entries()
                .unwrap()
                .map(|e| {
                    let mut e = e.unwrap();
                    let name = norm(&e.path().unwrap().to_string_lossy());
                    let mut data = Vec::new();
                    e.read_to_end(&mut data).unwrap();
                    let link = e
                        .link_name()
                        .unwrap()
                        .map(|l| l.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let mut h = e.header().clone();
                    // Keep the link target with the header's data.
                    if !link.is_empty() {
                        data = link.into_bytes();
                    }
                    h.set_size(data.len() as u64);
                    (h, name, data)
                })
                .collect()
        };
        for (_, name, _) in &entries {
            let (base, leaf) = name.rsplit_once('/').unwrap_or(("", name.as_str()));
            if leaf == ".wh..wh..opq" {
                let prefix = if base.is_empty() {
                    String::new()
                } else {
                    format!("{base}/")
                };
                fs.retain(|k, _| !(k.starts_with(&prefix) && k != base));
            } else if let Some(g) = leaf.strip_prefix(".wh.") {
                let gone = if base.is_empty() {
                    g.to_string()
                } else {
                    format!("{base}/{g}")
                };
                fs.retain(|k, _| !(k == &gone || k.starts_with(&format!("{gone}/"))));
            }
        }
        for (h, name, data) in entries {
            let leaf = name.rsplit('/').next().unwrap_or("");
            if name.is_empty() || leaf.starts_with(".wh.") {
                continue;
            }
            let t = h.entry_type();
            let text = String::from_utf8_lossy(&data).into_owned();
            let (kind, detail) = if t.is_dir() {
                ("dir", String::new())
            } else if t.is_symlink() {
                ("symlink", text)
            } else if t.is_hard_link() {
                let d = fs
                    .get(&norm(&text))
                    .map(|e| e.1.clone())
                    .unwrap_or("?".into());
                ("file", d)
            } else if t.is_file() {
                ("file", hex_sha(&data)[..16].to_string())
            } else if t.is_character_special() || t.is_block_special() {
                (
                    "device",
                    format!(
                        "{},{}",
                        h.device_major().unwrap().unwrap_or(0),
                        h.device_minor().unwrap().unwrap_or(0)
                    ),
                )
            } else if t.is_fifo() {
                ("fifo", String::new())
            } else {
                ("other", String::new())
            };
            if let Some(old) = fs.get(&name)
                && old.0 == "dir"
                && kind != "dir"
            {
                let p = format!("{name}/");
                fs.retain(|k, _| !k.starts_with(&p));
            }
            fs.insert(
                name,
                (
                    kind.to_string(),
                    detail,
                    format!("0o{:o}", h.mode().unwrap() & 0o7777),
                    format!("{}:{}", h.uid().unwrap(), h.gid().unwrap()),
                ),
            );
        }
    }
    fs.into_iter()
        .filter(|(k, _)| {
            k != ".dockerenv" && !["proc/", "sys/", "dev/"].iter().any(|p| k.starts_with(p))
        })
        .map(|(k, (kind, detail, mode, owner))| {
            format!("{k} {kind} {mode} {owner} {detail}")
                .trim_end()
                .to_string()
        })
        .collect()
}

/// `imagefs.py config`: the runtime config keys that matter, Env sorted.
fn runtime_config(config: &serde_json::Value) -> serde_json::Value {
    let c = &config["config"];
    let mut out = serde_json::Map::new();
    for k in [
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "Labels",
        "ExposedPorts",
        "Volumes",
        "StopSignal",
        "Healthcheck",
        "Shell",
        "OnBuild",
    ] {
        let v = &c[k];
        let empty = v.is_null()
            || v.as_object().is_some_and(|o| o.is_empty())
            || v.as_array().is_some_and(|a| a.is_empty())
            || v.as_str() == Some("");
        if !empty {
            out.insert(k.to_string(), v.clone());
        }
    }
    if let Some(serde_json::Value::Array(env)) = out.get_mut("Env") {
        env.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    }
    serde_json::Value::Object(out)
}

/// The image-content cases of testdata/images: what strata builds holds the same files and
/// runtime config as BuildKit's image of the same Dockerfile (references made by
/// testdata/images/refresh.sh with the anchors' BuildKit and imagefs.py).
#[test]
fn same_content_as_buildkit() {
    let Some(fx) = fixture("buildkit-equal") else {
        return;
    };
    let cases = testdata().join("images");
    let mut n = 0;
    for e in std::fs::read_dir(&cases).unwrap().flatten() {
        let case = e.path();
        if !case.join("buildkit.list").is_file() {
            continue;
        }
        n += 1;
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let out = fx.path(&format!("{name}-layout"));
        fx.ok(&[
            "build",
            "-q",
            "-o",
            &format!("type=oci,dest={out},tar=false,compression=uncompressed"),
            &case.to_string_lossy(),
        ]);
        let read = |rel: &str| std::fs::read(Path::new(&out).join(rel)).unwrap();
        let blob =
            |d: &serde_json::Value| read(&format!("blobs/sha256/{}", &d.as_str().unwrap()[7..]));
        let index: serde_json::Value = serde_json::from_slice(&read("index.json")).unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&blob(&index["manifests"][0]["digest"])).unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&blob(&manifest["config"]["digest"])).unwrap();
        let layers: Vec<Vec<u8>> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| blob(&l["digest"]))
            .collect();
        let mine = flatten(&layers);
        let want: Vec<String> = std::fs::read_to_string(case.join("buildkit.list"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let diff: Vec<String> = want
            .iter()
            .filter(|l| !mine.contains(l))
            .map(|l| format!("- {l}"))
            .chain(
                mine.iter()
                    .filter(|l| !want.contains(l))
                    .map(|l| format!("+ {l}")),
            )
            .collect();
        assert!(
            diff.is_empty(),
            "{name}: files differ from BuildKit's:\n{}",
            diff.join("\n")
        );
        let want_cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(case.join("buildkit.config.json")).unwrap())
                .unwrap();
        assert_eq!(runtime_config(&config), want_cfg, "{name}: runtime config");
    }
    assert!(n >= 2, "no cases found in {}", cases.display());
}

/// An uncompressed export streams a built layer from its
/// snapshot, stores no tar of it, and refuses a snapshot changed on disk without leaving a
/// blob behind.
#[test]
fn uncompressed_layers_stream_from_their_snapshots() {
    let Some(fx) = fixture("streamed") else {
        return;
    };
    let ctx = fx.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN head -c 300000 /dev/urandom > /data && echo x > /small\n",
    )
    .unwrap();
    let ctx = ctx.to_string_lossy().into_owned();
    let (dir, tar) = (fx.path("layout"), fx.path("layout.tar"));
    let id = fx.ok(&["build", "-q", &ctx]);
    let built = {
        let id = id.trim();
        let inspect: serde_json::Value = serde_json::from_str(&fx.ok(&["inspect", id])).unwrap();
        let d = &inspect[0]["RootFS"]["Layers"];
        let d = d.as_array().unwrap_or_else(|| panic!("{inspect}"));
        d.last().unwrap().as_str().unwrap().to_string()
    };
    for out in [
        format!("type=oci,dest={dir},tar=false,compression=uncompressed"),
        format!("type=oci,dest={tar},compression=uncompressed"),
    ] {
        fx.ok(&["build", "-q", "-o", &out, &ctx]);
    }
    // The directory: the last layer's blob is its diff ID and hashes to it.
    let blob = Path::new(&dir).join("blobs/sha256").join(&built[7..]);
    assert_eq!(sha256(&blob), built[7..]);
    // The tar holds the same bytes.
    let out = Command::new("tar")
        .args(["-xOf", &tar, &format!("blobs/sha256/{}", &built[7..])])
        .output()
        .unwrap();
    assert_eq!(out.stdout, std::fs::read(&blob).unwrap());
    // Nothing of it went into the content store.
    assert!(!fx.root.join("blobs/sha256").join(&built[7..]).exists());
    // A snapshot changed on disk: the export fails and names the cause; no blob is left.
    std::fs::write(
        fx.root.join("snapshots").join(&built[7..]).join("small"),
        "y\n",
    )
    .unwrap();
    let again = fx.path("again");
    let out = fx.strata(&[
        "build",
        "-q",
        "-o",
        &format!("type=oci,dest={again},tar=false,compression=uncompressed"),
        &ctx,
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("rebuild"), "{}", stderr(&out));
    let left: Vec<_> = std::fs::read_dir(Path::new(&again).join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&built[7..]))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
