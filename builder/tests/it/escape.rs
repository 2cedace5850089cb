//! Hostile Dockerfiles, stages and base images against the host, end to end, as root: every
//! path-taking step on symlink chains, loops and links out of the root; mount points moved by
//! the step; descriptors, environment and terminal strata was started with. A canary directory
//! outside the state root must keep its contents and times, and its secret must never show up
//! in a step's output or an image.

use crate::support::*;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn base_tar() -> Option<&'static Path> {
    static TAR: OnceLock<Option<PathBuf>> = OnceLock::new();
    base_tar_in(&TAR, "strata-escape-tests")
}

/// A state root with busybox imported, a context `dir/ctx`, and a canary directory on the host.
struct Fx {
    fx: Fixture,
    ctx: PathBuf,
    canary: PathBuf,
    secret: String,
}

deref_to_fixture!(Fx);

/// What the canary holds: path → (kind, size, mtime, ctime).
type Listing = BTreeMap<PathBuf, (u32, u64, i64, i64)>;

impl Fx {
    fn new(name: &str) -> Option<Fx> {
        let tar = base_tar()?;
        let fx = Fixture::new(tar, name);
        let ctx = fx.dir.join("ctx");
        let canary = fx.dir.join("canary");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::create_dir_all(canary.join("b/c")).unwrap();
        std::fs::create_dir_all(canary.join("d")).unwrap();
        std::fs::write(canary.join("b/e"), "").unwrap();
        let secret = format!("canary-{}-{}", name, std::process::id());
        std::fs::write(canary.join("secret"), &secret).unwrap();
        std::fs::write(ctx.join("f"), "context file\n").unwrap();
        fx.import_busybox(tar, None);
        Some(Fx {
            fx,
            ctx,
            canary,
            secret,
        })
    }

    fn dockerfile(&self, text: &str) {
        std::fs::write(
            self.ctx.join("Dockerfile"),
            text.replace("CANARY", &self.canary.to_string_lossy()),
        )
        .unwrap();
    }

    fn build(&self, extra: &[&str]) -> Output {
        let mut args = vec!["build", "--progress", "plain", "--no-cache"];
        args.extend_from_slice(extra);
        let ctx = self.ctx.to_string_lossy().into_owned();
        args.push(&ctx);
        self.strata(&args)
    }

    fn listing(&self) -> Listing {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.canary.clone()];
        while let Some(d) = stack.pop() {
            let m = std::fs::symlink_metadata(&d).unwrap();
            out.insert(d.clone(), (m.mode(), m.size(), m.mtime(), m.ctime()));
            if m.is_dir() {
                for e in std::fs::read_dir(&d).unwrap() {
                    stack.push(e.unwrap().path());
                }
            }
        }
        out
    }

    /// The canary is as it was and its secret is in none of `outputs`.
    fn untouched(&self, before: &Listing, outputs: &[&Output], what: &str) {
        assert_eq!(&self.listing(), before, "{what}: the canary changed");
        for o in outputs {
            let all = format!("{}{}", stdout(o), stderr(o));
            assert!(
                !all.contains(&self.secret),
                "{what}: the host's secret was read:\n{all}"
            );
        }
    }

    /// The image's filesystem as one tar, to search for the secret.
    fn exported(&self, target: &str) -> Option<Vec<u8>> {
        let tar = self.dir.join(format!("{target}.tar"));
        let _ = std::fs::remove_file(&tar);
        let out = self.build(&[
            "--target",
            target,
            "-o",
            &format!("type=tar,dest={}", tar.display()),
        ]);
        out.status.success().then(|| std::fs::read(&tar).unwrap())
    }
}

/// A stage whose root holds a chain of 41 symlinks (one more than the kernel follows), a chain
/// of 40, a short link and a loop, each ending at the canary's host path; targets that use
/// them in every path-taking step.
const HOSTILE: &str = r#"FROM busybox AS evil
RUN i=1; while [ $i -le 40 ]; do ln -s /l$((i+1)) /l$i; i=$((i+1)); done; ln -s CANARY /l41 && \
    i=1; while [ $i -le 39 ]; do ln -s /m$((i+1)) /m$i; i=$((i+1)); done; ln -s CANARY /m40 && \
    ln -s CANARY /short && ln -s ../../../../../../../..CANARY /rel && \
    ln -s /loop2 /loop1 && ln -s /loop1 /loop2

FROM busybox AS bindread
ARG P=/l1
RUN --mount=type=bind,from=evil,source=$P,target=/host sh -c 'cat /host/secret; ls /host; true'

FROM busybox AS bindwrite
ARG P=/l1
RUN --mount=type=bind,from=evil,source=$P,target=/host,rw sh -c 'touch /host/pwned; rm -rf /host/b; true'

FROM busybox AS copyfrom
ARG P=/l1
COPY --from=evil $P/secret /got

FROM evil AS copyinto
ARG P=/l1
COPY f $P/x

FROM evil AS copyintodir
ARG P=/l1
COPY f $P/b/c/

FROM evil AS workdir
ARG P=/l1
WORKDIR $P/d/new

FROM evil AS tmpfs
ARG P=/l1
RUN --mount=type=tmpfs,target=$P/b/c true

FROM evil AS cache
ARG P=/l1
RUN --mount=type=cache,target=$P/b/c true

FROM evil AS bindtarget
ARG P=/l1
RUN --mount=type=bind,source=f,target=$P/f true

FROM evil AS run
ARG P=/l1
RUN echo x > $P/pwned; true
"#;

#[test]
fn symlink_chains_loops_and_links_out_never_reach_the_host() {
    let Some(fx) = Fx::new("escape-chains") else {
        return;
    };
    fx.dockerfile(HOSTILE);
    let before = fx.listing();
    let targets = [
        "bindread",
        "bindwrite",
        "copyfrom",
        "copyinto",
        "copyintodir",
        "workdir",
        "tmpfs",
        "cache",
        "bindtarget",
        "run",
    ];
    for p in ["/l1", "/m1", "/short", "/rel", "/loop1"] {
        for t in targets {
            let what = format!("target {t} through {p}");
            let arg = format!("P={p}");
            let out = fx.build(&["--target", t, "--build-arg", &arg]);
            fx.untouched(&before, &[&out], &what);
            let err = stderr(&out);
            assert!(!err.contains("panicked"), "{what}: {err}");
            if !out.status.success() {
                // A failure names the problem, not strata's internal paths.
                assert!(
                    !err.contains("/proc/self/fd") && !err.contains(&*fx.root.to_string_lossy()),
                    "{what}: the error shows internal paths:\n{err}"
                );
            }
        }
    }
    // The 41-link chain is refused with a clear message.
    let out = fx.build(&["--target", "copyfrom"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("too many levels of symbolic links"),
        "{}",
        stderr(&out)
    );
    // Host files never end up in an image.
    for p in ["/m1", "/short", "/rel"] {
        fx.dockerfile(&HOSTILE.replace("ARG P=/l1", &format!("ARG P={p}")));
        if let Some(tar) = fx.exported("copyfrom") {
            let found = tar
                .windows(fx.secret.len())
                .any(|w| w == fx.secret.as_bytes());
            assert!(!found, "COPY --from through {p} copied the host's file");
        }
    }
    fx.untouched(&before, &[], "export");
}

#[test]
fn a_base_image_with_links_out_cannot_lead_a_copy_or_workdir_outside() {
    let Some(fx) = Fx::new("escape-base") else {
        return;
    };
    fx.dockerfile(HOSTILE);
    let before = fx.listing();
    let out = fx.build(&["--target", "evil", "-t", "evilbase"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for p in ["/l1", "/m1", "/short", "/rel"] {
        fx.dockerfile(&format!(
            "FROM evilbase\nCOPY f {p}/x\nCOPY f {p}/b/c/\nWORKDIR {p}/d/w\nRUN ls {p}/ >/dev/null 2>&1; true\n"
        ));
        let out = fx.build(&[]);
        fx.untouched(&before, &[&out], &format!("FROM evilbase through {p}"));
        // The same chain exported to a directory stays a chain of symlinks there.
        let dest = fx.dir.join("local-out");
        let _ = std::fs::remove_dir_all(&dest);
        let out = fx.build(&["-o", &format!("type=local,dest={}", dest.display())]);
        fx.untouched(&before, &[&out], &format!("export through {p}"));
    }
}

#[test]
fn a_step_that_moves_its_mount_points_cannot_delete_host_files() {
    let Some(fx) = Fx::new("escape-stubs") else {
        return;
    };
    // The runtime makes /a/b/c for the tmpfs; the step puts a symlink to the host in place of
    // /a, whose stubs are removed after the step.
    fx.dockerfile(
        "FROM busybox\nRUN --mount=type=tmpfs,target=/a/b/c sh -c 'mv /a /a_old && ln -s CANARY /a'\n\
         RUN --mount=type=bind,source=f,target=/d/b/e sh -c 'rm -rf /d; ln -s CANARY /d'\n",
    );
    let before = fx.listing();
    let out = fx.build(&["-t", "moved"]);
    assert!(out.status.success(), "{}", stderr(&out));
    fx.untouched(&before, &[&out], "stub removal");
    assert!(fx.canary.join("b/c").is_dir() && fx.canary.join("b/e").is_file());
    // The step's own changes are kept: /a is its symlink.
    let out = fx.strata(&["run", "moved", "readlink", "/a"]);
    assert_eq!(stdout(&out).trim(), fx.canary.to_string_lossy());
}

#[test]
fn descriptors_strata_inherits_reach_no_step_and_no_container() {
    let Some(fx) = Fx::new("escape-fds") else {
        return;
    };
    fx.dockerfile(
        "FROM busybox\nRUN ls /proc/self/fd; cat /proc/self/fd/7; ls /proc/self/fd/8/; \
         echo x > /proc/self/fd/8/pwned; true\n",
    );
    let before = fx.listing();
    let script = format!(
        "exec 7<'{}' 8<'{}'; exec \"$0\" \"$@\"",
        fx.canary.join("secret").display(),
        fx.canary.display()
    );
    let ctx = fx.ctx.to_string_lossy().into_owned();
    let strata = env!("CARGO_BIN_EXE_strata");
    let out = Command::new("sh")
        .args(["-c", &script, strata])
        .args(["build", "--progress", "plain", "--no-cache", &ctx])
        .env("STRATA_ROOT", &fx.root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    fx.untouched(&before, &[&out], "build with fds 7 and 8");
    // `ls /proc/self/fd` lists 0, 1, 2 and its own directory descriptor, nothing else.
    let err = stderr(&out);
    let listed: Vec<&str> = err
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert!(
        !listed.contains(&"7") && !listed.contains(&"8"),
        "{listed:?}\n{err}"
    );
    let out = Command::new("sh")
        .args(["-c", &script, strata])
        .args([
            "run",
            "busybox",
            "sh",
            "-c",
            "ls /proc/self/fd; cat /proc/self/fd/7",
        ])
        .env("STRATA_ROOT", &fx.root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    fx.untouched(&before, &[&out], "run with fds 7 and 8");
    assert!(!out.status.success(), "{}", stdout(&out));
}

#[test]
fn the_containers_pid_1_keeps_the_callers_environment_to_itself() {
    let Some(fx) = Fx::new("escape-env") else {
        return;
    };
    let token = format!("token-{}", std::process::id());
    fx.dockerfile(
        "FROM busybox\nRUN cat /proc/1/environ; echo; ls -l /proc/1/fd; head -c 16 /proc/1/mem; \
         cat /proc/1/cmdline; echo; env; true\n",
    );
    let out = fx
        .cmd(&[
            "build",
            "--progress",
            "plain",
            "--no-cache",
            &fx.ctx.to_string_lossy(),
        ])
        .env("STRATA_TEST_REGISTRY_TOKEN", &token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        !all.contains(&token),
        "the caller's environment leaked:\n{all}"
    );
    // PID 1 is the step itself: it holds descriptors 0–2 and nothing else.
    let fds: Vec<&str> = all
        .lines()
        .filter(|l| l.contains(" -> "))
        .filter_map(|l| l.split(" -> ").next()?.split_whitespace().last())
        .collect();
    assert_eq!(fds, ["0", "1", "2"], "{all}");
    let out = fx
        .cmd(&["run", "busybox", "sh", "-c", "cat /proc/1/environ; env"])
        .env("STRATA_TEST_REGISTRY_TOKEN", &token)
        .output()
        .unwrap();
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains(&token), "{all}");
    // With --init, PID 1 is the init: not dumpable, so even root in the container can read
    // neither its environment nor its descriptors.
    let out = fx
        .cmd(&[
            "run",
            "--init",
            "busybox",
            "sh",
            "-c",
            "cat /proc/1/environ; ls /proc/1/fd; env",
        ])
        .env("STRATA_TEST_REGISTRY_TOKEN", &token)
        .output()
        .unwrap();
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains(&token), "{all}");
    assert!(all.contains("Permission denied"), "{all}");
}

#[test]
fn run_without_t_gives_the_container_no_terminal() {
    let Some(fx) = Fx::new("escape-tty") else {
        return;
    };
    if Command::new("script").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI has util-linux's script"
        );
        eprintln!("skipping: no script(1) to give strata a terminal");
        return;
    }
    // strata on a terminal (script's pty), the container without -t.
    let cmd = format!(
        "STRATA_ROOT='{}' '{}' run busybox sh -c 'test -t 0 || echo stdin-not-a-tty; \
         test -t 1 || echo stdout-not-a-tty; test -t 2 || echo stderr-not-a-tty; \
         ( : </dev/tty ) 2>/dev/null || echo no-controlling-terminal'",
        fx.root.display(),
        env!("CARGO_BIN_EXE_strata")
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = stdout(&out);
    for want in [
        "stdin-not-a-tty",
        "stdout-not-a-tty",
        "stderr-not-a-tty",
        "no-controlling-terminal",
    ] {
        assert!(
            text.contains(want),
            "{want} missing:\n{text}{}",
            stderr(&out)
        );
    }
    // `-i` relays standard input through a pipe.
    let mut child = fx
        .cmd(&["run", "-i", "busybox", "sh", "-c", "read x; echo got-$x"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"line\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out).trim(), "got-line");
}

/// A small deterministic generator (xorshift64*), so a failing case is found again from its
/// seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, v: &'a [String]) -> &'a String {
        &v[self.below(v.len())]
    }
}

/// A random hostile tree as the shell commands that make it: directories, files and symlinks
/// under /h*, the symlinks pointing at the canary (absolute, through `..`, through magic
/// links), at `/`, at each other (chains of 1–100, loops) or nowhere; then a second step that
/// replaces some directories with symlinks. Returns the two scripts and the paths to try.
fn hostile_tree(rng: &mut Rng, canary: &str) -> (String, String, Vec<String>) {
    let mut script = vec!["set -e".to_string()];
    let mut names: Vec<String> = Vec::new();
    let mut dirs: Vec<String> = vec![String::new()];
    let target = |rng: &mut Rng, names: &[String], script: &mut Vec<String>, id: usize| {
        match rng.below(10) {
            0 => canary.to_string(),
            1 => format!("{canary}/b"),
            2 => "/".to_string(),
            3 => format!("../../../../../../..{canary}"),
            4 if !names.is_empty() => names[rng.below(names.len())].clone(),
            5 if !names.is_empty() => {
                let n = &names[rng.below(names.len())];
                format!("../../..{n}")
            }
            6 => {
                // A chain of 1–100 links ending at the canary or the root.
                let k = 1 + rng.below(100);
                let end = if rng.below(2) == 0 { canary } else { "/" };
                script.push(format!(
                    "i=1; while [ $i -lt {k} ]; do ln -s /c{id}_$((i+1)) /c{id}_$i; i=$((i+1)); done; ln -s {end} /c{id}_{k}"
                ));
                format!("/c{id}_1")
            }
            7 => format!("/proc/self/root{canary}"),
            8 => format!("/loop{id}"),
            _ => "/nope/deeper".to_string(),
        }
    };
    for id in 0..14 {
        let parent = dirs[rng.below(dirs.len())].clone();
        let name = format!("{parent}/h{id}");
        match rng.below(3) {
            0 => {
                script.push(format!("mkdir -p {name}"));
                dirs.push(name.clone());
            }
            1 => script.push(format!("echo inside > {name}")),
            _ => {
                let t = target(rng, &names, &mut script, id);
                if t == format!("/loop{id}") {
                    script.push(format!("ln -s /loop{id} /loop{id}"));
                }
                script.push(format!("ln -sfn '{t}' {name}"));
            }
        }
        names.push(name);
    }
    // Directories replaced by symlinks in a later step.
    let mut second = vec!["set -e".to_string()];
    for d in dirs.iter().skip(1) {
        if rng.below(3) == 0 {
            second.push(format!("rm -rf {d} && ln -s {canary} {d}"));
        }
    }
    second.push("true".into());
    let mut paths: Vec<String> = Vec::new();
    for n in &names {
        for suffix in ["", "/x", "/b/c"] {
            paths.push(format!("{n}{suffix}"));
        }
    }
    (script.join("\n"), second.join("\n"), paths)
}

/// Every path-taking operation, one build each, on random hostile trees: a fixed seed and a
/// few trees by default (CI); `STRATA_ESCAPE_TREES=N` and `STRATA_ESCAPE_SEED=S` run more.
#[test]
fn random_hostile_trees_never_reach_the_host() {
    let Some(fx) = Fx::new("escape-random") else {
        return;
    };
    let trees: usize = std::env::var("STRATA_ESCAPE_TREES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let seed: u64 = std::env::var("STRATA_ESCAPE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_0013);
    let canary = fx.canary.to_string_lossy().into_owned();
    let marker = format!("strata-pwned-{}", std::process::id());
    let host_markers = [
        PathBuf::from("/").join(&marker),
        std::env::temp_dir().join(&marker),
        fx.canary.join(&marker),
    ];
    std::fs::write(fx.ctx.join("f"), "context file\n").unwrap();
    std::fs::write(fx.ctx.join("s"), "a secret\n").unwrap();
    let before = fx.listing();
    let mut rng = Rng(seed);
    let ops = [
        "FROM busybox\nRUN --mount=type=bind,from=evil,source=@P@,target=/host sh -c 'cat /host/secret /host/*/secret; true'",
        "FROM busybox\nRUN --mount=type=bind,from=evil,source=@P@,target=/host,rw sh -c 'touch /host/MARK; mkdir -p /host/b/c/MARK; rm -rf /host/d; true'",
        "FROM evil\nRUN --mount=type=bind,source=f,target=@P@ true",
        "FROM evil\nRUN --mount=type=cache,target=@P@ sh -c 'touch @P@/MARK; true'",
        "FROM evil\nRUN --mount=type=tmpfs,target=@P@ true",
        "FROM busybox\nRUN --mount=type=cache,id=c@P@,from=evil,source=@P@,target=/c sh -c 'cat /c/secret; touch /c/MARK; true'",
        "FROM evil\nRUN --mount=type=secret,id=s,target=@P@ true",
        "FROM evil\nCOPY f @P@",
        "FROM evil\nCOPY f @P@/",
        "FROM evil\nADD f.tar @P@/",
        "FROM busybox\nCOPY --from=evil @P@ /got\nCOPY --from=evil @P@/ /got2/",
        "FROM evil\nWORKDIR @P@",
        "FROM evil\nRUN touch @P@/MARK; mkdir -p @P@/MARK; true",
    ];
    // A local archive for ADD: one file and a symlink out.
    let tar_path = fx.ctx.join("f.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "x/MARK", &b"abc"[..]).unwrap();
        b.finish().unwrap();
    }
    let mut cases = 0;
    for tree in 0..trees {
        let (make, replace, paths) = hostile_tree(&mut rng, &canary);
        let evil = format!(
            "FROM busybox AS evil\nRUN <<'EOS'\n{make}\nEOS\nRUN <<'EOS'\n{replace}\nEOS\n"
        );
        for op in ops {
            let p = rng.pick(&paths).clone();
            let text = format!(
                "{evil}\n{}\n",
                op.replace("@P@", &p).replace("MARK", &marker)
            );
            std::fs::write(fx.ctx.join("Dockerfile"), &text).unwrap();
            let what = format!("seed {seed:#x}, tree {tree}, path {p}:\n{text}");
            let out = fx.build(&[]);
            fx.untouched(&before, &[&out], &what);
            for m in &host_markers {
                assert!(!m.exists(), "{what}: {} was created", m.display());
            }
            let err = stderr(&out);
            assert!(!err.contains("panicked"), "{what}{err}");
            if out.status.success() {
                // What the build made, exported to a directory, stays a tree of its own.
                let dest = fx.dir.join("random-out");
                let _ = std::fs::remove_dir_all(&dest);
                let out = fx.build(&["-o", &format!("type=local,dest={}", dest.display())]);
                fx.untouched(&before, &[&out], &format!("export, {what}"));
            } else {
                assert!(
                    !err.contains("/proc/self/fd") && !err.contains(&*fx.root.to_string_lossy()),
                    "{what}: the error shows internal paths:\n{err}"
                );
            }
            cases += 1;
        }
    }
    eprintln!(
        "{cases} hostile cases on {trees} trees (seed {seed:#x}): the host was never reached"
    );
}

#[test]
fn a_container_that_cannot_start_says_why_once() {
    let Some(fx) = Fx::new("escape-setup") else {
        return;
    };
    let out = fx.strata(&["run", "--runtime", "/bin/false", "busybox", "true"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(
        err.matches("the runtime /bin/false exited with status 1 before it started the container")
            .count(),
        1,
        "{err}"
    );
    let out = fx.strata(&["run", "busybox", "/no/such/program"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("the container could not start: starting /no/such/program"));
    // The command's own status is its own.
    let out = fx.strata(&["run", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn copy_errors_name_paths_inside_the_image_not_strata_state() {
    let Some(fx) = Fx::new("escape-messages") else {
        return;
    };
    // A COPY through a dangling symlink makes its target inside the image (as `mkdir -p` in
    // a chroot): it succeeds; the others are errors that must name the image's own paths.
    fx.dockerfile("FROM busybox\nRUN ln -s /nowhere /dangling\nCOPY f /dangling/sub/\n");
    let out = fx.build(&["-t", "dangling"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = fx.strata(&["run", "dangling", "cat", "/nowhere/sub/f"]);
    assert_eq!(stdout(&out), "context file\n", "{}", stderr(&out));
    for (setup, copy, want) in [
        ("ln -s /etc/passwd/x /bad", "COPY f /bad/y", "/bad"),
        ("echo x > /file", "COPY f /file/y", "/file"),
        ("true", "COPY --from=busybox /no/such /x", "/no/such"),
    ] {
        fx.dockerfile(&format!("FROM busybox\nRUN {setup}\n{copy}\n"));
        let out = fx.build(&[]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{copy} succeeded:\n{err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(last.contains(want), "{copy}: {last}");
        for internal in ["/proc/self/fd", &*fx.root.to_string_lossy()] {
            assert!(!err.contains(internal), "{copy}: shows {internal}:\n{err}");
        }
    }
}

#[test]
fn device_nodes_a_step_makes_in_its_mounts_cannot_be_opened() {
    let Some(fx) = Fx::new("escape-nodev") else {
        return;
    };
    // 1,3 is /dev/null: harmless if the test ever fails, and openable by root unless `nodev`.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        fx.ctx.join("null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    fx.dockerfile(
        "FROM busybox AS dev\nRUN mknod /n c 1 3\n\
         FROM busybox AS dev2\nCOPY --from=dev /n /n\nRUN true > /x\n\
         FROM busybox\n\
         RUN --mount=type=cache,id=nd,target=/c sh -c 'rm -f /c/n; mknod /c/n c 1 3; echo x > /c/n && echo OPEN${x}ED-cache; true'\n\
         RUN --mount=type=bind,from=dev,source=/n,target=/m sh -c 'echo x > /m && echo OPEN${x}ED-from; true'\n\
         RUN --mount=type=bind,from=dev2,source=/,target=/s sh -c 'echo x > /s/n && echo OPEN${x}ED-stack; true'\n\
         RUN --mount=type=bind,source=null,target=/ctx sh -c 'echo x > /ctx && echo OPEN${x}ED-context; true'\n\
         RUN --mount=type=cache,id=seeded,from=dev,source=/,target=/d sh -c 'echo x > /d/n && echo OPEN${x}ED-seeded; true'\n",
    );
    let out = fx.build(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains("OPENED-"), "a device node was opened:\n{err}");
    assert!(err.contains("Permission denied"), "{err}");
}

#[test]
fn add_of_a_git_url_sends_none_of_the_hosts_git_credentials() {
    let Some(fx) = Fx::new("escape-git") else {
        return;
    };
    use std::io::{Read, Write};
    // A server that asks for credentials and records what it is sent.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let log = seen.clone();
    listener.set_nonblocking(false).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(8) {
            let Ok(mut c) = conn else { break };
            let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut buf = vec![0u8; 16 * 1024];
            let n = c.read(&mut buf).unwrap_or(0);
            log.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = c.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    // The host's git is set up to answer any server with a password.
    let home = fx.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".gitconfig"),
        "[credential]\n\thelper = \"!f() { echo username=ci-user; echo password=host-secret-token; }; f\"\n",
    )
    .unwrap();
    fx.dockerfile(&format!(
        "FROM busybox\nADD http://127.0.0.1:{port}/org/repo.git /src\n"
    ));
    let out = fx
        .cmd(&["build", "--progress", "plain", &fx.ctx.to_string_lossy()])
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let requests = seen.lock().unwrap().clone();
    assert!(requests.contains("GET /org/repo.git"), "{requests}");
    assert!(
        !requests.to_ascii_lowercase().contains("authorization:"),
        "git sent the host's credentials:\n{requests}"
    );
}
