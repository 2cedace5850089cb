//! `strata parse --format json` against BuildKit's own parser (the `dockerfile` PyPI package
//! wraps it), field by field, on every Dockerfile in testdata/ and ../shared/conformance.

use crate::support::*;
use std::path::PathBuf;
use std::process::Command;

fn dockerfiles() -> Vec<PathBuf> {
    let is_df = |n: &str| n == "Dockerfile" || n.ends_with(".Dockerfile");
    let mut v = files(&testdata(), &is_df);
    if let Some(c) = conformance_dir() {
        v.extend(files(&c, &is_df));
    }
    v
}

/// The oracle's JSON for all files, or `None` (with a message) when it is not installed.
fn oracle(paths: &[PathBuf]) -> Option<serde_json::Value> {
    let script = testdata().join("oracle/dump.py");
    let out = Command::new("python3").arg(script).args(paths).output();
    let missing = match &out {
        Err(_) => true,
        Ok(o) => o.status.code() == Some(3),
    };
    if missing {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have python3 with the dockerfile package (.ci/run installs it)"
        );
        eprintln!("skipping: python3 with the `dockerfile` package is not installed");
        return None;
    }
    let out = out.ok()?;
    assert!(out.status.success(), "oracle failed: {}", stderr(&out));
    Some(serde_json::from_slice(&out.stdout).expect("oracle JSON"))
}

/// Where the oracle and current BuildKit disagree, strata follows current BuildKit.
/// (file name suffix, instruction index, why)
const ORACLE_DIVERGENCES: &[(&str, usize, &str)] = &[(
    "tensorflow__build__devinfra_windows_rbe__Dockerfile.Dockerfile",
    27,
    "text after a JSON array makes the instruction shell form since dockerfile 1.10 \
     (moby/buildkit 80518e257, json.NewDecoder replaced by json.Unmarshal); the PyPI package \
     wraps an older parser that ignored the trailing text",
)];

/// The oracle hands strings through C, which ends them at the first NUL byte.
fn truncate_at_nul(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) => {
            serde_json::Value::String(s.split('\0').next().unwrap_or_default().to_string())
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.iter().map(truncate_at_nul).collect())
        }
        other => other.clone(),
    }
}

#[test]
fn parse_matches_buildkit_field_by_field() {
    let paths = dockerfiles();
    assert!(paths.len() >= 5, "no Dockerfiles found");
    let Some(oracle) = oracle(&paths) else { return };
    let mut failures = Vec::new();
    let mut compared = 0;
    for p in &paths {
        let key = p.to_string_lossy().to_string();
        let expected = &oracle[&key];
        let out = strata(&["parse", "--format", "json", &key]);
        if expected.get("error").is_some() {
            if out.status.success() {
                failures.push(format!(
                    "{key}: BuildKit rejects it ({}), strata accepted it",
                    expected["error"]
                ));
            }
            continue;
        }
        if !out.status.success() {
            failures.push(format!("{key}: strata failed: {}", stderr(&out)));
            continue;
        }
        let got: serde_json::Value = match serde_json::from_slice(&out.stdout) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{key}: bad JSON from strata: {e}"));
                continue;
            }
        };
        let (Some(exp), Some(got)) = (expected.as_array(), got.as_array()) else {
            failures.push(format!("{key}: not arrays"));
            continue;
        };
        if exp.len() != got.len() {
            failures.push(format!(
                "{key}: {} instructions from BuildKit, {} from strata",
                exp.len(),
                got.len()
            ));
            continue;
        }
        for (i, (e, g)) in exp.iter().zip(got).enumerate() {
            if let Some((_, _, why)) = ORACLE_DIVERGENCES
                .iter()
                .find(|(f, n, _)| key.ends_with(f) && *n == i)
            {
                // Check that strata does what current BuildKit does: shell form.
                assert_eq!(g["json"], false, "{key}: instruction {i}: {why}");
                continue;
            }
            for field in [
                "cmd",
                "sub_cmd",
                "json",
                "original",
                "start_line",
                "end_line",
                "flags",
                "value",
                "heredocs",
            ] {
                if e[field] != g[field] && e[field] != truncate_at_nul(&g[field]) {
                    failures.push(format!(
                        "{key}: instruction {i} ({}) field {field}: BuildKit {} strata {}",
                        e["cmd"], e[field], g[field]
                    ));
                }
            }
        }
        compared += 1;
    }
    eprintln!("compared {compared} Dockerfiles with BuildKit's parser");
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
