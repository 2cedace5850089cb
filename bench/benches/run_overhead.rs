//! `strata run --rm busybox true`: the fixed cost of a container (built-in runtime and runc).
//! Needs root, busybox-static and a release build of strata (`cargo build --release`); the
//! benchmark says what is missing instead of failing.

use criterion::{Criterion, criterion_group, criterion_main};
use std::process::Command;
use strata_bench::{busybox_root, strata_bin};

fn run_overhead(c: &mut Criterion) {
    let Some(bin) = strata_bin("run_overhead") else {
        return;
    };
    let Some(root) = busybox_root(&bin, &std::env::temp_dir().join("strata-bench-run")) else {
        return;
    };
    let mut g = c.benchmark_group("run");
    for rt in ["builtin", "runc"] {
        if rt == "runc" && Command::new("runc").arg("--version").output().is_err() {
            eprintln!("run_overhead: runc is not installed");
            continue;
        }
        g.bench_function(format!("{rt}: run --rm busybox true"), |b| {
            b.iter(|| {
                let s = Command::new(&bin)
                    .args(["--runtime", rt, "run", "--rm", "busybox", "true"])
                    .env("STRATA_ROOT", &root)
                    .status()
                    .expect("strata run");
                assert!(s.success());
            })
        });
    }
    g.finish();
}

criterion_group!(benches, run_overhead);
criterion_main!(benches);
