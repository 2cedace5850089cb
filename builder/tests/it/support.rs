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

/// The `strata` binary on the state root `root`, with no standard input, ready to run.
pub fn strata_cmd(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.args(args)
        .env("STRATA_ROOT", root)
        .stdin(std::process::Stdio::null());
    c
}

/// Runs the `strata` binary on the state root `root`, with no standard input.
pub fn strata_in(root: &Path, args: &[&str]) -> Output {
    strata_cmd(root, args).output().expect("run strata")
}

/// A test's own directory and the strata state root in it (`dir/root` unless said otherwise),
/// on which it runs the `strata` binary.
pub struct Fixture {
    pub dir: PathBuf,
    pub root: PathBuf,
    /// `DOCKER_CONFIG` for strata, when the test keeps its registry credentials to itself.
    docker_config: Option<PathBuf>,
}

impl Fixture {
    /// `dir`, emptied (made anew), with the state root `dir/root`, not made yet.
    pub fn fresh(dir: PathBuf) -> Fixture {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Fixture::at(dir)
    }

    /// `dir` as it is, with the state root `dir/root`.
    pub fn at(dir: PathBuf) -> Fixture {
        Fixture {
            root: dir.join("root"),
            dir,
            docker_config: None,
        }
    }

    /// A fresh directory `name` next to the base tarball `base` (a test file's `base_tar()`).
    pub fn new(base: &Path, name: &str) -> Fixture {
        Fixture::fresh(base.parent().unwrap().join(name))
    }

    /// [`Fixture::new`] with the base tarball imported as `busybox`.
    pub fn with_busybox(base: &Path, name: &str) -> Fixture {
        let fx = Fixture::new(base, name);
        fx.import_busybox(base, None);
        fx
    }

    /// Imports the busybox tarball `tar` as `busybox`, asserting that it worked; with `epoch`,
    /// as `SOURCE_DATE_EPOCH` (the image's creation time).
    pub fn import_busybox(&self, tar: &Path, epoch: Option<&str>) {
        let args = ["import", &tar.to_string_lossy(), "busybox"];
        let mut cmd = self.cmd(&args);
        if let Some(epoch) = epoch {
            cmd.env("SOURCE_DATE_EPOCH", epoch);
        }
        expect_ok(&cmd.output().expect("run strata"), &args);
    }

    /// The same directory with another, empty, state root `dir/name`.
    pub fn other_root(&self, name: &str) -> Fixture {
        Fixture {
            dir: self.dir.clone(),
            root: self.dir.join(name),
            docker_config: self.docker_config.clone(),
        }
    }

    /// Strata's registry credentials in `dir/docker`, not the host's.
    pub fn own_docker_config(mut self) -> Fixture {
        self.docker_config = Some(self.dir.join("docker"));
        self
    }

    /// `strata args` on this state root, with no standard input, ready to run.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = strata_cmd(&self.root, args);
        if let Some(d) = &self.docker_config {
            c.env("DOCKER_CONFIG", d);
        }
        c
    }

    /// Runs `strata args` on this state root.
    pub fn strata(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run strata")
    }

    /// `strata args`' standard output, after asserting that it succeeded.
    pub fn ok(&self, args: &[&str]) -> String {
        expect_ok(&self.strata(args), args)
    }

    /// `dir/name`, as a string for an argument.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// Writes `dockerfile` to a fresh context `dir/ctx-NAME` and returns its path.
    pub fn context(&self, name: &str, dockerfile: &str) -> String {
        let ctx = self.dir.join(format!("ctx-{name}"));
        let _ = std::fs::remove_dir_all(&ctx);
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        ctx.to_string_lossy().into_owned()
    }
}

/// `Deref` to the [`Fixture`] that a test file's own fixture type keeps in its field `fx`, so
/// that the shared fields and methods are its own too.
macro_rules! deref_to_fixture {
    ($t:ty) => {
        impl std::ops::Deref for $t {
            type Target = $crate::support::Fixture;
            fn deref(&self) -> &Self::Target {
                &self.fx
            }
        }
    };
}
pub(crate) use deref_to_fixture;

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
