//! Builds for several platforms: one solve for every target, RUN for arm64 under QEMU
//! (binfmt_misc), stages pinned to the build platform run natively, and the result is an
//! image index that archives, registries and other tools carry with every platform.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The busybox bases, made offline: this machine's (amd64) and Debian's arm64 busybox-static.
struct Bases {
    amd64: PathBuf,
    arm64: PathBuf,
}

fn bases() -> Option<&'static Bases> {
    static BASES: OnceLock<Option<Bases>> = OnceLock::new();
    BASES
        .get_or_init(|| {
            let amd64 = busybox_tar("strata-platform-tests")?;
            let arm64 = amd64.with_file_name("busybox-arm64.tar");
            let out = Command::new(testdata().join("base-image.sh"))
                .args(["busybox"])
                .arg(&arm64)
                .arg("linux/arm64")
                .output()
                .unwrap();
            if !out.status.success() {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI downloads Debian's arm64 busybox-static (scripts/setup.sh): {}",
                    stderr(&out)
                );
                eprintln!("skipping: no arm64 busybox: {}", stderr(&out));
                return None;
            }
            Some(Bases { amd64, arm64 })
        })
        .as_ref()
}

/// Registers the arm64 emulator (`strata binfmt --install`) unless the kernel has one.
/// Where the kernel does not allow it, the tests that need it skip, and fail under CI.
fn emulation(root: &Path) -> bool {
    let out = strata_in(root, &["binfmt", "--install", "linux/arm64"]);
    let listed = stdout(&out);
    if out.status.success() && listed.contains("linux/arm64 (") {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI registers QEMU's arm64 emulator (qemu-user-static): {listed}{}",
        stderr(&out)
    );
    eprintln!("skipping: arm64 binaries cannot run here: {}", stderr(&out));
    false
}

/// A fresh directory with a state root holding `busybox` for amd64 and arm64 (one
/// multi-platform image).
fn fixture(name: &str) -> Option<Fixture> {
    let b = bases()?;
    let fx = Fixture::new(&b.amd64, name);
    import_bases(&fx, b);
    Some(fx)
}

/// Imports the bases as one `busybox` for amd64 and arm64, at a fixed time (so that every
/// root gets the same image IDs).
fn import_bases(fx: &Fixture, b: &Bases) {
    let (a, r) = (b.amd64.to_string_lossy(), b.arm64.to_string_lossy());
    let args = [
        "import",
        "--platform",
        "linux/amd64,linux/arm64",
        &a,
        &r,
        "busybox",
    ];
    let out = fx
        .cmd(&args)
        .env("SOURCE_DATE_EPOCH", "0")
        .output()
        .unwrap();
    expect_ok(&out, &args);
}

/// The ELF machine of a file (`e_machine`, little-endian).
fn elf_machine(p: &Path) -> u16 {
    let b = std::fs::read(p).unwrap();
    assert_eq!(&b[..4], b"\x7fELF", "{} is not ELF", p.display());
    u16::from_le_bytes([b[18], b[19]])
}

/// The vertex names of plain progress (`#N [..] TEXT` lines), each once.
fn vertices(progress: &str) -> Vec<String> {
    let mut v: Vec<String> = progress
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix('#')?;
            let (n, name) = rest.split_once(' ')?;
            (n.chars().all(|c| c.is_ascii_digit()) && name.starts_with('['))
                .then(|| name.to_string())
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

const CROSS: &str = "FROM --platform=$BUILDPLATFORM busybox AS build
RUN uname -m > /built-on
ARG TARGETARCH
RUN echo \"compiled on $(uname -m) for $TARGETARCH\" > /compiled
FROM busybox
COPY --from=build /built-on /compiled /
RUN uname -m > /arch
";

#[test]
fn a_two_platform_build_emulates_the_target_stage_and_runs_the_build_platform_stage_natively() {
    let Some(fx) = fixture("two-platforms") else {
        return;
    };
    if !emulation(&fx.root) {
        return;
    }
    let ctx = fx.context("cross", CROSS);
    let out_dir = fx.dir.join("out");
    let dest = format!("type=local,dest={}", out_dir.display());
    let args = [
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "--progress",
        "plain",
        "-o",
        &dest,
        &ctx,
    ];
    let out = fx.strata(&args);
    expect_ok(&out, &args);
    let progress = stderr(&out);
    // Each platform's root filesystem in its own directory, as buildx writes them.
    let arm = out_dir.join("linux_arm64");
    let amd = out_dir.join("linux_amd64");
    assert_eq!(
        std::fs::read_to_string(arm.join("arch")).unwrap(),
        "aarch64\n"
    );
    assert_eq!(
        std::fs::read_to_string(amd.join("arch")).unwrap(),
        "x86_64\n"
    );
    assert_eq!(
        elf_machine(&arm.join("bin/busybox")),
        0xb7,
        "aarch64 busybox"
    );
    assert_eq!(
        elf_machine(&amd.join("bin/busybox")),
        0x3e,
        "x86-64 busybox"
    );
    // The stage pinned to the build platform ran natively for both targets: once where the
    // step does not depend on the target, once per target where it does.
    for dir in [&arm, &amd] {
        assert_eq!(
            std::fs::read_to_string(dir.join("built-on")).unwrap(),
            "x86_64\n"
        );
    }
    assert_eq!(
        std::fs::read_to_string(arm.join("compiled")).unwrap(),
        "compiled on x86_64 for arm64\n"
    );
    assert_eq!(
        std::fs::read_to_string(amd.join("compiled")).unwrap(),
        "compiled on x86_64 for amd64\n"
    );
    let v = vertices(&progress);
    let shared: Vec<_> = v
        .iter()
        .filter(|n| n.ends_with("RUN uname -m > /built-on"))
        .collect();
    assert_eq!(shared.len(), 1, "the shared step runs once: {v:#?}");
    let per_target: Vec<_> = v.iter().filter(|n| n.contains("compiled on")).collect();
    assert_eq!(per_target.len(), 2, "{v:#?}");
    assert!(
        v.iter()
            .any(|n| n.starts_with("[linux/amd64->arm64 build ")),
        "BuildKit's names for a cross stage: {v:#?}"
    );
    assert!(
        v.iter().any(|n| n.starts_with("[linux/arm64 stage-1 ")),
        "{v:#?}"
    );
    // A rebuild is all cache hits, for every platform.
    let again = fx.strata(&args);
    expect_ok(&again, &args);
    assert!(stderr(&again).contains("0 steps run"), "{}", stderr(&again));
}

#[test]
fn a_multi_platform_image_is_an_index_in_the_store_archives_and_a_registry() {
    let Some(fx) = fixture("index-everywhere") else {
        return;
    };
    if !emulation(&fx.root) {
        return;
    }
    let Some(reg) = crate::registry::Registry::start(&fx.dir.join("registry")) else {
        return;
    };
    let ctx = fx.context("cross", CROSS);
    let name = format!("{}/multi/app:1", reg.addr);
    let meta = fx.dir.join("meta.json");
    let oci = fx.dir.join("app.oci.tar");
    let docker = fx.dir.join("app.docker.tar");
    let outs = [
        "type=image,push=true".to_string(),
        format!("type=oci,dest={}", oci.display()),
        format!("type=docker,dest={}", docker.display()),
    ];
    let meta_s = meta.to_string_lossy().into_owned();
    let mut args = vec![
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "--metadata-file",
        &meta_s,
        "-q",
        "-t",
        &name,
    ];
    for o in &outs {
        args.extend(["-o", o.as_str()]);
    }
    args.push(&ctx);
    let id = fx.ok(&args);
    // The store: one name for both platforms.
    let images = fx.ok(&["images"]);
    let line = images
        .lines()
        .find(|l| l.contains("multi/app"))
        .unwrap_or_else(|| panic!("{images}"));
    assert!(line.contains("linux/amd64,linux/arm64"), "{images}");
    // The registry: an OCI index with both platforms, its digest the one reported.
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let digest = m["containerimage.digest"].as_str().unwrap().to_string();
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let raw = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(raw.status.success(), "{}", stderr(&raw));
    let idx: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(idx["mediaType"], "application/vnd.oci.image.index.v1+json");
    let archs: Vec<&str> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    assert_eq!(
        format!("sha256:{}", sha256_hex(&raw.stdout)),
        digest,
        "the metadata names the index pushed"
    );
    // A fresh root pulls each platform and runs it (arm64 through QEMU).
    for (platform, arch) in [("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")] {
        let fresh = fx.dir.join(format!("fresh-{arch}"));
        expect_ok(
            &strata_in(&fresh, &["pull", "--platform", platform, &name]),
            &["pull"],
        );
        let ran = expect_ok(
            &strata_in(
                &fresh,
                &["run", "--rm", "--platform", platform, &name, "cat", "/arch"],
            ),
            &["run"],
        );
        assert_eq!(ran, format!("{arch}\n"));
    }
    // inspect shows the index and each platform's manifest; save takes one platform; push
    // of the stored index sends every platform; pull --all-platforms brings them all.
    let inspected: serde_json::Value = serde_json::from_str(&fx.ok(&["inspect", &name])).unwrap();
    let platforms: Vec<&str> = inspected[0]["Manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let saved = fx.dir.join("arm64.tar");
    let saved_s = saved.to_string_lossy().into_owned();
    fx.ok(&["save", "--platform", "linux/arm64", "-o", &saved_s, &name]);
    let cfg = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("docker-archive:{saved_s}"))
        .output()
        .unwrap();
    let c: serde_json::Value = serde_json::from_slice(&cfg.stdout).unwrap();
    assert_eq!(c["architecture"], "arm64", "{}", stderr(&cfg));
    let again = format!("{}/multi/again:2", reg.addr);
    fx.ok(&["push", &name, &again]);
    let all = fx.dir.join("fresh-all");
    expect_ok(
        &strata_in(&all, &["pull", "--all-platforms", &again]),
        &["pull"],
    );
    let images = expect_ok(&strata_in(&all, &["images"]), &["images"]);
    assert!(images.contains("linux/amd64,linux/arm64"), "{images}");
    assert!(!images.contains('('), "every platform is here: {images}");
    // Pushed on from there, the index keeps its digest (its members their manifests).
    let third = format!("{}/multi/third:3", reg.addr);
    let pushed = expect_ok(&strata_in(&all, &["push", &again, &third]), &["push"]);
    let raw_of = |r: &str| {
        let o = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--raw"])
            .arg(format!("docker://{r}"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        o.stdout
    };
    assert_eq!(raw_of(&third), raw_of(&again), "{pushed}");
    // An OCI archive of several platforms loads as one multi-platform image.
    let loaded = fx.dir.join("loaded");
    let oci_s = oci.to_string_lossy().into_owned();
    expect_ok(&strata_in(&loaded, &["load", "-i", &oci_s]), &["load"]);
    let images = expect_ok(&strata_in(&loaded, &["images"]), &["images"]);
    assert!(images.contains("linux/amd64,linux/arm64"), "{images}");
    // The archives: skopeo and umoci read every platform of the OCI one; the docker one
    // loads the image this machine runs.
    for arch in ["amd64", "arm64"] {
        let cfg = Command::new("skopeo")
            .args(["--override-arch", arch, "inspect", "--config"])
            .arg(format!("oci-archive:{}", oci.display()))
            .output()
            .unwrap();
        assert!(cfg.status.success(), "{}", stderr(&cfg));
        let c: serde_json::Value = serde_json::from_slice(&cfg.stdout).unwrap();
        assert_eq!(c["architecture"], arch);
    }
    let layout = fx.dir.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(&oci)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(untar.success());
    let ls = Command::new("umoci")
        .args(["ls", "--layout"])
        .arg(&layout)
        .output()
        .unwrap();
    assert!(ls.status.success(), "{}", stderr(&ls));
    assert_eq!(stdout(&ls).trim(), "1");
    let d = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("docker-archive:{}", docker.display()))
        .output()
        .unwrap();
    assert!(d.status.success(), "{}", stderr(&d));
    let c: serde_json::Value = serde_json::from_slice(&d.stdout).unwrap();
    assert_eq!(c["architecture"], "amd64");
}

#[test]
fn a_foreign_platform_without_its_emulator_fails_before_any_step_runs() {
    let Some(fx) = fixture("no-emulator") else {
        return;
    };
    // A machine with no handler registered (the kernel's list, simulated empty).
    let empty = fx.dir.join("binfmt");
    std::fs::create_dir_all(&empty).unwrap();
    let ctx = fx.context("app", "FROM busybox AS app\nRUN touch /ran\n");
    let out = fx
        .cmd(&[
            "build",
            "--platform",
            "linux/arm64",
            "--progress",
            "plain",
            &ctx,
        ])
        .env("STRATA_BINFMT_DIR", &empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("stage app runs for linux/arm64"), "{err}");
    assert!(err.contains("strata binfmt --install linux/arm64"), "{err}");
    assert!(!err.contains("RUN touch /ran\n#"), "no step started: {err}");
    assert!(!err.contains(" DONE "), "nothing ran: {err}");
}

/// The hex SHA-256 of `b` (through `sha256sum`, as another tool computes it).
fn sha256_hex(b: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b).unwrap();
    let out = child.wait_with_output().unwrap();
    stdout(&out).split_whitespace().next().unwrap().to_string()
}

#[test]
fn a_build_cache_of_several_platforms_serves_every_platform_on_a_fresh_root() {
    let Some(fx) = fixture("platform-cache") else {
        return;
    };
    if !emulation(&fx.root) {
        return;
    }
    let ctx = fx.context("cross", CROSS);
    let cache = fx.dir.join("cache");
    let to = format!("type=local,dest={},mode=max", cache.display());
    let from = format!("type=local,src={}", cache.display());
    let both = "linux/amd64,linux/arm64";
    fx.ok(&["build", "-q", "--platform", both, "--cache-to", &to, &ctx]);
    // A fresh root with the same base: every step of both platforms comes from the cache.
    let other = fx.other_root("fresh");
    import_bases(&other, bases().expect("made above"));
    let out = other.strata(&["build", "--platform", both, "--cache-from", &from, &ctx]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("0 steps run"), "{err}");
}
