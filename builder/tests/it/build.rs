//! `strata build`, end to end, as root, on a busybox base image made offline.

use crate::support::*;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The busybox base tarball (made once), or `None` when the tests cannot run here.
fn base_tar() -> Option<&'static Path> {
    static TAR: OnceLock<Option<PathBuf>> = OnceLock::new();
    base_tar_in(&TAR, "strata-build-tests")
}

/// A state root with busybox imported, and an empty context directory `dir/ctx`.
struct Fx {
    fx: Fixture,
    ctx: PathBuf,
}

deref_to_fixture!(Fx);

impl Fx {
    fn new(name: &str) -> Option<Fx> {
        let fx = Fixture::with_busybox(base_tar()?, name);
        let ctx = fx.dir.join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        Some(Fx { fx, ctx })
    }

    fn write(&self, path: &str, content: &str) {
        let p = self.ctx.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// `strata build --progress plain` with extra arguments; the context is the fixture's.
    fn build(&self, extra: &[&str]) -> Output {
        let mut args = vec!["build", "--progress", "plain"];
        args.extend_from_slice(extra);
        let ctx = self.ctx.to_string_lossy().into_owned();
        args.push(&ctx);
        self.strata(&args)
    }

    fn run(&self, image: &str, script: &str) -> String {
        let out = self.strata(&["run", "--rm", image, "sh", "-c", script]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    }
}

/// The steps a plain progress log shows as cached, and those it ran (`#N DONE`), by name.
fn steps(out: &Output) -> (Vec<String>, Vec<String>) {
    let err = stderr(out);
    let mut names = std::collections::HashMap::new();
    let (mut cached, mut ran) = (Vec::new(), Vec::new());
    for l in err.lines() {
        let Some(rest) = l.strip_prefix('#') else {
            continue;
        };
        let Some((n, text)) = rest.split_once(' ') else {
            continue;
        };
        if text.starts_with('[') && !names.contains_key(n) {
            names.insert(n.to_string(), text.to_string());
        } else if text == "CACHED" {
            cached.push(names.get(n).cloned().unwrap_or_default());
        } else if text.starts_with("DONE")
            && let Some(name) = names.get(n)
            && !name.starts_with("[internal]")
            && !name.contains(" FROM ")
        {
            ran.push(name.clone());
        }
    }
    (cached, ran)
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "build failed:\n{}\n{}",
        stdout(out),
        stderr(out)
    );
}

fn image_id(out: &Output) -> String {
    stdout(out).trim().to_string()
}

#[test]
fn multi_stage_with_copy_from_a_stage_and_an_image() {
    let Some(fx) = Fx::new("multi") else { return };
    fx.write(
        "Dockerfile",
        r#"FROM busybox AS build
WORKDIR /src
COPY hello.txt ./
RUN tr a-z A-Z < hello.txt > /upper.txt && echo built

FROM busybox AS other
RUN echo from-other > /other.txt

FROM scratch
COPY --from=busybox /bin/busybox /bin/busybox
COPY --from=build /upper.txt /data/
COPY --from=other /other.txt /data/other.txt
ENV GREETING=hi
WORKDIR /data
CMD ["/bin/busybox", "cat", "upper.txt"]
"#,
    );
    fx.write("hello.txt", "hello strata\n");
    let out = fx.build(&["-t", "multi"]);
    ok(&out);
    assert!(stderr(&out).contains("built"), "{}", stderr(&out));
    let out = fx.strata(&["run", "--rm", "multi"]);
    assert_eq!(stdout(&out), "HELLO STRATA\n", "{}", stderr(&out));
    let out = fx.strata(&["run", "--rm", "multi", "/bin/busybox", "cat", "other.txt"]);
    assert_eq!(stdout(&out), "from-other\n");
    // The image: three COPY layers and a WORKDIR that changed nothing (the directory exists).
    let out = fx.strata(&["inspect", "multi"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let img = &v[0];
    assert_eq!(img["Config"]["WorkingDir"], "/data");
    assert_eq!(img["Config"]["Env"][1], "GREETING=hi");
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 3);
    let hist = img["History"].as_array().unwrap();
    let with_layers = hist.iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(with_layers, 3, "{hist:#?}");
}

#[test]
fn unneeded_failing_stage_never_runs_and_failures_name_the_line() {
    let Some(fx) = Fx::new("fail") else { return };
    fx.write(
        "Dockerfile",
        "FROM busybox AS broken\nRUN echo should-not-run && exit 1\n\nFROM busybox AS good\nRUN echo fine > /ok\n\nFROM good AS bad\nRUN echo line-one && echo line-two >&2 && exit 7\n",
    );
    let out = fx.build(&["--target", "good", "-t", "good"]);
    ok(&out);
    assert!(!stderr(&out).contains("should-not-run"));
    let out = fx.build(&["--target", "bad"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(":8\n"), "names Dockerfile line 8: {err}");
    assert!(err.contains(">>> RUN echo line-one"), "{err}");
    assert!(
        err.contains("line-one") && err.contains("line-two"),
        "{err}"
    );
    assert!(err.contains("exit code: 7"), "{err}");
}

#[test]
fn cache_hits_and_misses_follow_content() {
    let Some(fx) = Fx::new("cache") else { return };
    fx.write(
        "Dockerfile",
        "FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /a.copy\nCOPY b.txt /b.txt\nRUN cat /b.txt > /b.copy\nCOPY . /all/\n",
    );
    fx.write(".dockerignore", "*.log\n");
    fx.write("a.txt", "a");
    fx.write("b.txt", "b");
    fx.write("x.log", "ignored");
    let first = fx.build(&["-t", "c"]);
    ok(&first);
    assert_eq!(steps(&first).1.len(), 5, "{}", stderr(&first));
    // Unchanged: everything is cached, and the image is the same.
    let again = fx.build(&["-t", "c"]);
    ok(&again);
    assert_eq!(steps(&again).1, Vec::<String>::new(), "{}", stderr(&again));
    assert_eq!(image_id(&first), image_id(&again));
    // An mtime-only change and a change to an ignored file miss nothing.
    let b = fx.ctx.join("b.txt");
    let f = std::fs::File::options().write(true).open(&b).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(100))
        .unwrap();
    fx.write("x.log", "changed but ignored");
    let touched = fx.build(&["-t", "c"]);
    ok(&touched);
    assert_eq!(
        steps(&touched).1,
        Vec::<String>::new(),
        "{}",
        stderr(&touched)
    );
    assert_eq!(image_id(&first), image_id(&touched));
    // A content change misses exactly from the step that reads it.
    fx.write("b.txt", "B");
    let changed = fx.build(&["-t", "c"]);
    ok(&changed);
    let (cached, ran) = steps(&changed);
    assert_eq!(
        ran,
        vec![
            "[4/6] COPY b.txt /b.txt",
            "[5/6] RUN cat /b.txt > /b.copy",
            "[6/6] COPY . /all/"
        ],
        "{}",
        stderr(&changed)
    );
    assert_eq!(cached, vec!["[3/6] RUN cat /a.txt > /a.copy"]);
    assert_eq!(
        fx.run("c", "cat /b.copy /all/b.txt; ls -A /all"),
        "BB.dockerignore\nDockerfile\na.txt\nb.txt\n"
    );
    // A new file only `COPY .` reads misses only that step.
    fx.write("c.txt", "c");
    let added = fx.build(&["-t", "c"]);
    ok(&added);
    assert_eq!(
        steps(&added).1,
        vec!["[6/6] COPY . /all/"],
        "{}",
        stderr(&added)
    );
    // --no-cache runs everything again.
    let nocache = fx.build(&["--no-cache", "-t", "c"]);
    ok(&nocache);
    assert_eq!(steps(&nocache).1.len(), 5, "{}", stderr(&nocache));
}

#[test]
fn build_args_are_part_of_the_key() {
    let Some(fx) = Fx::new("args") else { return };
    fx.write(
        "Dockerfile",
        "FROM busybox\nARG FLAVOR=plain\nRUN echo unrelated > /u\nRUN echo $FLAVOR > /flavor\n",
    );
    let a = fx.build(&["-t", "f"]);
    ok(&a);
    assert_eq!(fx.run("f", "cat /flavor"), "plain\n");
    let b = fx.build(&["--build-arg", "FLAVOR=spicy", "-t", "f"]);
    ok(&b);
    assert_eq!(fx.run("f", "cat /flavor"), "spicy\n");
    // BuildKit: a declared ARG is in the environment of every later RUN, so both miss.
    assert_eq!(steps(&b).1.len(), 2, "{}", stderr(&b));
    let c = fx.build(&["--build-arg", "FLAVOR=spicy", "-t", "f"]);
    ok(&c);
    assert!(steps(&c).1.is_empty(), "{}", stderr(&c));
}

#[test]
fn independent_stages_run_in_parallel() {
    let Some(fx) = Fx::new("parallel") else {
        return;
    };
    fx.write(
        "Dockerfile",
        "FROM busybox AS a\nRUN cut -d' ' -f1 /proc/uptime > /a && sleep 1 && cut -d' ' -f1 /proc/uptime >> /a\n\nFROM busybox AS b\nRUN cut -d' ' -f1 /proc/uptime > /b && sleep 1 && cut -d' ' -f1 /proc/uptime >> /b\n\nFROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
    );
    let t = Instant::now();
    let out = fx.build(&["--max-parallelism", "2", "-t", "p"]);
    let took = t.elapsed();
    ok(&out);
    assert!(
        took < Duration::from_millis(1900),
        "two 1 s stages took {took:?}: they did not run at the same time"
    );
    // The two steps' running times (from the kernel's uptime) overlap.
    let times = |f: &str| -> (f64, f64) {
        let t = fx.run("p", &format!("cat {f}"));
        let v: Vec<f64> = t.lines().map(|l| l.parse().unwrap()).collect();
        (v[0], v[1])
    };
    let (a, b) = (times("/a"), times("/b"));
    assert!(a.0 < b.1 && b.0 < a.1, "not concurrent: a {a:?}, b {b:?}");
}

#[test]
fn four_builds_at_once_in_one_root() {
    let Some(fx) = Fx::new("concurrent") else {
        return;
    };
    fx.write(
        "Dockerfile",
        "FROM busybox\nRUN echo shared > /shared && sleep 1\nARG N\nRUN echo $N > /n\nCOPY f /f\n",
    );
    fx.write("f", "file");
    let children: Vec<_> = (0..4)
        .map(|n| {
            let ctx = fx.ctx.to_string_lossy().into_owned();
            let tag = format!("c{n}");
            let arg = format!("N={n}");
            fx.cmd(&[
                "build",
                "--progress",
                "plain",
                "--build-arg",
                &arg,
                "-t",
                &tag,
                &ctx,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    // The step all four share runs once: the others wait for it and reuse its result.
    let mut ran_shared = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        ok(&out);
        let (_, ran) = steps(&out);
        if ran.iter().any(|s| s.contains("echo shared")) && !stderr(&out).contains("reusing it") {
            ran_shared += 1;
        }
    }
    assert_eq!(ran_shared, 1, "the shared step ran {ran_shared} times");
    for n in 0..4 {
        assert_eq!(fx.run(&format!("c{n}"), "cat /n /f"), format!("{n}\nfile"));
    }
    assert_eq!(
        std::fs::read_dir(fx.root.join("containers"))
            .unwrap()
            .count(),
        0,
        "nothing left in containers/"
    );
}

#[test]
fn sigkill_mid_build_then_a_build_that_reuses_finished_steps() {
    let Some(fx) = Fx::new("sigkill") else { return };
    fx.write(
        "Dockerfile",
        "FROM busybox\nRUN echo first > /first\nRUN echo started && sleep 30\n",
    );
    let ctx = fx.ctx.to_string_lossy().into_owned();
    let mut child = fx
        .cmd(&["build", "--progress", "plain", &ctx])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the second RUN is running, then kill strata.
    let stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr_pipe).lines() {
            if line.unwrap_or_default().ends_with(" started") {
                return true;
            }
        }
        false
    });
    assert!(reader.join().unwrap(), "the second step never started");
    child.kill().unwrap();
    child.wait().unwrap();
    // The next build: the first RUN is reused; the second (changed to finish) runs.
    fx.write(
        "Dockerfile",
        "FROM busybox\nRUN echo first > /first\nRUN echo second > /second\n",
    );
    let out = fx.build(&["-t", "k"]);
    ok(&out);
    let (cached, ran) = steps(&out);
    assert_eq!(
        cached,
        vec!["[2/3] RUN echo first > /first"],
        "{}",
        stderr(&out)
    );
    assert_eq!(ran, vec!["[3/3] RUN echo second > /second"]);
    assert_eq!(fx.run("k", "cat /first /second"), "first\nsecond\n");
    // Nothing of the killed build is left once the next one has cleaned up.
    assert_eq!(
        std::fs::read_dir(fx.root.join("containers"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn quiet_prints_only_the_id_and_files_record_it() {
    let Some(fx) = Fx::new("quiet") else { return };
    fx.write("Dockerfile", "FROM busybox\nLABEL a=b\n");
    let iid = fx.ctx.join("../iid");
    let meta = fx.ctx.join("../meta.json");
    let out = fx.strata(&[
        "build",
        "-q",
        "--iidfile",
        &iid.to_string_lossy(),
        "--metadata-file",
        &meta.to_string_lossy(),
        "--label",
        "extra=1",
        "-t",
        "q:v1",
        "-t",
        "q:v2",
        &fx.ctx.to_string_lossy(),
    ]);
    ok(&out);
    let id = image_id(&out);
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(stderr(&out), "");
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    assert_eq!(m["containerimage.config.digest"], id.as_str());
    let images = stdout(&fx.strata(&["images"]));
    assert!(images.contains("v1") && images.contains("v2"), "{images}");
    let v: serde_json::Value =
        serde_json::from_slice(&fx.strata(&["inspect", "q:v1"]).stdout).unwrap();
    assert_eq!(v[0]["Config"]["Labels"]["extra"], "1");
    assert_eq!(v[0]["Config"]["Labels"]["a"], "b");
}

#[test]
fn dockerfile_errors_name_the_line() {
    let Some(fx) = Fx::new("dferr") else { return };
    fx.write("Dockerfile", "FROM busybox\nCOPY\n");
    let out = fx.build(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Dockerfile:2"), "{}", stderr(&out));
    fx.write("Dockerfile", "FROM not-imported-anywhere\nRUN true\n");
    let out = fx.build(&[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not in the local store"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn du_and_prune_free_only_what_nothing_uses() {
    let Some(fx) = Fx::new("prune") else { return };
    fx.write(
        "Dockerfile",
        "FROM busybox AS tmp\nRUN head -c 100000 /dev/zero > /big\n\nFROM busybox\nCOPY --from=tmp /big /copy\nRUN echo kept > /kept\n",
    );
    ok(&fx.build(&["-t", "kept"]));
    let du = stdout(&fx.strata(&["du"]));
    assert!(du.contains("Build cache"), "{du}");
    // The intermediate stage's layer is only cache: prune frees it; the image's stay.
    let out = fx.strata(&["prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Removed 1 build cache entries"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fx.run("kept", "cat /kept"), "kept\n");
    // What images use is still a cache hit.
    let again = fx.build(&["-t", "kept"]);
    ok(&again);
    assert!(steps(&again).1.is_empty(), "{}", stderr(&again));
    // -a drops the whole cache: the next build runs again; the image still runs.
    ok(&fx.strata(&["prune", "-a"]));
    assert_eq!(fx.run("kept", "cat /kept"), "kept\n");
    let cold = fx.build(&["-t", "kept"]);
    ok(&cold);
    assert_eq!(steps(&cold).1.len(), 3, "{}", stderr(&cold));
    // A filter that matches nothing recent removes nothing.
    let out = fx.strata(&["prune", "-a", "--filter", "until=24h"]);
    assert!(
        stdout(&out).contains("Removed 0 build cache entries"),
        "{}",
        stdout(&out)
    );
    assert!(
        !fx.strata(&["prune", "--filter", "label=x"])
            .status
            .success()
    );
}

#[test]
fn context_from_stdin() {
    let Some(fx) = Fx::new("stdin") else { return };
    // A tar of the context.
    fx.write("Dockerfile", "FROM busybox\nCOPY in.txt /in.txt\n");
    fx.write("in.txt", "from a tar\n");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&fx.ctx)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    let mut child = fx
        .cmd(&["build", "-q", "-t", "s1", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    ok(&child.wait_with_output().unwrap());
    assert_eq!(fx.run("s1", "cat /in.txt"), "from a tar\n");
    // Exactly the tar's files are the context.
    let mut child = fx
        .cmd(&["build", "-q", "-t", "s3", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tar3 = {
        let d = fx.dir.join("ctx3");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("Dockerfile"), "FROM busybox\nCOPY . /c/\n").unwrap();
        Command::new("tar")
            .arg("-C")
            .arg(&d)
            .args(["-cf", "-", "."])
            .output()
            .unwrap()
            .stdout
    };
    child.stdin.take().unwrap().write_all(&tar3).unwrap();
    ok(&child.wait_with_output().unwrap());
    assert_eq!(fx.run("s3", "ls -A /c"), "Dockerfile\n");
    // A lone Dockerfile: no context.
    let mut child = fx
        .cmd(&["build", "-q", "-t", "s2", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM busybox\nRUN echo no-context > /x\n")
        .unwrap();
    ok(&child.wait_with_output().unwrap());
    assert_eq!(fx.run("s2", "cat /x"), "no-context\n");
}

#[test]
fn add_extracts_local_archives_of_every_compression() {
    let Some(fx) = Fx::new("add") else { return };
    let script = r#"
import io, sys, tarfile
for mode, name in [("w", "p.tar"), ("w:gz", "g.tar.gz"), ("w:bz2", "b.tar.bz2"), ("w:xz", "x.tar.xz")]:
    with tarfile.open(f"{sys.argv[1]}/{name}", mode) as t:
        data = f"inside {name}\n".encode()
        info = tarfile.TarInfo(f"from-{name}/file.txt")
        info.size = len(data)
        info.uid = 123
        t.addfile(info, io.BytesIO(data))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &fx.ctx.to_string_lossy()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    fx.write("plain.txt", "not an archive\n");
    fx.write(
        "Dockerfile",
        "FROM busybox\nADD p.tar g.tar.gz b.tar.bz2 x.tar.xz /opt/\nADD plain.txt /opt/\nCOPY g.tar.gz /copied/\n",
    );
    ok(&fx.build(&["-t", "add"]));
    let got = fx.run(
        "add",
        "cat /opt/from-*/file.txt /opt/plain.txt; stat -c %u /opt/from-p.tar/file.txt; ls /copied",
    );
    assert_eq!(
        got,
        "inside b.tar.bz2\ninside g.tar.gz\ninside p.tar\ninside x.tar.xz\nnot an archive\n123\ng.tar.gz\n"
    );
}

#[test]
fn no_cache_filter_reruns_only_that_stage() {
    let Some(fx) = Fx::new("ncfilter") else {
        return;
    };
    fx.write(
        "Dockerfile",
        "FROM busybox AS deps\nRUN echo deps > /deps\n\nFROM busybox AS app\nCOPY --from=deps /deps /deps\nRUN echo app > /app\n",
    );
    ok(&fx.build(&["-t", "app"]));
    let out = fx.build(&["--no-cache-filter", "app", "-t", "app"]);
    ok(&out);
    let (cached, ran) = steps(&out);
    assert_eq!(
        ran,
        vec![
            "[app 2/3] COPY --from=deps /deps /deps",
            "[app 3/3] RUN echo app > /app"
        ],
        "{}",
        stderr(&out)
    );
    assert_eq!(cached, vec!["[deps 2/2] RUN echo deps > /deps"]);
}

#[test]
fn onbuild_triggers_run_in_the_child_build() {
    let Some(fx) = Fx::new("onbuild") else { return };
    fx.write(
        "Dockerfile",
        "FROM busybox\nONBUILD RUN echo triggered > /trigger\nONBUILD COPY marker.txt /marker.txt\n",
    );
    ok(&fx.build(&["-t", "parent"]));
    fx.write("marker.txt", "marker\n");
    fx.write(
        "Dockerfile",
        "FROM parent\nRUN cat /trigger /marker.txt > /both\n",
    );
    ok(&fx.build(&["-t", "child"]));
    assert_eq!(fx.run("child", "cat /both"), "triggered\nmarker\n");
    let v: serde_json::Value =
        serde_json::from_slice(&fx.strata(&["inspect", "parent"]).stdout).unwrap();
    assert_eq!(v[0]["Config"]["OnBuild"].as_array().unwrap().len(), 2);
    let v: serde_json::Value =
        serde_json::from_slice(&fx.strata(&["inspect", "child"]).stdout).unwrap();
    assert!(
        v[0]["Config"]["OnBuild"].is_null(),
        "triggers do not pass on"
    );
}

#[test]
fn run_mounts_cache_bind_tmpfs_secret_ssh() {
    let Some(fx) = Fx::new("mounts") else { return };
    fx.write("data.txt", "ctx data\n");
    let secret = fx.dir.join("secret.txt");
    let value = "s3cr3t-Value-41f2";
    std::fs::write(&secret, value).unwrap();
    // A socket standing in for an SSH agent.
    let sock = fx.dir.join("agent.sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    fx.write(
        "Dockerfile",
        "FROM busybox AS other\nRUN mkdir -p /o && echo from-other > /o/f\n\nFROM busybox\n\
         ARG N\n\
         RUN --mount=type=cache,target=/cache,id=c1 sh -c 'echo $N >> /cache/log; wc -l < /cache/log > /count'\n\
         RUN --mount=type=bind,target=/ctx cp /ctx/data.txt /from-ctx\n\
         RUN --mount=type=bind,from=other,source=/o,target=/x cp /x/f /from-other\n\
         RUN --mount=type=tmpfs,target=/t sh -c 'echo tmp > /t/a && grep -q \" /t tmpfs\" /proc/mounts && touch /tmpfs-ok'\n\
         RUN --mount=type=secret,id=tok,mode=0400,required=true sh -c 'test $(wc -c < /run/secrets/tok) = 17 && touch /secret-ok'\n\
         RUN --mount=type=bind,target=/ctx,rw sh -c 'echo scribble > /ctx/new && cat /ctx/new > /rw-ok'\n\
         RUN --mount=type=ssh sh -c 'test -S $SSH_AUTH_SOCK && touch /ssh-ok'\n",
    );
    let ssh = format!("default={}", sock.display());
    let secret_arg = format!("id=tok,src={}", secret.display());
    let out = fx.build(&[
        "--build-arg",
        "N=1",
        "--secret",
        &secret_arg,
        "--ssh",
        &ssh,
        "-t",
        "m",
    ]);
    ok(&out);
    assert_eq!(
        fx.run(
            "m",
            "cat /count /from-ctx /from-other /rw-ok; ls /tmpfs-ok /secret-ok /ssh-ok"
        ),
        "1\nctx data\nfrom-other\nscribble\n/secret-ok\n/ssh-ok\n/tmpfs-ok\n"
    );
    // Mounts leave nothing in the image; the context was not written to.
    assert_eq!(
        fx.run(
            "m",
            "ls -d /cache /ctx /x /t /run/secrets 2>/dev/null; true"
        ),
        ""
    );
    assert!(!fx.ctx.join("new").exists());
    // The cache mount persists (a second run sees the first line), and is not in any key:
    // changing N reruns the step, which now counts 2.
    ok(&fx.build(&[
        "--build-arg",
        "N=2",
        "--secret",
        &secret_arg,
        "--ssh",
        &ssh,
        "-t",
        "m",
    ]));
    assert_eq!(fx.run("m", "cat /count"), "2\n");
    // The secret's value is nowhere: not in the image, the state root, the logs, or /dev/shm.
    let grep = Command::new("grep")
        .args(["-rl", value])
        .arg(&fx.root)
        .output()
        .unwrap();
    assert_eq!(stdout(&grep), "", "the secret is in the state root");
    assert!(!stderr(&out).contains(value) && !stdout(&out).contains(value));
    let shm = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("strata-secrets")
            })
        })
        .unwrap_or(false);
    assert!(!shm, "a secret directory was left in /dev/shm");
    // A required secret that is not given: a clear error.
    let out = fx.build(&["--ssh", &ssh]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("secret tok is required"),
        "{}",
        stderr(&out)
    );
    // A change in a file a bind mount reads reruns the step.
    fx.write("data.txt", "changed\n");
    let out = fx.build(&[
        "--build-arg",
        "N=2",
        "--secret",
        &secret_arg,
        "--ssh",
        &ssh,
        "-t",
        "m",
    ]);
    ok(&out);
    assert!(
        steps(&out).1.iter().any(|s| s.contains("cp /ctx/data.txt")),
        "{}",
        stderr(&out)
    );
    assert_eq!(fx.run("m", "cat /from-ctx"), "changed\n");
    // prune --filter type=exec.cachemount drops cache mounts.
    ok(&fx.strata(&["prune", "--filter", "type=exec.cachemount"]));
    assert!(!fx.root.join("cachemounts").exists());
}

#[test]
fn security_insecure_needs_the_entitlement() {
    let Some(fx) = Fx::new("insecure") else {
        return;
    };
    fx.write(
        "Dockerfile",
        "FROM busybox\nRUN --security=insecure grep CapEff /proc/self/status > /caps\n",
    );
    let out = fx.build(&[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--allow security.insecure"),
        "{}",
        stderr(&out)
    );
    ok(&fx.build(&["--allow", "security.insecure", "-t", "i"]));
    // Every capability the host lets strata give (a sandboxed host may lack some).
    let host = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .unwrap()
        .replace("CapBnd:", "CapEff:");
    assert_eq!(fx.run("i", "cat /caps"), format!("{host}\n"));
}

#[test]
fn heredocs_and_copy_link() {
    let Some(fx) = Fx::new("heredocs") else {
        return;
    };
    fx.write(
        "Dockerfile",
        "# syntax=docker/dockerfile:1\nFROM busybox\nRUN <<EOF\necho one > /one\necho two >> /one\nEOF\n\
         RUN <<-A cat >/a && <<B cat >/b\n\ttab-indented\n\tA\nplain $HOME\nB\n\
         COPY <<'EOF' <<DATA /etc/\nliteral $HOME\nEOF\nexpanded\nDATA\n\
         COPY --chmod=0755 <<EOF /usr/local/bin/hello\n#!/bin/sh\necho hello from heredoc\nEOF\n\
         RUN <<EOF sh\necho via-interp > /interp\nEOF\n",
    );
    ok(&fx.build(&["-t", "hd"]));
    assert_eq!(
        fx.run(
            "hd",
            "cat /one /a /b /etc/EOF /etc/DATA /interp; hello; stat -c %a /usr/local/bin/hello"
        ),
        "one\ntwo\ntab-indented\nplain /root\nliteral $HOME\nexpanded\nvia-interp\nhello from heredoc\n755\n"
    );
    // COPY --link: its layer does not depend on what is below it.
    fx.write("f.txt", "linked\n");
    fx.write(
        "Dockerfile",
        "FROM busybox\nRUN echo base-one > /base\nCOPY --link f.txt /linked.txt\n",
    );
    ok(&fx.build(&["-t", "l1"]));
    fx.write(
        "Dockerfile",
        "FROM busybox\nRUN echo base-two > /base\nCOPY --link f.txt /linked.txt\n",
    );
    let out = fx.build(&["-t", "l2"]);
    ok(&out);
    // The copy itself is a cache hit; only the (free) stacking of its layer runs.
    assert!(
        steps(&out).0.iter().any(|s| s.contains("COPY --link")),
        "the linked copy ran again: {}",
        stderr(&out)
    );
    assert_eq!(fx.run("l2", "cat /base /linked.txt"), "base-two\nlinked\n");
    let layers = |img: &str| -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_slice(&fx.strata(&["inspect", img]).stdout).unwrap();
        v[0]["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect()
    };
    let (a, b) = (layers("l1"), layers("l2"));
    assert_eq!(
        a.last(),
        b.last(),
        "the linked layer is the same in both images"
    );
    assert_ne!(a[1], b[1]);
}

/// A one-file HTTP server on loopback: GET /file.txt → `body` with a Last-Modified date.
/// Returns its address and a request counter.
fn serve_file(body: &'static str) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h2 = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).is_err() || l.trim().is_empty() {
                    break;
                }
            }
            h2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut s = s;
            let resp = if line.contains("/file.txt") {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = s.write_all(resp.as_bytes());
        }
    });
    (addr, hits)
}

#[test]
fn add_from_a_url_with_and_without_a_checksum() {
    let Some(fx) = Fx::new("addurl") else { return };
    let (addr, hits) = serve_file("fetched content\n");
    let sum = "sha256:3a2b3b2ff8df4c8a0e3b8a6c1a34eab0e29b8c35ae1b1236c1c6f00c9d0a37d0";
    let real = {
        let out = Command::new("sh")
            .args(["-c", "printf 'fetched content\\n' | sha256sum"])
            .output()
            .unwrap();
        format!("sha256:{}", stdout(&out).split_whitespace().next().unwrap())
    };
    fx.write(
        "Dockerfile",
        &format!("FROM busybox\nADD --checksum={real} http://{addr}/file.txt /data/\nRUN stat -c '%a %Y' /data/file.txt > /meta\n"),
    );
    ok(&fx.build(&["-t", "u"]));
    assert_eq!(
        fx.run("u", "cat /data/file.txt /meta"),
        "fetched content\n600 784111777\n"
    );
    // With a checksum, a rebuild needs no request at all.
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    let out = fx.build(&["-t", "u"]);
    ok(&out);
    assert!(steps(&out).1.is_empty(), "{}", stderr(&out));
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), before);
    // A wrong checksum fails with a clear error.
    fx.write(
        "Dockerfile",
        &format!("FROM busybox\nADD --checksum={sum} http://{addr}/file.txt /data/\n"),
    );
    let out = fx.build(&[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("checksum mismatch"),
        "{}",
        stderr(&out)
    );
    // Without a checksum the content is fetched to compute the key; same content, cache hit.
    fx.write(
        "Dockerfile",
        &format!("FROM busybox\nADD http://{addr}/file.txt /nosum.txt\n"),
    );
    ok(&fx.build(&["-t", "n"]));
    let out = fx.build(&["-t", "n"]);
    ok(&out);
    assert!(steps(&out).1.is_empty(), "{}", stderr(&out));
    assert_eq!(fx.run("n", "cat /nosum.txt"), "fetched content\n");
    // A missing file is an error that names the URL.
    fx.write(
        "Dockerfile",
        &format!("FROM busybox\nADD http://{addr}/nope /x\n"),
    );
    let out = fx.build(&[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));
}

#[test]
fn add_a_git_repository() {
    let Some(fx) = Fx::new("addgit") else { return };
    if Command::new("git").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI has git");
        return;
    }
    // A repository served by `git daemon` on loopback.
    let base = fx.dir.join("git");
    let work = base.join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    std::fs::write(work.join("sub/file.txt"), "v1\n").unwrap();
    std::fs::write(work.join("top.txt"), "top\n").unwrap();
    let git = |args: &[&str], dir: &Path| {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
        stdout(&out)
    };
    git(&["init", "-q"], &work);
    git(&["add", "."], &work);
    git(&["commit", "-q", "-m", "one"], &work);
    git(&["tag", "v1"], &work);
    git(&["clone", "-q", "--bare", ".", "../repo.git"], &work);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // In a process group of its own: `git daemon` runs `git-daemon` as its child, and the
    // guard ends both, even when an assertion fails.
    let daemon = Command::new("git")
        .process_group(0)
        .args([
            "daemon",
            "--export-all",
            "--reuseaddr",
            "--listen=127.0.0.1",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .arg(&base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = GroupGuard(daemon);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let remote = format!("git://127.0.0.1:{port}/repo.git");
    fx.write(
        "Dockerfile",
        &format!(
            "FROM busybox\nADD {remote}#v1:sub /src\nADD --keep-git-dir=true {remote}#main /full\n"
        ),
    );
    let out = fx.build(&["-t", "g"]);
    let result = std::panic::catch_unwind(|| {
        ok(&out);
        assert_eq!(
            fx.run("g", "cat /src/file.txt /full/top.txt; ls -d /full/.git"),
            "v1\ntop\n/full/.git\n"
        );
        assert_eq!(fx.run("g", "ls -A /src"), "file.txt\n");
        // Unchanged ref: cached. A new commit on main: that step runs again.
        let out = fx.build(&["-t", "g"]);
        ok(&out);
        assert!(steps(&out).1.is_empty(), "{}", stderr(&out));
        std::fs::write(work.join("top.txt"), "top v2\n").unwrap();
        git(&["commit", "-q", "-am", "two"], &work);
        git(&["push", "-q", "../repo.git", "main"], &work);
        let out = fx.build(&["-t", "g"]);
        ok(&out);
        assert_eq!(
            fx.run("g", "cat /full/top.txt /src/file.txt"),
            "top v2\nv1\n"
        );
        // A checksum that does not match the commit fails clearly.
        fx.write(
            "Dockerfile",
            &format!("FROM busybox\nADD --checksum=0123456789abcdef0123456789abcdef01234567 {remote}#v1 /x\n"),
        );
        let out = fx.build(&[]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("checksum mismatch"),
            "{}",
            stderr(&out)
        );
    });
    drop(daemon);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn secrets_as_environment_variables() {
    let Some(fx) = Fx::new("secretenv") else {
        return;
    };
    let value = "env-S3cret-9d1e";
    fx.write(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=secret,id=tok,env=TOKEN sh -c 'test ${#TOKEN} = 15 && touch /ok; test ! -e /run/secrets/tok'\n",
    );
    let out = fx
        .cmd(&[
            "build",
            "--progress",
            "plain",
            "--secret",
            "id=tok,env=MY_TOKEN",
            "-t",
            "se",
            &fx.ctx.to_string_lossy(),
        ])
        .env("MY_TOKEN", value)
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(fx.run("se", "ls /ok"), "/ok\n");
    let grep = Command::new("grep")
        .args(["-rl", value])
        .arg(&fx.root)
        .output()
        .unwrap();
    assert_eq!(stdout(&grep), "", "the secret is in the state root");
    // An external runtime would need it in config.json: refused.
    if Command::new("runc").arg("--version").output().is_ok() {
        let out = fx
            .cmd(&[
                "--runtime",
                "runc",
                "build",
                "--no-cache",
                "--secret",
                "id=tok,env=MY_TOKEN",
                &fx.ctx.to_string_lossy(),
            ])
            .env("MY_TOKEN", value)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("built-in runtime"),
            "{}",
            stderr(&out)
        );
    }
}

/// A strata extension: RUN cache mounts travel with the build cache.
#[test]
fn cache_mounts_travel_with_the_build_cache() {
    let Some(a) = Fx::new("cm-a") else { return };
    let Some(b) = Fx::new("cm-b") else { return };
    let df = "FROM busybox\nARG RUN_ID\nRUN --mount=type=cache,target=/var/cache/pkgs sh -c 'echo $RUN_ID >> /var/cache/pkgs/seen; cat /var/cache/pkgs/seen > /seen'\n";
    a.write("Dockerfile", df);
    b.write("Dockerfile", df);
    let dir = a.dir.join("exported");
    let to = format!(
        "type=local,dest={},mode=max,cache-mounts=true",
        dir.display()
    );
    ok(&a.build(&["--build-arg", "RUN_ID=runner-a", "--cache-to", &to]));
    // A fresh root (another CI runner): its step runs (another build arg), with the package
    // cache of the first.
    let from = format!("type=local,src={}", dir.display());
    ok(&b.build(&[
        "--build-arg",
        "RUN_ID=runner-b",
        "--cache-from",
        &from,
        "-t",
        "seen",
    ]));
    assert_eq!(b.run("seen", "cat /seen"), "runner-a\nrunner-b\n");
    // Without cache-mounts=true nothing of them is exported.
    let dir2 = a.dir.join("exported-plain");
    ok(&a.build(&[
        "--build-arg",
        "RUN_ID=x",
        "--cache-to",
        &format!("type=local,dest={}", dir2.display()),
    ]));
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir2.join("index.json")).unwrap()).unwrap();
    let md = idx["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir2.join("blobs/sha256").join(md)).unwrap())
            .unwrap();
    let cd = m["config"]["digest"].as_str().unwrap()[7..].to_string();
    let c = std::fs::read_to_string(dir2.join("blobs/sha256").join(cd)).unwrap();
    assert!(!c.contains("cache_mounts"), "{c}");
}

#[test]
fn per_step_network_and_copy_parents_exclude_chmod() {
    let Some(fx) = Fx::new("netcopy") else { return };
    fx.write("src/a/x.txt", "x\n");
    fx.write("src/b/y.txt", "y\n");
    fx.write("src/b/skip.log", "no\n");
    fx.write(
        "Dockerfile",
        "FROM busybox\n\
         RUN --network=none sh -c 'ls /sys/class/net > /net-none'\n\
         RUN --network=host sh -c 'ls /sys/class/net | wc -l > /net-host-count'\n\
         COPY --parents src/*/x.txt /p/\n\
         COPY --exclude=*.log src/b /e/\n\
         COPY --chmod=u=rwx,go=r src/a/x.txt /m/x.txt\n",
    );
    ok(&fx.build(&["--allow", "network.host", "-t", "nc"]));
    assert_eq!(fx.run("nc", "cat /net-none"), "lo\n");
    let host_ifaces = std::fs::read_dir("/sys/class/net").unwrap().count();
    assert_eq!(
        fx.run("nc", "cat /net-host-count"),
        format!("{host_ifaces}\n")
    );
    assert_eq!(
        fx.run("nc", "cat /p/src/a/x.txt; ls /e; stat -c %a /m/x.txt"),
        "x\ny.txt\n744\n"
    );
    // --network=none for the whole build.
    fx.write("Dockerfile", "FROM busybox\nRUN ls /sys/class/net > /n\n");
    ok(&fx.build(&["--network", "none", "-t", "nn"]));
    assert_eq!(fx.run("nn", "cat /n"), "lo\n");
}

#[test]
fn cache_mount_seeded_from_a_stage() {
    let Some(fx) = Fx::new("cmfrom") else { return };
    fx.write(
        "Dockerfile",
        "FROM busybox AS seed\nRUN mkdir -p /s && echo seeded > /s/first\n\nFROM busybox\n\
         RUN --mount=type=cache,id=pkgs,from=seed,source=/s,target=/c sh -c 'cat /c/first > /out; echo more > /c/second'\n\
         RUN --mount=type=cache,id=pkgs,target=/c ls /c > /listing\n",
    );
    ok(&fx.build(&["-t", "cs"]));
    assert_eq!(fx.run("cs", "cat /out /listing"), "seeded\nfirst\nsecond\n");
}

#[test]
fn copy_again_links_unchanged_files_and_makes_the_same_layer() {
    let Some(fx) = Fx::new("relink") else { return };
    let Some(fresh) = Fx::new("relink-fresh") else {
        return;
    };
    fx.write("Dockerfile", "FROM busybox\nWORKDIR /src\nCOPY . .\n");
    // Files older than SOURCE_DATE_EPOCH: commit leaves their times alone, so they can be
    // shared; the directories the copy makes are clamped, so the layer is reproducible.
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    let write_old = |p: &str, content: &str| {
        fx.write(p, content);
        let f = std::fs::File::options()
            .write(true)
            .open(fx.ctx.join(p))
            .unwrap();
        f.set_modified(old).unwrap();
    };
    for i in 0..20 {
        write_old(&format!("d/f{i}"), &format!("file {i}\n").repeat(100));
    }
    let build = |f: &Fx| {
        let out = f
            .cmd(&["build", "--progress", "plain", "-t", "r"])
            .arg(&fx.ctx)
            .env("SOURCE_DATE_EPOCH", "1600000000")
            .output()
            .unwrap();
        ok(&out);
        out
    };
    let first = build(&fx);
    assert!(!stderr(&first).contains("linked"), "{}", stderr(&first));
    // One file changed: the other 19 are linked from the first result, the layer is what a
    // root that never saw the first context makes, and the image holds the new content.
    write_old("d/f3", "changed\n");
    let second = build(&fx);
    assert!(
        stderr(&second).contains("19 unchanged files linked from the previous result"),
        "{}",
        stderr(&second)
    );
    assert_ne!(image_id(&second), image_id(&first));
    // (The two roots' busybox images differ in their import time: compare the layers.)
    let layers = |f: &Fx| {
        let v: serde_json::Value =
            serde_json::from_slice(&f.strata(&["inspect", "r"]).stdout).unwrap();
        v[0]["RootFS"]["Layers"].clone()
    };
    ok(&build(&fresh));
    assert_eq!(layers(&fresh), layers(&fx));
    assert_eq!(layers(&fx).as_array().map(|l| l.len()), Some(3));
    assert_eq!(
        fx.run("r", "cat /src/d/f3; cat /src/d/f4 | head -1"),
        "changed\nfile 4\n"
    );
    // The snapshots share the unchanged files' inodes.
    let inos = snapshot_inodes(&fx, &["src/d/f4"]);
    assert_eq!(inos.len(), 2, "{inos:?}");
    assert_eq!(inos[0], inos[1]);
}

/// The inode of each of `paths` in each snapshot of the fixture's root that has it.
fn snapshot_inodes(fx: &Fx, paths: &[&str]) -> Vec<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(fx.root.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .flat_map(|snap| paths.iter().map(move |p| snap.join(p)))
        .filter_map(|p| std::fs::metadata(p).ok().map(|m| m.ino()))
        .collect()
}

#[test]
fn copy_from_a_stage_links_the_stage_files() {
    let Some(fx) = Fx::new("link-from") else {
        return;
    };
    fx.write(
        "Dockerfile",
        "FROM busybox AS s\nRUN mkdir /out && echo data > /out/a && echo more > /out/b\n\
         FROM busybox\nCOPY --from=s /out /copied\nCOPY --from=s --chmod=600 /out/a /private\n",
    );
    let out = fx.build(&["-t", "l"]);
    ok(&out);
    // The stage has two layers (busybox, the RUN step): its files are found below the overlay.
    assert!(
        stderr(&out).contains("2 files linked from the source's snapshots"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        fx.run("l", "cat /copied/a /copied/b /private; stat -c %a /private"),
        "data\nmore\ndata\n600\n"
    );
    // The RUN step's snapshot and the COPY's share a's inode; the --chmod copy is its own file.
    let inos = snapshot_inodes(&fx, &["out/a", "copied/a", "private"]);
    assert_eq!(inos.len(), 3, "{inos:?}");
    let mut distinct = inos.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 2, "{inos:?}");
}

/// A child in a process group of its own, ended with its whole group when dropped.
struct GroupGuard(std::process::Child);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
        }
        let _ = self.0.wait();
    }
}
