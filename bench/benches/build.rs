//! `strata build` end to end (the speed goals):
//!
//! - 30 trivial RUN steps with `--no-cache`: the overhead per RUN step;
//! - a no-op rebuild of a 5,000-file, 100 MB context (everything cached);
//! - a cold build of that context (a fresh state root: every file hashed and copied).
//!
//! Needs root, busybox-static and a release build of strata (`cargo build --release`); says
//! what is missing instead of failing. `bench/compare.sh` runs the same builds with BuildKit.

use criterion::{Criterion, criterion_group, criterion_main};
use std::path::Path;
use std::process::Command;
use strata_bench::{busybox_root, make_context, strata_bin};

fn build(bin: &Path, root: &Path, args: &[&str]) {
    let out = Command::new(bin)
        .arg("build")
        .arg("-q")
        .args(args)
        .env("STRATA_ROOT", root)
        .output()
        .expect("strata build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn builds(c: &mut Criterion) {
    let Some(bin) = strata_bin("build") else {
        return;
    };
    let dir = std::env::temp_dir().join("strata-bench-build");
    let Some(root) = busybox_root(&bin, &dir) else {
        return;
    };
    let runs = dir.join("runs");
    std::fs::create_dir_all(&runs).expect("mkdir");
    let mut df = String::from("FROM busybox\n");
    for i in 0..30 {
        df.push_str(&format!("RUN echo step{i} > /s{i}\n"));
    }
    std::fs::write(runs.join("Dockerfile"), df).expect("write");
    let ctx = dir.join("ctx100");
    if !ctx.join("Dockerfile").is_file() {
        make_context(
            &ctx,
            5_000,
            20_000,
            "FROM busybox\nCOPY . /ctx/\nRUN ls /ctx | wc -l\n",
        );
    }
    let mut g = c.benchmark_group("build");
    g.sample_size(10);
    let runs_s = runs.to_string_lossy().into_owned();
    g.bench_function("30 trivial RUN steps, --no-cache", |b| {
        b.iter(|| build(&bin, &root, &["--no-cache", &runs_s]))
    });
    let ctx_s = ctx.to_string_lossy().into_owned();
    build(&bin, &root, &["-t", "ctx", &ctx_s]);
    g.bench_function("no-op rebuild, 5000 files / 100 MB context", |b| {
        b.iter(|| build(&bin, &root, &["-t", "ctx", &ctx_s]))
    });
    let cold = dir.join("cold");
    let tar = dir.join("busybox.tar");
    g.bench_function("cold build, 5000 files / 100 MB context", |b| {
        b.iter_batched(
            || {
                let _ = std::fs::remove_dir_all(&cold);
                let ok = Command::new(&bin)
                    .args(["import", &tar.to_string_lossy(), "busybox"])
                    .env("STRATA_ROOT", &cold)
                    .output()
                    .is_ok_and(|o| o.status.success());
                assert!(ok, "import");
            },
            |_| build(&bin, &cold, &["-t", "ctx", &ctx_s]),
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, builds);
criterion_main!(benches);
