//! The container seccomp filter, end to end: a RUN step of `strata build` runs a static C
//! program that makes system calls Docker's default profile refuses (io_uring,
//! personality(READ_IMPLIES_EXEC), user namespaces, AF_VSOCK, clone3) and ones it allows, and
//! prints what each returned; with the built-in runtime, and with runc when it is installed.

use crate::support::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

static void probe(const char *name, long rc) {
    printf("probe %s rc=%ld errno=%d\n", name, rc, rc == -1 ? errno : 0);
    fflush(stdout);
}

int main(void) {
    unsigned char params[120];
    memset(params, 0, sizeof params);
    errno = 0;
    probe("io_uring_setup", syscall(SYS_io_uring_setup, 1, params));
    errno = 0;
    probe("personality_read_implies_exec", syscall(SYS_personality, 0x0400000UL));
    errno = 0;
    probe("personality_query", syscall(SYS_personality, 0xffffffffUL));
    errno = 0;
    probe("unshare_user", syscall(SYS_unshare, CLONE_NEWUSER));
    errno = 0;
    probe("socket_vsock", syscall(SYS_socket, 40, 1, 0));
    errno = 0;
    probe("clone3", syscall(SYS_clone3, NULL, 0));
    errno = 0;
    probe("getpid", syscall(SYS_getpid));
    errno = 0;
    struct utsname u;
    probe("uname", syscall(SYS_uname, &u));
    return 0;
}
"#;

/// Compiles the probe into `dir/probe`; `None` (or a panic in CI) without gcc or a static libc.
fn compile_probe(dir: &Path) -> Option<()> {
    let src = dir.join("probe.c");
    std::fs::write(&src, PROBE_C).unwrap();
    let out = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.join("probe"))
        .arg(&src)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(()),
        other => {
            let why = match other {
                Ok(o) => stderr(&o),
                Err(e) => e.to_string(),
            };
            assert!(
                std::env::var_os("CI").is_none(),
                "CI has gcc and a static libc: {why}"
            );
            eprintln!("skipping: cannot compile a static C program: {why}");
            None
        }
    }
}

fn strata(root: &Path, args: &[&str]) -> Output {
    strata_in(root, args)
}

/// The probe's lines in a build log: name → (return value, errno).
fn results(log: &str) -> HashMap<String, (i64, i32)> {
    let mut out = HashMap::new();
    for l in log.lines() {
        let Some(rest) = l.split_once("probe ").map(|(_, r)| r) else {
            continue;
        };
        let mut it = rest.split_whitespace();
        let (Some(name), Some(rc), Some(errno)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let (Some(rc), Some(errno)) = (rc.strip_prefix("rc="), errno.strip_prefix("errno=")) else {
            continue;
        };
        if let (Ok(rc), Ok(errno)) = (rc.parse(), errno.parse()) {
            out.insert(name.to_string(), (rc, errno));
        }
    }
    out
}

#[test]
fn seccomp_build_step_gets_dockers_default_profile() {
    let Some(tar) = busybox_tar("strata-seccomp-tests") else {
        return;
    };
    let dir = tar.parent().unwrap().to_path_buf();
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    if compile_probe(&ctx).is_none() {
        return;
    }
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY probe /probe\nRUN [\"/probe\"]\n",
    )
    .unwrap();
    let mut runtimes = vec!["builtin"];
    if Command::new("runc").arg("--version").output().is_ok() {
        runtimes.push("runc");
    } else {
        eprintln!("runc is not installed: testing the built-in runtime only");
    }
    for rt in runtimes {
        let root = dir.join(format!("root-{rt}"));
        let out = strata(&root, &["import", &tar.to_string_lossy(), "busybox"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = strata(
            &root,
            &[
                "--runtime",
                rt,
                "build",
                "--progress",
                "plain",
                &ctx.to_string_lossy(),
            ],
        );
        let log = stderr(&out);
        assert!(out.status.success(), "{rt}: build failed:\n{log}");
        let r = results(&log);
        let eperm = (-1, 1);
        assert_eq!(r.get("io_uring_setup"), Some(&eperm), "{rt}:\n{log}");
        assert_eq!(
            r.get("personality_read_implies_exec"),
            Some(&eperm),
            "{rt}:\n{log}"
        );
        assert_eq!(r.get("unshare_user"), Some(&eperm), "{rt}:\n{log}");
        assert_eq!(r.get("socket_vsock"), Some(&eperm), "{rt}:\n{log}");
        // ENOSYS, so that libc falls back to clone.
        assert_eq!(r.get("clone3"), Some(&(-1, 38)), "{rt}:\n{log}");
        // What is allowed works.
        assert_eq!(r.get("personality_query"), Some(&(0, 0)), "{rt}:\n{log}");
        assert_eq!(r.get("uname"), Some(&(0, 0)), "{rt}:\n{log}");
        let pid = r.get("getpid").map(|p| p.0).unwrap_or(0);
        assert!(pid > 0, "{rt}:\n{log}");
    }
}
