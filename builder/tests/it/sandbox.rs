//! `strata run`: the sandbox, end to end, as root, with the built-in runtime and with runc.
//! The base image is made offline from the host's static busybox (testdata/base-image.sh).

use crate::support::*;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// A state root with `busybox` imported, shared by the tests (made once).
fn root() -> Option<&'static Path> {
    static ROOT: OnceLock<Option<PathBuf>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let tar = busybox_tar("strata-sandbox-tests")?;
        let root = tar.parent()?.join("root");
        import_busybox(&tar, &root);
        Some(root)
    })
    .as_deref()
}

fn import_busybox(tar: &Path, root: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["import", &tar.to_string_lossy(), "busybox"])
        .env("STRATA_ROOT", root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A root of its own (for tests that look at the whole root while others run).
fn own_root(name: &str) -> Option<PathBuf> {
    let shared = root()?;
    let dir = shared.parent()?;
    let r = dir.join(name);
    let _ = std::fs::remove_dir_all(&r);
    import_busybox(&dir.join("busybox.tar"), &r);
    Some(r)
}

fn runtimes() -> Vec<&'static str> {
    static RUNTIMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    RUNTIMES
        .get_or_init(|| {
            let mut v = vec!["builtin"];
            if Command::new("runc").arg("--version").output().is_ok() {
                v.push("runc");
            } else {
                assert!(std::env::var_os("CI").is_none(), "CI installs runc");
                eprintln!("runc is not installed: testing the built-in runtime only");
            }
            // crun refuses hosts whose cgroups are in hybrid mode (as this project's machines
            // are): test it only where it can run a container.
            if Command::new("crun").arg("--version").output().is_ok()
                && let Some(root) = root()
            {
                {
                    let out = sh(root, "crun", "true");
                    if out.status.success() {
                        v.push("crun");
                    } else {
                        // tidy: a partial skip (the runtimes that can run here are tested).
                        eprintln!(
                            "skipping crun: it cannot run containers here: {}",
                            stderr(&out).trim()
                        );
                    }
                }
            }
            v
        })
        .clone()
}

fn run(root: &Path, runtime: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--runtime")
        .arg(runtime)
        .arg("run")
        .arg("--rm")
        .args(args)
        .env("STRATA_ROOT", root)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn sh(root: &Path, runtime: &str, script: &str) -> Output {
    run(root, runtime, &["busybox", "sh", "-c", script])
}

#[test]
fn exit_codes_signals_and_output() {
    let Some(root) = root() else { return };
    for rt in runtimes() {
        let out = sh(root, rt, "echo out; echo err >&2; exit 7");
        assert_eq!(out.status.code(), Some(7), "{rt}: {}", stderr(&out));
        assert_eq!(stdout(&out), "out\n", "{rt}");
        assert!(stderr(&out).contains("err"), "{rt}");
        // A signal that kills the process comes back as 128+N. The command is PID 1 of its
        // namespace with either runtime, so SIGTERM without a handler does not end it, as in
        // Docker and BuildKit.
        let out = sh(root, rt, "sleep 100 & kill -TERM $!; wait $!; exit $?");
        assert_eq!(out.status.code(), Some(143), "{rt}");
        let out = sh(root, rt, "kill -TERM $$; echo alive");
        assert_eq!(out.status.code(), Some(0), "{rt}");
        assert_eq!(stdout(&out), "alive\n", "{rt}");
        let out = run(root, rt, &["busybox", "no-such-command"]);
        assert_ne!(out.status.code(), Some(0), "{rt}");
    }
}

#[test]
fn users_groups_env_and_workdir() {
    let Some(root) = root() else { return };
    for rt in runtimes() {
        let out = run(root, rt, &["-u", "app", "busybox", "id"]);
        // BuildKit's rules: the passwd entry's ids, and the groups /etc/group lists the name
        // in (none here), not the primary group again.
        assert_eq!(
            stdout(&out),
            "uid=1000(app) gid=1000(app)\n",
            "{rt}: {}",
            stderr(&out)
        );
        let out = run(root, rt, &["-u", "1000:0", "busybox", "id", "-g"]);
        assert_eq!(stdout(&out).trim(), "0", "{rt}");
        let out = run(root, rt, &["-u", "ghost", "busybox", "id"]);
        assert_ne!(out.status.code(), Some(0), "{rt}");
        assert!(
            stderr(&out).contains("unable to find user ghost"),
            "{rt}: {}",
            stderr(&out)
        );
        let out = run(
            root,
            rt,
            &[
                "-e",
                "FOO=bar baz",
                "-w",
                "/srv/work",
                "busybox",
                "sh",
                "-c",
                "echo \"$FOO|$(pwd)|$HOME|$PATH\"",
            ],
        );
        assert_eq!(
            stdout(&out),
            "bar baz|/srv/work|/root|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
            "{rt}: {}",
            stderr(&out)
        );
        // A non-root user has no effective capabilities.
        let out = run(
            root,
            rt,
            &[
                "-u",
                "app",
                "busybox",
                "grep",
                "CapEff",
                "/proc/self/status",
            ],
        );
        assert_eq!(stdout(&out), "CapEff:\t0000000000000000\n", "{rt}");
    }
}

#[test]
fn isolation_docker_defaults() {
    let Some(root) = root() else { return };
    for rt in runtimes() {
        let out = sh(
            root,
            rt,
            "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status",
        );
        assert_eq!(
            stdout(&out),
            "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t0\nSeccomp:\t2\n",
            "{rt}: {}",
            stderr(&out)
        );
        // Only the container's processes are visible.
        let out = sh(root, rt, "ls /proc | grep -c '^[0-9]'");
        let n: u32 = stdout(&out).trim().parse().unwrap_or(99);
        assert!(n <= 4, "{rt}: {n} processes visible");
        // The hostname is the container's; /etc files are generated.
        let out = sh(
            root,
            rt,
            "hostname; cat /etc/hostname; grep -c localhost /etc/hosts",
        );
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0].len(), 12, "{rt}: {lines:?}");
        assert_eq!(lines[0], lines[1], "{rt}");
        // /dev has only the default devices.
        let out = sh(root, rt, "ls /dev | sort | tr '\\n' ' '");
        for d in [
            "full", "null", "random", "tty", "urandom", "zero", "pts", "shm",
        ] {
            assert!(
                stdout(&out).split(' ').any(|x| x == d),
                "{rt}: /dev lacks {d}: {}",
                stdout(&out)
            );
        }
        assert!(
            !stdout(&out).contains("sda") && !stdout(&out).contains("vda"),
            "{rt}: block devices visible"
        );
    }
}

#[test]
fn escape_attempts_fail() {
    let Some(root) = root() else { return };
    let attempts = [
        ("mount", "mount -t tmpfs none /mnt"),
        ("user namespace", "unshare -U true"),
        ("other namespaces", "unshare -m true"),
        ("write /proc/sys", "echo evil > /proc/sys/kernel/hostname"),
        ("hostname", "hostname evil"),
        ("load a module", "insmod /nonexistent.ko"),
        (
            "raw block device",
            "mknod /tmp/vda b 253 0 && head -c 1 /tmp/vda",
        ),
        (
            "reach the host root through /proc/1/root",
            "ls /proc/1/root/work",
        ),
        ("sysrq", "echo b > /proc/sysrq-trigger"),
        ("remount the root read-only", "mount -o remount,ro /"),
    ];
    for rt in runtimes() {
        for (what, script) in attempts {
            let out = sh(root, rt, &format!("{script} 2>/dev/null"));
            assert_ne!(
                out.status.code(),
                Some(0),
                "{rt}: {what} succeeded: {}",
                stdout(&out)
            );
        }
        // Host files are not visible.
        let marker = std::env::temp_dir().join("strata-host-marker");
        std::fs::write(&marker, "host").unwrap();
        let out = sh(root, rt, &format!("cat {} 2>/dev/null", marker.display()));
        assert_ne!(stdout(&out), "host", "{rt}");
    }
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(host_name.trim(), "evil");
}

#[test]
fn network_modes() {
    let Some(root) = root() else { return };
    for rt in runtimes() {
        let out = run(
            root,
            rt,
            &[
                "--network",
                "none",
                "busybox",
                "sh",
                "-c",
                "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
            ],
        );
        assert_eq!(stdout(&out), "lo\n", "{rt}: {}", stderr(&out));
        let out = run(
            root,
            rt,
            &[
                "--network",
                "none",
                "busybox",
                "sh",
                "-c",
                "cat /sys/class/net/lo/operstate /sys/class/net/lo/flags",
            ],
        );
        assert!(
            stdout(&out).contains("0x9"),
            "{rt}: loopback not up: {}",
            stdout(&out)
        );
        let host_ifaces = std::fs::read_to_string("/proc/net/dev")
            .unwrap()
            .lines()
            .count();
        let out = run(
            root,
            rt,
            &["--network", "host", "busybox", "cat", "/proc/net/dev"],
        );
        assert_eq!(stdout(&out).lines().count(), host_ifaces, "{rt}");
    }
}

#[test]
fn stdin_reaches_the_process() {
    let Some(root) = root() else { return };
    for rt in runtimes() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args([
                "--runtime",
                rt,
                "run",
                "--rm",
                "-i",
                "busybox",
                "sh",
                "-c",
                "read x; echo got:$x",
            ])
            .env("STRATA_ROOT", root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(stdout(&out), "got:hello\n", "{rt}");
    }
}

fn leftovers(root: &Path) -> (Vec<String>, Vec<String>) {
    let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&*root.to_string_lossy()))
        .map(str::to_string)
        .collect();
    let mut procs = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.starts_with("sleep 3131") {
                procs.push(cmd);
            }
        }
    }
    (mounts, procs)
}

/// Whether a shim of a container under `root` still runs.
fn shims_alive(root: &Path) -> bool {
    let root = root.to_string_lossy();
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
            let c = String::from_utf8_lossy(&c);
            c.contains("__shim") && c.contains(&*root)
        })
    })
}

/// Waits up to 10 s for `done`.
fn wait_until(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Starts `strata run` of a long sleep (in a process group of its own when `group`, under a
/// PID 1 that exits on SIGINT, as a program that honours Ctrl-C does) and waits until the
/// sleep runs.
fn start_probe(root: &Path, rt: &str, group: bool) -> std::process::Child {
    // SIGINT's default action, whatever this test inherited: a background job of a
    // non-interactive shell starts with SIGINT ignored, and the Ctrl-C below would do nothing
    // (the test would wait forever).
    let mut cmd = Command::new("env");
    cmd.args(["--default-signal=INT", env!("CARGO_BIN_EXE_strata")]);
    cmd.args([
        "--runtime",
        rt,
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        if group {
            "trap 'exit 130' INT; sleep 3131 & wait"
        } else {
            "exec sleep 3131"
        },
    ])
    .env("STRATA_ROOT", root)
    .stdout(Stdio::null());
    if group {
        cmd.process_group(0);
    }
    let child = cmd.spawn().unwrap();
    wait_until(|| !leftovers(root).1.is_empty());
    assert!(
        !leftovers(root).1.is_empty(),
        "{rt}: the probe never started"
    );
    child
}

fn assert_nothing_left(root: &Path, rt: &str, after: &str) {
    wait_until(|| leftovers(root).1.is_empty());
    let (mounts, procs) = leftovers(root);
    assert!(
        procs.is_empty(),
        "{rt}: processes left after {after}: {procs:?}"
    );
    assert!(
        mounts.is_empty(),
        "{rt}: mounts left after {after}: {mounts:?}"
    );
}

#[test]
fn nothing_is_left_after_exit_failure_or_sigkill() {
    let Some(root) = own_root("leak-root") else {
        return;
    };
    let root = root.as_path();
    for rt in runtimes() {
        sh(root, rt, "true");
        sh(root, rt, "exit 3");
        // SIGKILL strata while the container runs.
        let mut child = start_probe(root, rt, false);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_nothing_left(root, rt, "SIGKILL");
        // Ctrl-C: SIGINT to the whole process group, as a terminal sends it; it reaches PID 1
        // (as with docker run), which exits, and the container goes with it.
        let child = start_probe(root, rt, true);
        rustix::process::kill_process_group(
            rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
            rustix::process::Signal::INT,
        )
        .unwrap();
        let _ = child.wait_with_output();
        assert_nothing_left(root, rt, "Ctrl-C");
        // The shims finish tearing down (with runc: `runc delete`), then the next run removes
        // the killed containers' bundles.
        wait_until(|| !shims_alive(root));
        assert!(!shims_alive(root), "{rt}: a shim outlived strata");
        sh(root, rt, "true");
        assert_eq!(
            std::fs::read_dir(root.join("containers")).unwrap().count(),
            0,
            "{rt}: stale bundle left"
        );
    }
}

#[test]
fn the_writable_layer_is_thrown_away() {
    let Some(root) = root() else { return };
    for rt in runtimes() {
        let out = sh(root, rt, "echo x > /etc/written && cat /etc/written");
        assert_eq!(stdout(&out), "x\n", "{rt}: {}", stderr(&out));
        let out = sh(root, rt, "cat /etc/written");
        assert_ne!(out.status.code(), Some(0), "{rt}: the write survived");
    }
    // The shared layer itself was never touched.
    let snaps: Vec<PathBuf> = std::fs::read_dir(root.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(snaps.iter().all(|s| !s.join("etc/written").exists()));
}

#[test]
fn a_pseudo_terminal_with_t() {
    let Some(root) = root() else { return };
    // Run `strata run -t` on a pty of our own (python's pty module), type into it, read back.
    let script = r#"
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
out = b""
os.write(fd, b"echo typed-$((40+2))\r")
deadline = time.time() + 20
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.5)
    if r:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    for rt in runtimes() {
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(env!("CARGO_BIN_EXE_strata"))
            .args([
                "--runtime",
                rt,
                "run",
                "--rm",
                "-t",
                "busybox",
                "sh",
                "-c",
                "tty; read line; eval \"$line\"; exit 5",
            ])
            .env("STRATA_ROOT", root)
            .output()
            .unwrap();
        let s = stdout(&out);
        assert!(
            s.contains("/dev/pts/0"),
            "{rt}: no pty: {s:?} {}",
            stderr(&out)
        );
        assert!(s.contains("typed-42"), "{rt}: input not relayed: {s:?}");
        assert_eq!(out.status.code(), Some(5), "{rt}: {s:?}");
    }
}

#[test]
fn the_copying_snapshotter() {
    let Some(root) = root() else { return };
    let config = root.parent().unwrap().join("native.toml");
    std::fs::write(&config, "snapshotter = \"native\"\n").unwrap();
    let run_native = |script: &str| {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--config")
            .arg(&config)
            .args(["run", "--rm", "busybox", "sh", "-c", script])
            .env("STRATA_ROOT", root)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run_native(
        "awk '$5==\"/\"' /proc/self/mountinfo | wc -l; awk '$5==\"/\"' /proc/self/mountinfo | grep -c overlay; echo x > /etc/w; cat /etc/w",
    );
    assert_eq!(stdout(&out), "1\n0\nx\n", "{}", stderr(&out));
    let out = run_native("cat /etc/w");
    assert_ne!(out.status.code(), Some(0), "the write survived");
    let out = run_native(
        "mknod /tmp/disk b $(awk 'NR==3{print $1, $2}' /proc/partitions) && head -c 1 /tmp/disk",
    );
    assert_ne!(
        out.status.code(),
        Some(0),
        "a raw block device could be read"
    );
    let out = run_native("id -un; ls /bin/sh");
    assert_eq!(stdout(&out), "root\n/bin/sh\n");
}

#[test]
fn a_stack_deeper_than_mount_options_allow() {
    // 150 layers on top of busybox: their lowerdir list is far longer than one page of mount
    // options, so the overlay is assembled with the new mount API (`lowerdir+`).
    let Some(shared) = root() else { return };
    let root = shared.parent().unwrap().join("deep-root");
    let _ = std::fs::remove_dir_all(&root);
    let tar = shared.parent().unwrap().join("busybox.tar");
    let mut store = strata_cache::images::ImageStore::open(&root).unwrap();
    let fs = strata_cache::sys::RealFs;
    let opts = strata_cache::unpack::UnpackOptions::default();
    let base = store
        .import_layer(std::fs::File::open(&tar).unwrap(), &fs, &opts)
        .unwrap();
    let mut diff_ids = vec![base.diff_id];
    for i in 0..150 {
        let mut b = tar::Builder::new(Vec::new());
        let data = format!("{i}\n");
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, format!("layers/l{i:03}"), data.as_bytes())
            .unwrap();
        // Each layer also overwrites the same file: the top one must win.
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, "top", data.as_bytes()).unwrap();
        let l = store
            .import_layer(&b.into_inner().unwrap()[..], &fs, &opts)
            .unwrap();
        diff_ids.push(l.diff_id);
    }
    let config = strata_cache::images::ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        rootfs: strata_cache::images::RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        ..Default::default()
    };
    store
        .put_image(&config, &["docker.io/library/deep:latest".into()], 0)
        .unwrap();
    drop(store);
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "run",
            "--rm",
            "deep",
            "sh",
            "-c",
            "ls /layers | wc -l; cat /top",
        ])
        .env("STRATA_ROOT", &root)
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "150\n149\n", "{}", stderr(&out));
}

#[test]
fn the_writable_layer_becomes_a_snapshot() {
    // What a RUN step needs: after the process ends, the upper directory is its diff, moved
    // (not copied) into the snapshots, without the mount points the runtime created.
    let Some(shared) = root() else { return };
    let root = shared.parent().unwrap().join("commit-root");
    let _ = std::fs::remove_dir_all(&root);
    import_busybox(&shared.parent().unwrap().join("busybox.tar"), &root);
    let mut store = strata_cache::images::ImageStore::open(&root).unwrap();
    let img = store.image("docker.io/library/busybox:latest").unwrap();
    let lower: Vec<PathBuf> = img
        .record
        .layers
        .iter()
        .rev()
        .map(|d| store.snapshot_dir(d))
        .collect();
    let req = strata_executor::RunRequest {
        lower,
        args: vec![
            "sh".into(),
            "-c".into(),
            "echo new > /etc/new && rm /etc/group && mkdir -p /srv/a".into(),
        ],
        env: vec![],
        cwd: "/".into(),
        user: String::new(),
        hostname: "h".into(),
        network: strata_executor::spec::Network::None,
        terminal: false,
        privileged: false,
        init: false,
        copy_layers: false,
        mounts: vec![],
        secret_env: vec![],
    };
    let bundle = root.join("containers").join("test-commit");
    strata_executor::prepare_bundle(&bundle, &req).unwrap();
    let code = strata_executor::run_bundle_with(
        Path::new(env!("CARGO_BIN_EXE_strata")),
        &bundle,
        "test-commit",
        &strata_executor::init::Runtime::Builtin,
        strata_executor::Stdio::Pipes { stdin: false },
    )
    .unwrap();
    assert_eq!(code, 0);
    let layer = strata_executor::commit_upper(&bundle, &mut store, None)
        .unwrap()
        .expect("the step changed files");
    let snap = store.snapshot_dir(&layer.diff_id);
    assert_eq!(
        std::fs::read_to_string(snap.join("etc/new")).unwrap(),
        "new\n"
    );
    let wh = std::fs::symlink_metadata(snap.join("etc/group")).unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "the deleted file is a whiteout"
    );
    assert!(snap.join("srv/a").is_dir());
    for stub in [
        "etc/hosts",
        "etc/resolv.conf",
        "etc/hostname",
        "dev/pts",
        "dev/shm",
        "dev/mqueue",
    ] {
        assert!(
            std::fs::symlink_metadata(snap.join(stub)).is_err(),
            "{stub} was left in the layer"
        );
    }
    assert!(!bundle.join("upper").exists(), "moved, not copied");
    assert!(store.meta.layer(&layer.diff_id).unwrap().is_some());
    // Only what the step changed: not /dev, /proc or /sys, copied up to hold mount points.
    let top: Vec<String> = std::fs::read_dir(&snap)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut top = top;
    top.sort();
    assert_eq!(top, vec!["etc", "srv"]);
}
