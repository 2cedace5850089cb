//! Conformance with BuildKit: its parser fixtures, its shell-lexer tables, and real-world
//! Dockerfiles. The data lives in `../shared/conformance` (BuildKit's fixtures are Apache-2.0,
//! the real-world files list their sources and licences in SOURCES.tsv); tests skip with a
//! message when it is absent, and fail when it is absent in CI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use strata_frontend::lower::{BuildOptions, NoResolver, lower};
use strata_frontend::parser::{dump, parse};
use strata_frontend::shell::Lexer;

fn conformance_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var("STRATA_CONFORMANCE_DIR")
            .ok()
            .map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance")),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance")),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.is_dir());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have ../shared/conformance (or STRATA_CONFORMANCE_DIR)"
        );
        eprintln!("skipping: ../shared/conformance is not present");
    }
    found
}

fn dirs(p: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(p)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn read(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned()
}

#[test]
fn buildkit_parser_fixtures() {
    let Some(root) = conformance_dir() else {
        return;
    };
    let base = root.join("buildkit-parser/parser/testfiles");
    let mut n = 0;
    let mut failures = Vec::new();
    for dir in dirs(&base) {
        let src = read(&dir.join("Dockerfile"));
        let expected = read(&dir.join("result"));
        let (ast, diags) = parse(&src);
        let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
        let got = dump::dump(&ast);
        if !errors.is_empty() || got != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{got}--- errors {errors:?}",
                dir.display()
            ));
        }
        n += 1;
    }
    assert!(n >= 33, "only {n} fixtures found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn buildkit_negative_fixtures_are_rejected() {
    let Some(root) = conformance_dir() else {
        return;
    };
    let base = root.join("buildkit-parser/parser/testfiles-negative");
    let mut n = 0;
    for dir in dirs(&base) {
        let src = read(&dir.join("Dockerfile"));
        let (_, diags) = parse(&src);
        assert!(
            diags.iter().any(|d| d.is_error()),
            "{} must fail to parse",
            dir.display()
        );
        n += 1;
    }
    assert_eq!(n, 4);
}

#[test]
fn buildkit_line_numbers() {
    let Some(root) = conformance_dir() else {
        return;
    };
    let src = read(&root.join("buildkit-parser/parser/testfile-line/Dockerfile"));
    let (ast, diags) = parse(&src);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let lines: Vec<(usize, usize)> = ast
        .children
        .iter()
        .map(|n| (n.start_line, n.end_line))
        .collect();
    assert_eq!(lines, vec![(5, 5), (11, 12), (17, 31)]);
}

#[test]
fn buildkit_env_var_table() {
    let Some(root) = conformance_dir() else {
        return;
    };
    let text = read(&root.join("buildkit-parser/shell/envVarTest"));
    let env: BTreeMap<String, String> = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let lex = Lexer::new('\\');
    let (mut ran, mut failures) = (0, Vec::new());
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(parts.len(), 3, "line {}", i + 1);
        let (platform, source, expected) = (parts[0].trim(), parts[1].trim(), parts[2].trim());
        if platform == "W" {
            continue;
        }
        ran += 1;
        let got = lex.process_word(source, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(e), exp) => exp != "error" && e.result == exp,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "line {}: {source:?} expected {expected:?} got {got:?}",
                i + 1
            ));
        }
    }
    assert!(ran > 200, "ran {ran}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn buildkit_words_table() {
    let Some(root) = conformance_dir() else {
        return;
    };
    let text = read(&root.join("buildkit-parser/shell/wordsTest"));
    let lex = Lexer::new('\\');
    let mut env: Vec<(String, String)> = Vec::new();
    let (mut ran, mut failures) = (0, Vec::new());
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            let rest = rest.trim_start_matches(' ');
            let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
            env.push((k.to_string(), v.to_string()));
            continue;
        }
        let parts: Vec<&str> = line.split('|').collect();
        assert_eq!(parts.len(), 2, "line {}", i + 1);
        let test = parts[0].trim();
        let expected: Vec<&str> = parts[1].trim_start_matches(' ').split(',').collect();
        let got = lex
            .process_words(test, &env)
            .unwrap_or_else(|_| vec!["error".to_string()]);
        ran += 1;
        if got != expected {
            failures.push(format!(
                "line {}: {test:?} expected {expected:?} got {got:?}",
                i + 1
            ));
        }
    }
    assert!(ran >= 24, "ran {ran}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Real-world files that do not lower with default arguments, why (BuildKit fails on them the
/// same way), and the build args with which they must then lower.
const NEEDS_ARGS: &str =
    "FROM names a global ARG that has no default: BuildKit also fails without --build-arg";
type Expected = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);
const REALWORLD_EXPECTED_FAILURES: &[Expected] = &[
    (
        "NVIDIA__nvidia-container-toolkit__docker__Dockerfile.rpm-yum.Dockerfile",
        NEEDS_ARGS,
        &[("BASEIMAGE", "rockylinux:9")],
    ),
    (
        "containerd__containerd__integration__images__volume-copy-up__Dockerfile_windows.Dockerfile",
        NEEDS_ARGS,
        &[("BASE", "mcr.microsoft.com/windows/nanoserver:ltsc2022")],
    ),
    (
        "gitlabhq__gitlab-runner__dockerfiles__runner__Dockerfile.Dockerfile",
        NEEDS_ARGS,
        &[("BASE_IMAGE", "alpine:3.20")],
    ),
    (
        "kubernetes__ingress-nginx__rootfs__Dockerfile.Dockerfile",
        NEEDS_ARGS,
        &[("BASE_IMAGE", "alpine:3.20")],
    ),
    (
        "kubernetes__release__images__build__cross__default__Dockerfile.Dockerfile",
        NEEDS_ARGS,
        &[("BASEIMAGE", "debian:bookworm"), ("GO_VERSION", "1.22")],
    ),
    (
        "kubernetes__release__images__build__debian-base__bookworm__Dockerfile.build.Dockerfile",
        NEEDS_ARGS,
        &[("BASEIMAGE", "debian:bookworm")],
    ),
    (
        "tailscale__tailscale__ssh__tailssh__testcontainers__Dockerfile.Dockerfile",
        NEEDS_ARGS,
        &[("BASE", "alpine:3.20")],
    ),
    (
        "containers__podman__test__e2e__build__buildkit-mount__Containerfilecachewrite.Dockerfile",
        "a podman test file: RUN --mount=...,z uses podman's SELinux relabel option, which BuildKit rejects too (\"invalid field 'z' must be a key=value pair\")",
        &[],
    ),
];

#[test]
fn realworld_dockerfiles_parse_check_and_lower() {
    let Some(root) = conformance_dir() else {
        return;
    };
    let mut n = 0;
    let mut failures = Vec::new();
    for f in dirs(&root.join("realworld")) {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with("Dockerfile") {
            continue;
        }
        n += 1;
        let src = read(&f);
        let (_, parse_diags) = parse(&src);
        if let Some(e) = parse_diags.iter().find(|d| d.is_error()) {
            failures.push(format!("{name}: parse: {}", e.headline(&name)));
            continue;
        }
        let expected = REALWORLD_EXPECTED_FAILURES
            .iter()
            .find(|(n, _, _)| *n == name);
        for all_stages in [true, false] {
            let opts = BuildOptions {
                all_stages,
                ..BuildOptions::default()
            };
            if let Some((_, why, args)) = expected {
                // It must fail with default arguments…
                let (lowered, _) = lower(&src, &opts, &NoResolver);
                assert!(
                    lowered.is_none(),
                    "{name} lowers now: drop it from the list ({why})"
                );
                if args.is_empty() {
                    break;
                }
                // …and lower with the build args it needs.
                let opts = BuildOptions {
                    build_args: args
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ..opts
                };
                let (lowered, diags) = lower(&src, &opts, &NoResolver);
                let errors: Vec<String> = diags
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| d.headline(&name))
                    .collect();
                if lowered.is_none() {
                    failures.push(format!("{name} with {args:?}: {errors:?}"));
                }
                continue;
            }
            let (lowered, diags) = lower(&src, &opts, &NoResolver);
            let errors: Vec<String> = diags
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.headline(&name))
                .collect();
            if !errors.is_empty() || lowered.is_none() {
                failures.push(format!("{name} (all_stages={all_stages}): {errors:?}"));
                break;
            }
        }
    }
    assert!(n >= 100, "only {n} real-world files");
    assert!(
        failures.is_empty(),
        "{} of {n} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
