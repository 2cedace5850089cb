//! The state root: private to its owner (other users reach no layer), stacks of many layers,
//! and the leftovers of interrupted writes in `<root>/tmp`.

use crate::support::*;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

/// A directory of its own for each test, under one directory for this file's tests.
fn test_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir()
        .join("strata-state-root-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "strata failed:\n{}\n{}",
        stdout(out),
        stderr(out)
    );
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

/// The busybox base tarball (made once), or `None` when the tests cannot run here.
fn base_tar() -> Option<&'static Path> {
    static TAR: OnceLock<Option<PathBuf>> = OnceLock::new();
    base_tar_in(&TAR, "strata-state-root-base")
}

/// A state root with busybox imported, and a context directory.
fn busybox_root(name: &str) -> Option<(PathBuf, PathBuf)> {
    let tar = base_tar()?;
    let dir = test_dir(name);
    let (root, ctx) = (dir.join("root"), dir.join("ctx"));
    std::fs::create_dir_all(&ctx).unwrap();
    ok(&strata_in(
        &root,
        &["import", &tar.to_string_lossy(), "busybox"],
    ));
    Some((root, ctx))
}

fn build(root: &Path, ctx: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["build", "--progress", "plain"];
    args.extend_from_slice(extra);
    let ctx = ctx.to_string_lossy().into_owned();
    args.push(&ctx);
    strata_in(root, &args)
}

/// Runs `argv` as user and group 65534 (nobody) with no supplementary groups, through a
/// shell: setpriv itself may still hold root's capabilities when it executes its command, the
/// shell it starts holds none.
fn as_nobody(argv: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
            "/bin/sh",
            "-c",
            "exec \"$@\"",
            "sh",
        ])
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .expect("setpriv (util-linux)")
}

#[test]
fn a_fresh_root_and_an_open_root_of_an_earlier_strata_end_private() {
    let dir = test_dir("modes");
    // A fresh root, made under umask 0: mkdir's mode is never widened.
    let fresh = dir.join("fresh");
    let out = Command::new("sh")
        .args([
            "-c",
            "umask 0; exec \"$0\" images",
            env!("CARGO_BIN_EXE_strata"),
        ])
        .env("STRATA_ROOT", &fresh)
        .output()
        .unwrap();
    ok(&out);
    // A root an earlier strata made: everything 0755.
    let old = dir.join("old");
    for d in [
        "",
        "blobs",
        "blobs/sha256",
        "snapshots",
        "containers",
        "cachemounts",
        "tmp",
    ] {
        std::fs::create_dir_all(old.join(d)).unwrap();
        std::fs::set_permissions(old.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    ok(&strata_in(&old, &["images"]));
    for root in [&fresh, &old] {
        assert_eq!(mode(root), 0o700, "{}", root.display());
        for d in strata_cache::root::PRIVATE_DIRS {
            assert_eq!(mode(&root.join(d)), 0o700, "{}/{d}", root.display());
        }
    }
}

#[test]
fn other_users_cannot_list_snapshots_or_run_their_setuid_files() {
    let Some((root, ctx)) = busybox_root("setuid") else {
        return;
    };
    // A setuid-root copy of busybox in a layer, as `COPY --chmod=4755` makes it.
    let busybox = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v busybox"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::fs::copy(busybox.trim(), ctx.join("bb")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY --chmod=4755 bb /suid\n",
    )
    .unwrap();
    ok(&build(&root, &ctx, &["-t", "suid"]));
    let snapshots = root.join("snapshots");
    let suid = files(&snapshots, &|n| n == "suid");
    assert_eq!(suid.len(), 1, "{suid:?}");
    let m = std::fs::metadata(&suid[0]).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o4755, 0));
    // The root and its snapshots are closed to everyone else.
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&snapshots), 0o700);
    let ls = as_nobody(&["ls", &snapshots.to_string_lossy()]);
    assert!(!ls.status.success(), "nobody listed the snapshots");
    assert!(stderr(&ls).contains("Permission denied"), "{}", stderr(&ls));
    let run = as_nobody(&[&suid[0].to_string_lossy(), "id", "-u"]);
    assert!(
        !run.status.success(),
        "nobody ran a setuid file of a snapshot: {}",
        stdout(&run)
    );
    assert!(stdout(&run).is_empty(), "{}", stdout(&run));
    assert!(
        stderr(&run).contains("Permission denied"),
        "{}",
        stderr(&run)
    );
}

#[test]
fn a_container_user_reads_base_layers_and_writes_tmp_under_a_private_root() {
    let Some((root, ctx)) = busybox_root("user") else {
        return;
    };
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nUSER 1000\nRUN head -1 /etc/passwd > /tmp/first && id -u >> /tmp/first && cat /tmp/first\n",
    )
    .unwrap();
    let mut runtimes = vec!["builtin"];
    if Command::new("runc").arg("--version").output().is_ok() {
        runtimes.push("runc");
    } else {
        assert!(std::env::var_os("CI").is_none(), "CI installs runc");
        eprintln!("skipping runc: it is not installed");
    }
    for rt in runtimes {
        let tag = format!("user-{rt}");
        let out = build(&root, &ctx, &["--runtime", rt, "--no-cache", "-t", &tag]);
        ok(&out);
        let out = strata_in(
            &root,
            &["--runtime", rt, "run", "--rm", &tag, "cat", "/tmp/first"],
        );
        ok(&out);
        assert_eq!(
            stdout(&out),
            "root:x:0:0:root:/root:/bin/sh\n1000\n",
            "{rt}"
        );
    }
    assert_eq!(mode(&root), 0o700);
}

/// Imports `n` one-file layers on top of busybox's as the image `name` (quicker than building
/// them). Layer `i` holds `/layers/lNNN` and `/top` with `i`.
fn import_tall(root: &Path, name: &str, n: usize) {
    let tar = base_tar().unwrap();
    let mut store = strata_cache::images::ImageStore::open(root).unwrap();
    let fs = strata_cache::sys::RealFs;
    let opts = strata_cache::unpack::UnpackOptions::default();
    let base = store
        .import_layer(std::fs::File::open(tar).unwrap(), &fs, &opts)
        .unwrap();
    let mut diff_ids = vec![base.diff_id];
    for i in 0..n {
        let mut b = tar::Builder::new(Vec::new());
        let data = format!("{i}\n");
        for path in [format!("layers/l{i:03}"), "top".to_string()] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, path, data.as_bytes()).unwrap();
        }
        let l = store
            .import_layer(&b.into_inner().unwrap()[..], &fs, &opts)
            .unwrap();
        diff_ids.push(l.diff_id);
    }
    let config = strata_cache::images::ImageConfig {
        architecture: strata_solver::Platform::host().architecture,
        os: "linux".into(),
        config: strata_oci::RuntimeConfig {
            env: vec!["PATH=/bin".into()],
            ..Default::default()
        },
        rootfs: strata_cache::images::RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        ..Default::default()
    };
    store
        .put_image(&config, &[format!("docker.io/library/{name}:latest")], 0)
        .unwrap();
}

#[test]
fn a_stage_of_sixty_layers_can_be_copied_from_copied_onto_and_mounted() {
    let Some((root, ctx)) = busybox_root("sixty") else {
        return;
    };
    // 60 layers on busybox: their lowerdir list is longer than a page of mount options.
    import_tall(&root, "tall", 60);
    std::fs::write(ctx.join("x.txt"), "x\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        r#"FROM tall AS stage
RUN echo staged > /staged

FROM stage
COPY x.txt /x.txt
COPY --from=stage /staged /copied
COPY --from=stage /layers /all-layers
RUN --mount=type=bind,from=stage,target=/t cat /t/top /t/staged > /mounted
RUN --mount=type=bind,from=stage,target=/t,rw echo changed > /t/top && cat /t/top > /mounted-rw
"#,
    )
    .unwrap();
    let out = build(&root, &ctx, &["-t", "on-sixty"]);
    ok(&out);
    let out = strata_in(
        &root,
        &[
            "run",
            "--rm",
            "on-sixty",
            "sh",
            "-c",
            "cat /x.txt /copied /mounted /mounted-rw /top; ls /all-layers | wc -l",
        ],
    );
    ok(&out);
    assert_eq!(stdout(&out), "x\nstaged\n59\nstaged\nchanged\n59\n60\n");
}

#[test]
fn a_stack_deeper_than_overlayfs_allows_is_refused_with_the_reason() {
    let Some((root, ctx)) = busybox_root("deep") else {
        return;
    };
    // busybox and 500 more: one beyond what overlayfs stacks.
    import_tall(&root, "deep", 500);
    let want = "the image has 501 layers; overlayfs stacks at most 500";
    let out = strata_in(&root, &["run", "--rm", "deep", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(want), "{}", stderr(&out));
    std::fs::write(ctx.join("Dockerfile"), "FROM deep\nCOPY Dockerfile /d\n").unwrap();
    let out = build(&root, &ctx, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(want), "{}", stderr(&out));
}

/// Sets a path's modification time `secs` seconds back.
fn age(p: &Path, secs: u64) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

/// The du line of `<root>/tmp`: entries, size, reclaimable.
fn du_tmp(root: &Path) -> Vec<String> {
    let out = strata_in(root, &["du"]);
    ok(&out);
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("Temporary"))
        .unwrap_or_else(|| panic!("no Temporary line in\n{text}"));
    line.split_whitespace().skip(1).map(String::from).collect()
}

/// Holds an exclusive `flock` on `p`, as a live strata holds the file it writes.
fn hold(p: &Path) -> std::fs::File {
    let f = std::fs::File::open(p).unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    f
}

#[test]
fn an_interrupted_import_is_shown_by_du_and_removed_and_reported_by_prune() {
    let dir = test_dir("tmp-prune");
    let root = dir.join("root");
    // An import killed half way: 3 MB in tmp/.
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["import", "-", "killed"])
        .env("STRATA_ROOT", &root)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(&vec![0u8; 3_000_000]).unwrap();
    input.flush().unwrap();
    let tmp = root.join("tmp");
    let written = || {
        std::fs::read_dir(&tmp)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum::<u64>()
            })
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while written() < 3_000_000 {
        assert!(
            Instant::now() < deadline,
            "the import wrote {} bytes",
            written()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(input);
    // A file a live strata is writing: held, so it stays whatever its age.
    let live = tmp.join("ingest-live");
    std::fs::write(&live, vec![1u8; 1_000_000]).unwrap();
    age(&live, 600);
    let held = hold(&live);
    assert_eq!(du_tmp(&root), ["2", "4MB", "3MB"]);
    let out = strata_in(&root, &["prune"]);
    ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("Removed 1 leftover temporary files (3MB)"),
        "{text}"
    );
    assert!(text.contains("Total reclaimed space: 3MB"), "{text}");
    assert!(live.exists());
    assert_eq!(du_tmp(&root), ["1", "1MB", "0B"]);
    drop(held);
    assert_eq!(du_tmp(&root), ["1", "1MB", "1MB"]);
}

#[test]
fn the_next_strata_removes_old_leftovers_nobody_holds() {
    let dir = test_dir("tmp-next");
    let root = dir.join("root");
    ok(&strata_in(&root, &["images"]));
    let tmp = root.join("tmp");
    let write = |name: &str, secs: u64| {
        let p = tmp.join(name);
        std::fs::write(&p, vec![7u8; 100_000]).unwrap();
        age(&p, secs);
        p
    };
    let dead = write("ingest-dead", 120);
    // Unheld but young: its writer may not have locked it yet.
    let young = write("ingest-young", 0);
    // Held by a live process: stays however old.
    let live = write("ingest-live", 600);
    let _held = hold(&live);
    ok(&strata_in(&root, &["images"]));
    assert!(!dead.exists());
    assert!(young.exists());
    assert!(live.exists());
}

#[test]
fn an_import_killed_while_unpacking_leaves_its_half_in_tmp_for_prune() {
    let dir = test_dir("tmp-unpack");
    let root = dir.join("root");
    // Many small files: unpacking them takes long enough to be caught half way.
    let layer = dir.join("many.tar");
    let mut b = tar::Builder::new(std::io::BufWriter::new(
        std::fs::File::create(&layer).unwrap(),
    ));
    for i in 0..40_000 {
        let mut h = tar::Header::new_gnu();
        h.set_size(100);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, format!("d{}/f{i}", i % 100), &[b'x'; 100][..])
            .unwrap();
    }
    b.into_inner().unwrap().flush().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["import", &layer.to_string_lossy(), "many"])
        .env("STRATA_ROOT", &root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tmp = root.join("tmp");
    let unpacking = || {
        std::fs::read_dir(&tmp)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name().to_string_lossy().starts_with(".unpack-")
                    && std::fs::read_dir(e.path()).is_ok_and(|mut d| d.next().is_some())
            })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !unpacking() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before it was seen unpacking"
        );
        assert!(Instant::now() < deadline, "no unpack in progress in tmp/");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Nothing half-made among the snapshots; the half is in tmp/, which du counts.
    let snaps: Vec<_> = std::fs::read_dir(root.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(snaps.is_empty(), "{snaps:?}");
    let du = du_tmp(&root);
    assert_eq!(du[0], "1", "{du:?}");
    assert_eq!(du[1], du[2], "{du:?}");
    assert_ne!(du[1], "0B", "{du:?}");
    let out = strata_in(&root, &["prune"]);
    ok(&out);
    assert!(
        stdout(&out).contains(&format!("Removed 1 leftover temporary files ({})", du[1])),
        "{}",
        stdout(&out)
    );
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

#[test]
fn a_root_another_user_made_is_refused_before_anything_is_done_in_it() {
    let Some(tar) = base_tar() else { return };
    let dir = test_dir("foreign");
    let root = dir.join("root");
    let victim = dir.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("old"), "x").unwrap();
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Another user's root, with its tmp/ leading to a victim directory.
    std::os::unix::fs::symlink(&victim, root.join("tmp")).unwrap();
    std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
    for args in [
        vec!["images"],
        vec!["import", &*tar.to_string_lossy(), "busybox"],
    ] {
        let out = strata_in(&root, &args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains("owned by uid 65534"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(mode(&root), 0o755);
    assert_eq!(std::fs::metadata(&root).unwrap().uid(), 65534);
    assert!(victim.join("old").exists());
    assert_ne!(mode(&victim), 0o700);
    // This user's root with a symlink for a data directory is refused too.
    let own = dir.join("own");
    std::fs::create_dir(&own).unwrap();
    std::os::unix::fs::symlink(&victim, own.join("snapshots")).unwrap();
    let out = strata_in(&own, &["images"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is a symbolic link"),
        "{}",
        stderr(&out)
    );
}
