//! The command line: `strata parse`, `strata check`, `strata graph`.

use crate::support::*;

#[test]
fn check_reports_rules_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM busybox as Build\nMAINTAINER me\nCMD echo hi\n",
    )
    .unwrap();
    let d = dir.path().to_string_lossy().to_string();
    let out = strata(&["check", &d]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = stdout(&out);
    let file = format!("{d}/Dockerfile");
    assert!(
        s.contains(&format!(
            "{file}:1: StageNameCasing: Stage name 'Build' should be lowercase"
        )),
        "{s}"
    );
    assert!(s.contains(&format!("{file}:1: FromAsCasing:")), "{s}");
    assert!(
        s.contains(&format!("{file}:2: MaintainerDeprecated:")),
        "{s}"
    );
    assert!(
        s.contains(&format!("{file}:3: JSONArgsRecommended:")),
        "{s}"
    );

    std::fs::write(
        dir.path().join("Dockerfile"),
        "# check=error=true\nFROM busybox\nMAINTAINER me\n",
    )
    .unwrap();
    let out = strata(&["check", &d]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn errors_name_the_file_and_line_and_show_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.Dockerfile"),
        "FROM busybox\nRUN ok\nCOPY onlyone\n",
    )
    .unwrap();
    let f = dir
        .path()
        .join("app.Dockerfile")
        .to_string_lossy()
        .to_string();
    let d = dir.path().to_string_lossy().to_string();
    let out = strata(&["check", "-f", &f, &d]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains(&format!("{f}:3: COPY requires at least two arguments")),
        "{e}"
    );
    assert!(e.contains(" 3 | COPY onlyone"), "{e}");
    assert!(e.contains("hint: write COPY <src>... <dest>"), "{e}");
}

#[test]
fn graph_prints_dot_and_json() {
    let sample = testdata().join("sample");
    let s = sample.to_string_lossy().to_string();
    let out = strata(&["graph", &s]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dot = stdout(&out);
    assert!(dot.starts_with("digraph strata {"));
    assert!(dot.contains("[build 4/4] RUN sh ./build.sh"));
    let out = strata(&["graph", "--format", "json", &s]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ops = j["ops"].as_array().unwrap();
    assert!(ops.iter().any(|o| o["op"]["op"] == "exec"));
    assert!(j["target_digest"].as_str().unwrap().starts_with("sha256:"));
    // The same input always lowers to the same digests.
    let again: serde_json::Value =
        serde_json::from_slice(&strata(&["graph", "--format", "json", &s]).stdout).unwrap();
    assert_eq!(j["target_digest"], again["target_digest"]);
    // --target picks a stage; a build arg changes digests downstream of its ARG.
    let out = strata(&[
        "graph",
        "--format",
        "json",
        "--target",
        "build",
        "--build-arg",
        "BASE=alpine",
        &s,
    ]);
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["stages"][0]["needed"], true);
    assert_eq!(t["stages"][2]["needed"], false);
    assert_ne!(t["target_digest"], j["target_digest"]);
}

#[test]
fn dockerfile_from_stdin() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["graph", "--format", "json", "-f", "-"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM busybox\nRUN true\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["ops"].as_array().unwrap().len(), 2);
}

#[test]
fn parse_prints_buildkit_dump() {
    let f = testdata().join("dockerfiles/instructions.Dockerfile");
    let out = strata(&["parse", &f.to_string_lossy()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stdout(&out);
    assert!(
        s.contains("(env \"LEGACY\" \"value with spaces\" \"\")"),
        "{s}"
    );
    assert!(s.contains("(onbuild (run \"echo triggered\"))"), "{s}");
}

#[test]
fn realworld_dockerfiles_check_and_graph() {
    let Some(c) = conformance_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_string_lossy().to_string();
    let mut clean = 0;
    let all = files(&c.join("realworld"), &|n| n.ends_with(".Dockerfile"));
    for f in &all {
        let fs = f.to_string_lossy().to_string();
        let out = strata(&["check", "-f", &fs, &d]);
        let err = stderr(&out);
        match out.status.code() {
            Some(0) => clean += 1,
            // The files that need a --build-arg for FROM, and podman's `z` mount option, which
            // BuildKit rejects as well (see frontend/tests/conformance.rs).
            Some(1) => assert!(
                err.contains("should not be blank")
                    || err.contains("invalid reference format")
                    || err.contains("invalid field 'z'"),
                "{fs}: {err}"
            ),
            other => panic!("{fs}: exit {other:?}: {err}"),
        }
        let out = strata(&["graph", "--format", "json", "-f", &fs, &d]);
        assert!(
            matches!(out.status.code(), Some(0) | Some(1)),
            "{fs}: {}",
            stderr(&out)
        );
    }
    assert!(
        clean >= all.len() - 8,
        "{clean} of {} checked cleanly",
        all.len()
    );
}

#[test]
fn testdata_dockerfiles_check_cleanly() {
    for f in files(&testdata().join("dockerfiles"), &|n| {
        n.ends_with(".Dockerfile")
    }) {
        let dir = f.parent().unwrap().to_string_lossy().to_string();
        let out = strata(&["check", "-f", &f.to_string_lossy(), &dir]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            f.display(),
            stderr(&out)
        );
    }
}

#[test]
fn bad_input_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("Dockerfile"), &garbage).unwrap();
    let d = dir.path().to_string_lossy().to_string();
    for cmd in ["check", "graph"] {
        let out = strata(&[cmd, &d]);
        assert!(
            matches!(out.status.code(), Some(0) | Some(1)),
            "{cmd}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("panicked"));
    }
}

#[test]
fn dockerfile_specific_ignore_file_wins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("app.Dockerfile"),
        "FROM busybox\nCOPY secret.txt /s\nCOPY notes.md /n\n",
    )
    .unwrap();
    std::fs::write(d.join(".dockerignore"), "notes.md\n").unwrap();
    let f = d.join("app.Dockerfile").to_string_lossy().to_string();
    let ds = d.to_string_lossy().to_string();
    // The context's .dockerignore applies...
    let out = strata(&["check", "-f", &f, &ds]);
    let s = stdout(&out);
    assert!(
        s.contains(":3: CopyIgnoredFile: Attempting to COPY file \"notes.md\""),
        "{s}"
    );
    assert!(!s.contains("secret.txt"), "{s}");
    // ...until app.Dockerfile.dockerignore replaces it.
    std::fs::write(d.join("app.Dockerfile.dockerignore"), "secret.txt\n").unwrap();
    let s = stdout(&strata(&["check", "-f", &f, &ds]));
    assert!(
        s.contains(":2: CopyIgnoredFile: Attempting to COPY file \"secret.txt\""),
        "{s}"
    );
    assert!(!s.contains("notes.md"), "{s}");
    // The graph's context source carries the patterns.
    let j: serde_json::Value =
        serde_json::from_slice(&strata(&["graph", "--format", "json", "-f", &f, &ds]).stdout)
            .unwrap();
    let local = j["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["op"]["type"] == "local")
        .expect("a context source");
    assert_eq!(
        local["op"]["exclude_patterns"],
        serde_json::json!(["secret.txt"])
    );
}
