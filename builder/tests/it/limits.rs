//! Bounded input and BuildKit's policy at the command line: secrets, Dockerfiles and
//! `.dockerignore` files must be regular files within their limits, context files are read
//! inside the context, `-o` destinations and keys are checked, entitlements are asked for.

use crate::support::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs strata with a time bound: a hang is a failure, not a stuck test.
fn strata_within(args: &[&str], stdin: Option<&[u8]>, secs: u64) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .env("STRATA_ROOT", std::env::temp_dir().join("strata-test-root"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run strata");
    let writer = stdin.map(|data| {
        let mut w = child.stdin.take().unwrap();
        let data = data.to_vec();
        // strata may stop reading early: a broken pipe is expected.
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        })
    });
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("strata {args:?} did not finish within {secs}s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(w) = writer {
        let _ = w.join();
    }
    child.wait_with_output().unwrap()
}

fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    dir
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn fails_with(out: &Output, what: &str) {
    assert_ne!(out.status.code(), Some(0), "{}", stderr(out));
    assert!(
        stderr(out).contains(what),
        "wanted {what:?} in: {}",
        stderr(out)
    );
}

#[test]
fn secret_from_a_device_is_refused() {
    let ctx = context("FROM scratch\n");
    let out = strata_within(
        &["build", "--secret", "id=x,src=/dev/zero", &s(ctx.path())],
        None,
        60,
    );
    fails_with(
        &out,
        "secret x: /dev/zero: it is a character device, not a regular file",
    );
}

#[test]
fn secret_from_a_fifo_is_refused_without_hanging() {
    let ctx = context("FROM scratch\n");
    let fifo = ctx.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let spec = format!("id=x,src={}", s(&fifo));
    let out = strata_within(&["build", "--secret", &spec, &s(ctx.path())], None, 60);
    fails_with(&out, "it is a FIFO, not a regular file");
}

#[test]
fn secret_over_500_kib_is_refused() {
    let ctx = context("FROM scratch\n");
    let big = ctx.path().join("big");
    std::fs::write(&big, vec![b'x'; 500 * 1024 + 1]).unwrap();
    let spec = format!("id=x,src={}", s(&big));
    let out = strata_within(&["build", "--secret", &spec, &s(ctx.path())], None, 60);
    fails_with(&out, "it is larger than the limit of 500 KiB");
}

#[test]
fn secret_id_leaving_run_secrets_is_a_dockerfile_error() {
    let ctx = context("FROM scratch\nRUN --mount=type=secret,id=../x cat /run/x\n");
    let out = strata(&["check", &s(ctx.path())]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("Dockerfile:2"), "{e}");
    assert!(e.contains("invalid secret id \"../x\""), "{e}");
}

#[test]
fn secret_id_with_directories_targets_its_base_name() {
    let ctx = context("FROM scratch\nRUN --mount=type=secret,id=aws/creds cat\n");
    let out = strata(&["graph", "--format", "json", &s(ctx.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let g = stdout(&out);
    assert!(g.contains("\"/run/secrets/creds\""), "{g}");
    assert!(g.contains("\"aws/creds\""), "{g}");
}

#[test]
fn dockerfile_from_a_device_is_refused() {
    let ctx = context("FROM scratch\n");
    for cmd in ["check", "graph"] {
        let out = strata_within(&[cmd, "-f", "/dev/zero", &s(ctx.path())], None, 30);
        fails_with(&out, "it is a character device, not a regular file");
    }
    let out = strata_within(&["parse", "/dev/zero"], None, 30);
    fails_with(&out, "it is a character device, not a regular file");
    let out = strata_within(&["build", "-f", "/dev/zero", &s(ctx.path())], None, 30);
    fails_with(&out, "it is a character device, not a regular file");
}

#[test]
fn context_dockerfile_linked_to_a_device_is_refused() {
    let ctx = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/zero", ctx.path().join("Dockerfile")).unwrap();
    let out = strata_within(&["check", &s(ctx.path())], None, 30);
    fails_with(&out, "symbolic link leading out of the build context");
}

#[test]
fn context_dockerfile_linked_out_of_the_context_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("outside"), "OUTSIDE-CONTENT\n").unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::os::unix::fs::symlink("../outside", ctx.join("Dockerfile")).unwrap();
    let out = strata(&["check", &s(&ctx)]);
    fails_with(&out, "symbolic link leading out of the build context");
    assert!(!stderr(&out).contains("OUTSIDE-CONTENT"));
    assert!(!stdout(&out).contains("OUTSIDE-CONTENT"));
    // An absolute link is resolved inside the context too.
    std::fs::remove_file(ctx.join("Dockerfile")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside"), ctx.join("Dockerfile")).unwrap();
    let out = strata(&["check", &s(&ctx)]);
    fails_with(&out, "symbolic link leading out of the build context");
    assert!(!stderr(&out).contains("OUTSIDE-CONTENT"));
}

#[test]
fn context_dockerfile_linked_inside_the_context_is_read() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::create_dir(ctx.path().join("docker")).unwrap();
    std::fs::write(ctx.path().join("docker/app"), "FROM scratch\n").unwrap();
    std::os::unix::fs::symlink("docker/app", ctx.path().join("Dockerfile")).unwrap();
    let out = strata(&["check", &s(ctx.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn dockerfile_over_16_mib_is_refused() {
    let ctx = context("FROM scratch\n");
    let big = ctx.path().join("big.Dockerfile");
    let mut text = b"FROM scratch\n".to_vec();
    text.resize(16 * 1024 * 1024 + 1, b'#');
    std::fs::write(&big, &text).unwrap();
    let out = strata_within(&["check", "-f", &s(&big), &s(ctx.path())], None, 60);
    fails_with(&out, "it is larger than the limit of 16 MiB");
    let out = strata_within(&["check", "-f", "-", &s(ctx.path())], Some(&text), 60);
    fails_with(&out, "larger than the limit of 16 MiB");
    let out = strata_within(&["parse", "-"], Some(&text), 60);
    fails_with(&out, "larger than the limit of 16 MiB");
    // A lone Dockerfile as the build's standard input (`build -`) has the same bound.
    if rustix::process::geteuid().is_root() {
        let out = strata_within(&["build", "-"], Some(&text), 60);
        fails_with(&out, "larger than the limit of 16 MiB");
    }
}

#[test]
fn user_dockerfile_path_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("real"), "FROM scratch\n").unwrap();
    std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
    let ctx = tempfile::tempdir().unwrap();
    let out = strata(&["check", "-f", &s(&dir.path().join("link")), &s(ctx.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn dockerignore_must_be_a_regular_file_within_its_limit() {
    let ctx = context("FROM scratch\n");
    std::os::unix::fs::symlink("/dev/zero", ctx.path().join(".dockerignore")).unwrap();
    let out = strata_within(&["check", &s(ctx.path())], None, 30);
    fails_with(
        &out,
        ".dockerignore: it is a symbolic link leading out of the build context",
    );
    std::fs::remove_file(ctx.path().join(".dockerignore")).unwrap();
    std::fs::write(
        ctx.path().join(".dockerignore"),
        vec![b'a'; 4 * 1024 * 1024 + 1],
    )
    .unwrap();
    let out = strata_within(&["check", &s(ctx.path())], None, 30);
    fails_with(&out, ".dockerignore: it is larger than the limit of 4 MiB");
    std::fs::write(ctx.path().join(".dockerignore"), "*.tmp\n").unwrap();
    let out = strata(&["check", &s(ctx.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn output_with_an_empty_destination_is_refused() {
    let ctx = context("FROM scratch\n");
    let cwd = tempfile::tempdir().unwrap();
    for o in [
        "",
        "type=local",
        "type=local,dest=",
        "type=tar,dest=",
        "type=oci",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["build", "-o", o, &s(ctx.path())])
            .current_dir(cwd.path())
            .env("STRATA_ROOT", std::env::temp_dir().join("strata-test-root"))
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(0), "-o {o:?}");
        let e = stderr(&out);
        assert!(
            e.contains("the destination is empty") || e.contains("needs dest=PATH"),
            "-o {o:?}: {e}"
        );
        assert_eq!(
            std::fs::read_dir(cwd.path()).unwrap().count(),
            0,
            "-o {o:?}"
        );
    }
}

#[test]
fn output_with_a_repeated_key_is_refused() {
    let ctx = context("FROM scratch\n");
    let out = strata(&["build", "-o", "type=local,dest=A,dest=B", &s(ctx.path())]);
    fails_with(&out, "dest is given more than once");
}

#[test]
fn run_network_host_needs_the_network_host_entitlement() {
    let ctx = context("FROM scratch\nRUN --network=host true\n");
    let out = strata(&["build", "--network", "none", &s(ctx.path())]);
    fails_with(
        &out,
        "network.host is not allowed: RUN --network=host needs the network.host entitlement; build with --allow network.host",
    );
    assert!(stderr(&out).contains("Dockerfile:2"), "{}", stderr(&out));
    let out = strata(&["build", &s(ctx.path())]);
    fails_with(&out, "network.host is not allowed");
    // Granted: the step gets past the check (and fails on an empty image, or without root).
    for grant in [&["--allow", "network.host"][..], &["--network", "host"][..]] {
        let mut args = vec!["build"];
        args.extend_from_slice(grant);
        let d = s(ctx.path());
        args.push(&d);
        let out = strata(&args);
        assert!(
            !stderr(&out).contains("is not allowed"),
            "{grant:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn run_security_insecure_is_refused_before_anything_runs() {
    let ctx = context("FROM scratch\nRUN true\nRUN --security=insecure true\n");
    let out = strata(&["build", "--progress", "plain", &s(ctx.path())]);
    fails_with(&out, "security.insecure is not allowed");
    assert!(stderr(&out).contains("Dockerfile:3"), "{}", stderr(&out));
    // Not even the first step ran.
    assert!(!stderr(&out).contains("[2/3] RUN true"), "{}", stderr(&out));
}

/// A state root with busybox imported, for the end-to-end cases (`None`: skipped here).
fn busybox_root(name: &str) -> Option<(tempfile::TempDir, String)> {
    let tar = busybox_tar(&format!("strata-limits-{name}"))?;
    let root = tempfile::tempdir().unwrap();
    let r = s(root.path());
    let out = strata_in(&r, &["import", &s(&tar), "busybox"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    Some((root, r))
}

fn strata_in(root: &str, args: &[&str], cwd: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.args(args).env("STRATA_ROOT", root).stdin(Stdio::null());
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    c.output().unwrap()
}

#[test]
fn cached_run_network_host_still_needs_the_entitlement() {
    let Some((_root, r)) = busybox_root("nethost") else {
        return;
    };
    let ctx = context("FROM busybox\nRUN --network=host echo hi > /f\n");
    let c = s(ctx.path());
    let out = strata_in(&r, &["build", "--allow", "network.host", &c], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = strata_in(&r, &["build", &c], None);
    fails_with(&out, "network.host is not allowed");
}

#[test]
fn secret_with_a_directory_id_leaves_nothing_in_the_layer() {
    let Some((_root, r)) = busybox_root("secretid") else {
        return;
    };
    let ctx = context(
        "FROM busybox\nRUN --mount=type=secret,id=aws/creds,required cp /run/secrets/creds /copy\n",
    );
    std::fs::write(ctx.path().join("creds.txt"), "s3cr3t").unwrap();
    let secret = format!("id=aws/creds,src={}", s(&ctx.path().join("creds.txt")));
    let out = strata_in(
        &r,
        &["build", "--secret", &secret, "-t", "sec", &s(ctx.path())],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = strata_in(
        &r,
        &[
            "run",
            "sec",
            "sh",
            "-c",
            "cat /copy; ls -A /run/secrets 2>&1; ls -A /run 2>&1",
        ],
        None,
    );
    let o = stdout(&out);
    assert!(o.starts_with("s3cr3t"), "{o}{}", stderr(&out));
    assert!(!o.contains("creds\n"), "a mount stub was committed: {o}");
}

#[test]
fn run_refuses_an_environment_variable_without_a_name() {
    for e in ["=x", "="] {
        let out = strata(&["run", "-e", e, "busybox", "true"]);
        fails_with(&out, "invalid environment variable");
        assert!(
            stderr(&out).contains("the name is empty"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn repository_names_longer_than_255_characters_are_refused() {
    let ctx = context("FROM scratch\n");
    let tag = "a".repeat(300);
    let out = strata(&["build", "-t", &tag, &s(ctx.path())]);
    fails_with(&out, "repository name must not be more than 255 characters");
}
