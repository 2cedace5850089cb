//! Cache misses explained: each kind provoked on a real build and read back from the plain
//! progress and from `--metadata-file`'s `strata.cache.misses`.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn base_tar() -> Option<&'static Path> {
    static TAR: OnceLock<Option<PathBuf>> = OnceLock::new();
    base_tar_in(&TAR, "strata-explain-tests")
}

/// A root with busybox and a context `ctx/` with `src/main.c` and `src/x.h`.
fn fixture(name: &str) -> Option<(Fixture, PathBuf)> {
    let fx = Fixture::with_busybox(base_tar()?, name);
    let ctx = fx.dir.join("ctx");
    std::fs::create_dir_all(ctx.join("src")).unwrap();
    std::fs::write(ctx.join("src/main.c"), "int main;\n").unwrap();
    std::fs::write(ctx.join("src/x.h"), "#define X\n").unwrap();
    Some((fx, ctx))
}

/// A plain build with a metadata file: (progress, the misses).
fn build(fx: &Fixture, ctx: &Path, extra: &[&str]) -> (String, Vec<serde_json::Value>) {
    let meta = fx.dir.join("meta.json");
    let meta_s = meta.to_string_lossy().into_owned();
    let ctx_s = ctx.to_string_lossy().into_owned();
    let mut args = vec!["build", "--progress", "plain", "--metadata-file", &meta_s];
    args.extend(extra);
    args.push(&ctx_s);
    let out = fx.strata(&args);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let misses = m["strata.cache.misses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    (err, misses)
}

const DOCKERFILE: &str = "FROM busybox AS build
ARG VERSION=1.2
WORKDIR /src
COPY src/ ./
RUN cat main.c > /out
RUN echo $VERSION >> /out
RUN wc -c /out > /n1
RUN cat /n1 > /n2
RUN cat /n2 > /n3
RUN cat /n3 > /n4
RUN cat /n4 > /n5
";

#[test]
fn one_changed_file_is_one_root_cause_and_the_steps_after_it_follow() {
    let Some((fx, ctx)) = fixture("explain-cascade") else {
        return;
    };
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    let (_, first) = build(&fx, &ctx, &[]);
    assert!(first.iter().all(|m| m["kind"] == "new"), "{first:#?}");
    let (_, none) = build(&fx, &ctx, &[]);
    assert!(
        none.is_empty(),
        "an all-cached build misses nothing: {none:#?}"
    );
    std::fs::write(ctx.join("src/main.c"), "int main(void);\n").unwrap();
    let (progress, misses) = build(&fx, &ctx, &[]);
    assert_eq!(misses[0]["kind"], "context");
    assert_eq!(misses[0]["step"], "[4/11] COPY src/ ./");
    assert_eq!(misses[0]["line"], 4);
    assert_eq!(
        misses[0]["paths"]["changed"],
        serde_json::json!(["src/main.c"])
    );
    assert_eq!(misses[0]["reason"], "context file src/main.c changed");
    let follow: Vec<_> = misses[1..].iter().map(|m| m["kind"].clone()).collect();
    assert_eq!(follow.len(), 7, "{misses:#?}");
    assert!(follow.iter().all(|k| k == "upstream"), "{misses:#?}");
    assert!(
        progress.contains("cache miss: context file src/main.c changed"),
        "{progress}"
    );
    assert!(
        progress.contains("cache misses: context file src/main.c changed (7 steps after it)"),
        "the summary line names the cause once: {progress}"
    );
    // Added and removed files are named as such.
    std::fs::write(ctx.join("src/new.c"), "x\n").unwrap();
    std::fs::remove_file(ctx.join("src/x.h")).unwrap();
    let (_, misses) = build(&fx, &ctx, &[]);
    assert_eq!(
        misses[0]["paths"]["added"],
        serde_json::json!(["src/new.c"])
    );
    assert_eq!(
        misses[0]["paths"]["removed"],
        serde_json::json!(["src/x.h"])
    );
}

#[test]
fn build_args_env_instructions_flags_and_pruned_results_are_named() {
    let Some((fx, ctx)) = fixture("explain-kinds") else {
        return;
    };
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    build(&fx, &ctx, &[]);
    // A build argument.
    let (_, m) = build(&fx, &ctx, &["--build-arg", "VERSION=1.3"]);
    assert_eq!(m[0]["kind"], "arg", "{m:#?}");
    assert_eq!(m[0]["reason"], "ARG VERSION changed: 1.2 → 1.3");
    assert_eq!(
        (&m[0]["name"], &m[0]["old"], &m[0]["new"]),
        (&"VERSION".into(), &"1.2".into(), &"1.3".into())
    );
    // An instruction's text.
    let edited = DOCKERFILE.replace("RUN cat /n1 > /n2", "RUN cat /n1 /n1 > /n2");
    std::fs::write(ctx.join("Dockerfile"), &edited).unwrap();
    let (_, m) = build(&fx, &ctx, &["--build-arg", "VERSION=1.3"]);
    assert_eq!(m[0]["kind"], "instruction", "{m:#?}");
    assert_eq!(
        m[0]["reason"],
        "instruction changed: RUN cat /n1 > /n2 → RUN cat /n1 /n1 > /n2"
    );
    // ENV the step sees.
    let with_env = edited.replace("RUN cat /n4 > /n5", "ENV MODE=prod\nRUN cat /n4 > /n5");
    std::fs::write(ctx.join("Dockerfile"), &with_env).unwrap();
    let (_, m) = build(&fx, &ctx, &["--build-arg", "VERSION=1.3"]);
    assert_eq!(m[0]["kind"], "env", "{m:#?}");
    assert_eq!(m[0]["reason"], "ENV MODE changed: (unset) → prod");
    // The flags that force a miss.
    let (_, m) = build(&fx, &ctx, &["--build-arg", "VERSION=1.3", "--no-cache"]);
    assert!(m.iter().all(|x| x["kind"] == "no-cache"), "{m:#?}");
    // A result the cache no longer has.
    fx.ok(&["prune", "-a"]);
    let (_, m) = build(&fx, &ctx, &["--build-arg", "VERSION=1.3"]);
    assert_eq!(m[0]["kind"], "evicted", "{m:#?}");
    assert!(m[1..].iter().all(|x| x["kind"] == "upstream"), "{m:#?}");
}

#[test]
fn a_changed_base_image_is_named_with_both_digests() {
    let Some((fx, ctx)) = fixture("explain-base") else {
        return;
    };
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo hi > /hi\nRUN cat /hi\n",
    )
    .unwrap();
    build(&fx, &ctx, &[]);
    let old = fx.ok(&["inspect", "busybox"]);
    // Another busybox under the same name (imported again: another creation time).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fx.import_busybox(base_tar().unwrap(), Some("12345"));
    assert_ne!(old, fx.ok(&["inspect", "busybox"]));
    let (_, m) = build(&fx, &ctx, &[]);
    assert_eq!(m[0]["kind"], "base", "{m:#?}");
    assert_eq!(m[0]["reference"], "docker.io/library/busybox:latest");
    assert_ne!(m[0]["old"], m[0]["new"]);
    assert!(
        m[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("base docker.io/library/busybox:latest changed (sha256:"),
        "{m:#?}"
    );
    assert_eq!(m[1]["kind"], "upstream");
}

#[test]
fn secrets_never_reach_the_records() {
    let Some((fx, ctx)) = fixture("explain-secret") else {
        return;
    };
    let value = "s3cr3t-value-that-must-not-be-kept";
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=secret,id=tok,env=TOKEN test -n \"$TOKEN\"\n",
    )
    .unwrap();
    let secret = "id=tok,env=STRATA_TEST_SECRET";
    let out = fx
        .cmd(&[
            "build",
            "--progress",
            "plain",
            "--secret",
            secret,
            &ctx.to_string_lossy(),
        ])
        .env("STRATA_TEST_SECRET", value)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Nothing under the state root holds the secret's bytes.
    let found = files(&fx.root, &|_| true)
        .into_iter()
        .filter(|p| {
            std::fs::read(p).is_ok_and(|b| b.windows(value.len()).any(|w| w == value.as_bytes()))
        })
        .collect::<Vec<_>>();
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn builds_are_recorded_listed_inspected_bounded_and_removed() {
    let Some((fx, ctx)) = fixture("build-records") else {
        return;
    };
    std::fs::create_dir_all(&fx.root).unwrap();
    std::fs::write(fx.root.join("config.toml"), "[history]\nkeep = 2\n").unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    build(&fx, &ctx, &[]);
    std::fs::write(ctx.join("src/main.c"), "changed\n").unwrap();
    build(&fx, &ctx, &[]);
    let bad = fx.dir.join("bad.Dockerfile");
    std::fs::write(&bad, "FROM busybox\nRUN echo about to fail && false\n").unwrap();
    let out = fx.strata(&[
        "build",
        "-f",
        &bad.to_string_lossy(),
        &ctx.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    // The newest two are kept: the failed build, then the rebuild after the change.
    let ls = fx.ok(&["builds", "ls", "--format", "json"]);
    let builds: Vec<serde_json::Value> = ls
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(builds.len(), 2, "{ls}");
    assert_eq!(builds[0]["status"], "failed");
    assert_eq!(builds[1]["status"], "completed");
    assert_eq!(builds[1]["steps_run"], 8);
    let id = builds[1]["id"].as_str().unwrap();
    let j: serde_json::Value =
        serde_json::from_str(&fx.ok(&["builds", "inspect", &id[..8], "--format", "json"])).unwrap();
    let steps = j["steps"].as_array().unwrap();
    let copy = steps
        .iter()
        .find(|s| s["name"] == "[4/11] COPY src/ ./")
        .unwrap();
    assert_eq!(copy["miss"], "context file src/main.c changed");
    assert!(!j["critical_path"].as_array().unwrap().is_empty());
    let failed = builds[0]["id"].as_str().unwrap();
    let table = fx.ok(&["builds", "inspect", failed]);
    assert!(
        table.contains("ERROR  [2/2] RUN echo about to fail && false"),
        "{table}"
    );
    assert!(
        table.contains("| about to fail"),
        "the failed step's output: {table}"
    );
    fx.ok(&["builds", "rm", failed]);
    assert_eq!(
        fx.ok(&["builds", "ls", "--format", "json"]).lines().count(),
        1
    );
    fx.ok(&["builds", "rm", "--all"]);
    assert_eq!(
        fx.ok(&["builds", "ls", "--format", "json"]).lines().count(),
        0
    );
}

#[test]
fn a_store_over_its_gc_policy_shrinks_after_a_build_and_misses_say_evicted() {
    let Some((fx, ctx)) = fixture("gc-policy") else {
        return;
    };
    std::fs::create_dir_all(&fx.root).unwrap();
    std::fs::write(
        fx.root.join("config.toml"),
        "[gc]\nkeep-storage = \"64KB\"\nkeep-duration = \"1h\"\n",
    )
    .unwrap();
    let big = fx.dir.join("big");
    std::fs::create_dir_all(&big).unwrap();
    std::fs::write(
        big.join("Dockerfile"),
        "FROM busybox\nRUN head -c 300000 /dev/urandom > /blob\n",
    )
    .unwrap();
    let big_s = big.to_string_lossy().into_owned();
    fx.ok(&["build", "-q", "-t", "big", &big_s]);
    // Its image gone, the layer is the build cache's alone: 300 KB, over the policy.
    fx.ok(&["rmi", "big"]);
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo small > /small\n",
    )
    .unwrap();
    let out = fx.strata(&["build", "--progress", "plain", &ctx.to_string_lossy()]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("gc: removed 1 build cache entries"), "{err}");
    // The pruned step, built again, says so and why.
    let (_, m) = build(&fx, &big, &[]);
    assert_eq!(m[0]["kind"], "evicted", "{m:#?}");
    assert!(
        m[0]["reason"]
            .as_str()
            .unwrap()
            .contains("gc policy: keep-storage 64KB"),
        "{m:#?}"
    );
}

#[test]
fn a_fresh_root_importing_a_registry_cache_says_what_changed_relative_to_it() {
    let Some((fx, ctx)) = fixture("explain-remote") else {
        return;
    };
    let Some(reg) = crate::registry::Registry::start(&fx.dir.join("registry")) else {
        return;
    };
    // Both roots import the same base at the same time: the same image ID.
    let base = base_tar().unwrap();
    let ci = fx.other_root("ci-runner");
    for root in [&fx, &ci] {
        root.import_busybox(base, Some("1700000000"));
    }
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nARG GIT_SHA\nRUN echo $GIT_SHA > /sha\nRUN cat /sha\n",
    )
    .unwrap();
    let cache = format!("{}/cache/app:main", reg.addr);
    let to = format!("type=registry,ref={cache},mode=max");
    build(
        &fx,
        &ctx,
        &["--build-arg", "GIT_SHA=abc", "--cache-to", &to],
    );
    let from = format!("type=registry,ref={cache}");
    let (progress, m) = build(
        &ci,
        &ctx,
        &["--build-arg", "GIT_SHA=def", "--cache-from", &from],
    );
    assert_eq!(m[0]["kind"], "arg", "{m:#?}");
    assert_eq!(
        m[0]["reason"],
        format!("ARG GIT_SHA changed: abc → def (cache from registry {cache})")
    );
    assert_eq!(m[1]["kind"], "upstream");
    assert!(progress.contains("cache from registry"), "{progress}");
}

#[test]
fn a_mounted_image_that_changed_is_named_as_the_mount_source() {
    let Some((fx, ctx)) = fixture("explain-mount") else {
        return;
    };
    let base = base_tar().unwrap();
    let tool = |epoch: &str| {
        let args = ["import", &base.to_string_lossy(), "tool"];
        let out = fx
            .cmd(&args)
            .env("SOURCE_DATE_EPOCH", epoch)
            .output()
            .unwrap();
        expect_ok(&out, &args);
    };
    tool("1000");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=bind,from=tool,target=/t ls /t/bin/sh\n",
    )
    .unwrap();
    build(&fx, &ctx, &[]);
    tool("2000");
    let (_, m) = build(&fx, &ctx, &[]);
    assert_eq!(m[0]["kind"], "mount-source", "{m:#?}");
    assert_eq!(m[0]["mount"], "/t");
    assert!(
        m[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("the source of mount /t changed"),
        "{m:#?}"
    );
}

#[test]
fn cache_mounts_over_their_gc_rule_are_removed_after_a_build() {
    let Some((fx, ctx)) = fixture("gc-cache-mounts") else {
        return;
    };
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=cache,id=big,target=/c head -c 200000 /dev/urandom > /c/blob\n",
    )
    .unwrap();
    let ctx_s = ctx.to_string_lossy().into_owned();
    let mounts = fx.root.join("cachemounts");
    let dirs = || {
        std::fs::read_dir(&mounts)
            .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
            .unwrap_or(0)
    };
    // The first build makes the mount; the default rule (512MB) keeps it.
    fx.ok(&["build", "-q", &ctx_s]);
    let after_first = dirs();
    std::fs::write(
        fx.root.join("config.toml"),
        "[[gc.rule]]\ntype = \"exec.cachemount\"\nkeep-storage = \"10KB\"\nkeep-duration = \"48h\"\n",
    )
    .unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo other > /o\n",
    )
    .unwrap();
    // The next build looks at them now (not waiting for the hour): 200 KB over a 10 KB rule.
    let out = fx
        .cmd(&["build", "-q", &ctx_s])
        .env("STRATA_GC_NOW", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!((after_first, dirs()), (1, 0));
    // An invalid rule is a clear error.
    std::fs::write(
        fx.root.join("config.toml"),
        "[[gc.rule]]\ntype = \"source.local\"\nkeep-storage = \"1MB\"\nkeep-duration = \"1h\"\n",
    )
    .unwrap();
    let out = fx.strata(&["build", "-q", &ctx_s]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("source.local"), "{}", stderr(&out));
}
