//! The process a RUN step and `strata run` start is the one BuildKit and `docker run` give:
//! the command is PID 1 (an init in between only with `--init`), signals reach it as runc
//! delivers them, and USER gives the ids and groups BuildKit's user lookup gives.

use crate::support::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A root with busybox, and `groups`: busybox plus `audio` (app) and `video` (app, root) in
/// /etc/group.
fn root() -> Option<&'static PathBuf> {
    static ROOT: OnceLock<Option<PathBuf>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let tar = busybox_tar("strata-process-tests")?;
        let dir = tar.parent()?.join("root");
        let _ = std::fs::remove_dir_all(&dir);
        let ok = |args: &[&str]| {
            let o = strata_in(&dir, args);
            assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        };
        ok(&["import", &tar.to_string_lossy(), "busybox"]);
        let ctx = tar.parent()?.join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            "FROM busybox\n\
             RUN echo 'audio:x:29:app' >> /etc/group && echo 'video:x:44:app,root' >> /etc/group\n\
             RUN echo $$ > /run-pid\n\
             USER app\nRUN id -G > /tmp/g-app\n\
             USER 1000\nRUN id -G > /tmp/g-1000\n\
             USER 1000:1000\nRUN id -G > /tmp/g-1000-1000\n\
             USER app:audio\nRUN id -u > /tmp/u-app-audio && id -G > /tmp/g-app-audio\n\
             USER 4242\nRUN id -G > /tmp/g-4242 2>&1 || true\n\
             USER root\nRUN id -G > /tmp/g-root\n",
        )
        .unwrap();
        ok(&["build", "-q", "-t", "groups", &ctx.to_string_lossy()]);
        Some(dir)
    })
    .as_ref()
}

fn run(args: &[&str]) -> Option<String> {
    let o = strata_in(root()?, args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    Some(stdout(&o))
}

#[test]
fn the_command_is_pid_1_unless_run_asks_for_an_init() {
    // (`; true`: the shell does not exec its last command, so PID 1 is still the shell.)
    let Some(out) = run(&[
        "run",
        "busybox",
        "sh",
        "-c",
        "echo $$; cat /proc/1/cmdline; true",
    ]) else {
        return;
    };
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1"));
    assert!(lines.next().unwrap().starts_with("sh\0-c"), "{out:?}");
    // A RUN step too.
    assert_eq!(run(&["run", "groups", "cat", "/run-pid"]).unwrap(), "1\n");
    // --init: the command is the init's child.
    let out = run(&[
        "run",
        "--init",
        "busybox",
        "sh",
        "-c",
        "echo $$; cat /proc/1/cmdline",
    ])
    .unwrap();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("2"));
    assert!(lines.next().unwrap().contains("__init"), "{out:?}");
}

#[test]
fn signals_reach_pid_1_as_runc_delivers_them() {
    let Some(root) = root() else {
        return;
    };
    // From inside, a PID 1 without a handler does not get SIGTERM; with one, it does.
    let out = run(&["run", "busybox", "sh", "-c", "kill -TERM $$; echo survived"]).unwrap();
    assert_eq!(out, "survived\n");
    // From outside: strata passes SIGTERM on to PID 1, whose handler decides.
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "run",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got TERM; exit 5' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .env("STRATA_ROOT", root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    assert_eq!(&first, b"ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(rest, "got TERM\n");
    assert_eq!(status.code(), Some(5));
}

#[test]
fn user_gives_the_ids_and_groups_buildkit_gives() {
    let Some(_) = root() else {
        return;
    };
    // Through RUN (BuildKit's rules), then through `strata run -u` (the same rules).
    for (file, want) in [
        ("/tmp/g-app", "1000 29 44"),
        ("/tmp/g-1000", "1000 29 44"),
        ("/tmp/g-1000-1000", "1000"),
        ("/tmp/u-app-audio", "1000"),
        ("/tmp/g-app-audio", "29"),
        ("/tmp/g-4242", "0"),
        ("/tmp/g-root", "0 44"),
    ] {
        let got = run(&["run", "groups", "cat", file]).unwrap();
        assert_eq!(got.trim(), want, "{file}");
    }
    for (user, want) in [
        ("app", "1000 29 44"),
        ("1000", "1000 29 44"),
        ("1000:1000", "1000"),
        ("app:audio", "29"),
        ("app:44", "44"),
        ("4242", "0"),
        ("4242:4343", "4343"),
    ] {
        let got = run(&["run", "-u", user, "groups", "id", "-G"]).unwrap();
        assert_eq!(got.trim(), want, "-u {user}");
    }
    // Exactly those ids, from the kernel's view.
    let status = run(&[
        "run",
        "-u",
        "1000:1000",
        "groups",
        "grep",
        "-E",
        "^(Uid|Gid|Groups)",
        "/proc/self/status",
    ])
    .unwrap();
    let groups = status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap();
    assert_eq!(groups.trim(), "", "{status}");
    assert!(status.contains("Uid:\t1000\t1000\t1000\t1000"), "{status}");
    assert!(status.contains("Gid:\t1000\t1000\t1000\t1000"), "{status}");
}
