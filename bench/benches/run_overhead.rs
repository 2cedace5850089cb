//! `strata run --rm busybox true`: the fixed cost of a container (built-in runtime and runc).
//! Needs root, busybox-static and a release build of strata (`cargo build --release`); the
//! benchmark says what is missing instead of failing.

use criterion::{Criterion, criterion_group, criterion_main};
use std::path::{Path, PathBuf};
use std::process::Command;

fn strata_bin() -> Option<PathBuf> {
    let p = std::env::var_os("STRATA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/strata"));
    p.is_file().then_some(p)
}

fn run_overhead(c: &mut Criterion) {
    let Some(bin) = strata_bin() else {
        eprintln!(
            "run_overhead: build strata first (cargo build --release -p strata) or set STRATA_BIN"
        );
        return;
    };
    if !rustix_is_root() {
        eprintln!("run_overhead: needs root");
        return;
    }
    let dir = std::env::temp_dir().join("strata-bench-run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let tar = dir.join("busybox.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/base-image.sh");
    if !Command::new(&script)
        .arg("busybox")
        .arg(&tar)
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("run_overhead: could not make the busybox base image (install busybox-static)");
        return;
    }
    let root = dir.join("root");
    let ok = Command::new(&bin)
        .args(["import", &tar.to_string_lossy(), "busybox"])
        .env("STRATA_ROOT", &root)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("run_overhead: import failed");
        return;
    }
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

fn rustix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

criterion_group!(benches, run_overhead);
criterion_main!(benches);
