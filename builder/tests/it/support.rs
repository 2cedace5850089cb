//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn testdata() -> PathBuf {
    root().join("testdata")
}

/// `../shared/conformance` next to the checkout, when present. In CI its absence is an error.
pub fn conformance_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var("STRATA_CONFORMANCE_DIR")
            .ok()
            .map(PathBuf::from),
        Some(root().join("../shared/conformance")),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.is_dir());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have ../shared/conformance"
        );
        eprintln!("skipping the shared conformance data: ../shared/conformance is not present");
    }
    found
}

/// Runs the `strata` binary on the state root `root`, with no standard input.
pub fn strata_in(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .env("STRATA_ROOT", root)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run strata")
}

/// `out`'s standard output, after asserting that `strata args` succeeded.
pub fn expect_ok(out: &Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "strata {args:?}: {}{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// A test file's busybox tarball ([`busybox_tar`] in `temp_dir()/name`), made once per test
/// binary run and kept in `cell`.
pub fn base_tar_in(
    cell: &'static std::sync::OnceLock<Option<PathBuf>>,
    name: &str,
) -> Option<&'static Path> {
    cell.get_or_init(|| busybox_tar(name)).as_deref()
}

/// Runs the `strata` binary.
pub fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .env("STRATA_ROOT", std::env::temp_dir().join("strata-test-root"))
        .output()
        .expect("run strata")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Files below `dir` (recursively) whose name satisfies `pred`, sorted.
pub fn files(dir: &Path, pred: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if pred(&e.file_name().to_string_lossy()) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A busybox root filesystem tarball made offline (testdata/base-image.sh) in a fresh
/// `temp_dir()/name`, or `None` when the end-to-end tests cannot run here (not root, no
/// busybox-static). In CI both are errors.
pub fn busybox_tar(name: &str) -> Option<PathBuf> {
    if !rustix::process::geteuid().is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("skipping: {name} need root");
        return None;
    }
    if Command::new("busybox").arg("true").status().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs busybox-static"
        );
        eprintln!("skipping: busybox-static is not installed");
        return None;
    }
    let dir = std::env::temp_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let tar = dir.join("busybox.tar");
    let out = Command::new(testdata().join("base-image.sh"))
        .arg("busybox")
        .arg(&tar)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    Some(tar)
}
