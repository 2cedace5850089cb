//! The workspace's conventions, checked (as rust-analyzer's tidy test keeps its own): each
//! rule names the files that break it.
//!
//! - the frontend touches no filesystem, process, environment or clock;
//! - every source file starts with its `//!` line;
//! - code, messages and comments speak of the code, not of issue numbers or plans;
//! - an integration test that skips its work fails under CI (`CI` set) and says it skipped;
//! - a function longer than 150 lines says why, in a `// Long:` comment above it;
//! - only the executor crate mounts, enters namespaces or holds `unsafe`.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Rust files under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "target") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every crate's sources, tests and benchmarks.
fn all_files() -> Vec<PathBuf> {
    let root = workspace();
    let mut out = Vec::new();
    for c in [
        "oci", "frontend", "solver", "cache", "registry", "executor", "builder", "bench",
    ] {
        for d in ["src", "tests", "benches"] {
            out.extend(rust_files(&root.join(c).join(d)));
        }
    }
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(workspace())
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

fn report(rule: &str, bad: Vec<String>) {
    assert!(bad.is_empty(), "{rule}:\n  {}", bad.join("\n  "));
}

/// The part of a file that is not its unit tests (`#[cfg(test)] mod …` to the end).
fn without_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    }
}

#[test]
fn the_frontend_touches_no_filesystem_process_environment_or_clock() {
    let mut bad = Vec::new();
    for f in rust_files(&workspace().join("frontend/src")) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in without_tests(&text).lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for banned in [
                "std::fs",
                "std::process",
                "std::env",
                "std::net",
                "SystemTime",
                "Instant::now",
            ] {
                if code.contains(banned) {
                    bad.push(format!("{}:{}: {banned}", rel(&f), i + 1));
                }
            }
        }
    }
    report(
        "the frontend reaches outside (it gets text, returns a graph)",
        bad,
    );
}

#[test]
fn every_source_file_starts_with_its_doc_line() {
    let bad: Vec<String> = all_files()
        .into_iter()
        .filter(|f| {
            !std::fs::read_to_string(f)
                .unwrap()
                .trim_start()
                .starts_with("//!")
        })
        .map(|f| rel(&f))
        .collect();
    report("files without a `//!` line saying what they are", bad);
}

#[test]
fn code_speaks_of_the_code_not_of_issues_or_plans() {
    // Written split so this file does not match itself.
    let words = [
        ["issue", " #"].concat(),
        ["issue", "s that build"].concat(),
        ["later", " issue"].concat(),
        ["not supported", " yet"].concat(),
        ["arrive", " with the"].concat(),
        ["fn issue", ""].concat(),
        ["from the engine", " issue"].concat(),
        ["TODO", "(issue"].concat(),
    ];
    let mut bad = Vec::new();
    for f in all_files() {
        if f.ends_with("builder/tests/tidy.rs") {
            continue; // the rule's own words
        }
        let text = std::fs::read_to_string(&f).unwrap().to_lowercase();
        for (i, line) in text.lines().enumerate() {
            for w in &words {
                if line.contains(&w.to_lowercase()) {
                    bad.push(format!("{}:{}: {:?}", rel(&f), i + 1, w));
                }
            }
            // `issue 8`, `issue8_`, `#13`-style references.
            let b = line.as_bytes();
            for (j, _) in line.match_indices("issue") {
                let next = &b[j + 5..];
                let digit = |s: &[u8]| s.first().is_some_and(u8::is_ascii_digit);
                if digit(next) || (next.first() == Some(&b' ') && digit(&next[1..])) {
                    bad.push(format!("{}:{}: an issue number", rel(&f), i + 1));
                }
            }
        }
    }
    report(
        "code, messages or comments that speak of issues or plans",
        bad,
    );
}

#[test]
fn a_test_that_skips_fails_under_ci() {
    let root = workspace();
    let mut files = Vec::new();
    for c in [
        "oci", "frontend", "solver", "cache", "registry", "executor", "builder", "bench",
    ] {
        files.extend(rust_files(&root.join(c).join("tests")));
        files.extend(rust_files(&root.join(c).join("src")));
    }
    let mut bad = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.contains("eprintln!") {
                continue;
            }
            let said = lines[i..(i + 3).min(lines.len())].join(" ");
            if !said.contains("\"skipping") {
                continue;
            }
            let near = lines[i.saturating_sub(10)..(i + 4).min(lines.len())].join("\n");
            if !near.contains("var_os(\"CI\")") && !near.contains("tidy: a partial skip") {
                bad.push(format!("{}:{}", rel(&f), i + 1));
            }
        }
    }
    report(
        "skips that would pass under CI (assert `std::env::var_os(\"CI\").is_none()` first)",
        bad,
    );
}

/// Functions (`fn` at any indentation) and their length in lines, with the comment lines
/// directly above them.
fn functions(text: &str) -> Vec<(usize, String, usize, Vec<String>)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let t = l.trim_start();
        let indent = &l[..l.len() - t.len()];
        let t = t
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("pub ")
            .trim_start_matches("async ")
            .trim_start_matches("unsafe ");
        if let Some(rest) = t.strip_prefix("fn ") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let mut j = i;
            while j < lines.len()
                && !lines[j].trim_end().ends_with('{')
                && !lines[j].trim_end().ends_with(';')
            {
                j += 1;
            }
            if j >= lines.len() || lines[j].trim_end().ends_with(';') {
                i = j + 1;
                continue;
            }
            let close = format!("{indent}}}");
            let mut k = j + 1;
            while k < lines.len() && lines[k] != close {
                k += 1;
            }
            let mut above = Vec::new();
            let mut a = i;
            while a > 0 {
                let p = lines[a - 1].trim_start();
                if p.starts_with("//") || p.starts_with("#[") {
                    above.push(p.to_string());
                    a -= 1;
                } else {
                    break;
                }
            }
            out.push((i + 1, name, k.saturating_sub(i) + 1, above));
            i = k + 1;
            continue;
        }
        i += 1;
    }
    out
}

#[test]
fn a_function_over_150_lines_says_why() {
    let root = workspace();
    let mut bad = Vec::new();
    for c in [
        "oci", "frontend", "solver", "cache", "registry", "executor", "builder",
    ] {
        for f in rust_files(&root.join(c).join("src")) {
            let text = std::fs::read_to_string(&f).unwrap();
            for (line, name, len, above) in functions(without_tests(&text)) {
                if len > 150 && !above.iter().any(|a| a.starts_with("// Long:")) {
                    bad.push(format!("{}:{line}: {name} ({len} lines)", rel(&f)));
                }
            }
        }
    }
    report(
        "functions over 150 lines without a `// Long:` comment saying why",
        bad,
    );
}

#[test]
fn only_the_executor_mounts_unshares_or_holds_unsafe() {
    let root = workspace();
    let words = [
        ["allow(unsafe", "_code)"].concat(),
        ["unsafe", " {"].concat(),
        ["rustix::", "mount"].concat(),
        ["nix::", "mount"].concat(),
        ["unsh", "are("].concat(),
        ["CloneFl", "ags"].concat(),
        ["setn", "s("].concat(),
    ];
    let mut bad = Vec::new();
    for c in [
        "oci", "frontend", "solver", "cache", "registry", "builder", "bench",
    ] {
        for f in rust_files(&root.join(c).join("src")) {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                if words.iter().any(|w| code.contains(w.as_str())) {
                    bad.push(format!("{}:{}", rel(&f), i + 1));
                }
            }
        }
    }
    report(
        "mounts, namespaces or unsafe outside executor/ (move the code into strata-executor)",
        bad,
    );
}

#[test]
fn the_function_finder_finds_functions() {
    let src = "/// Doc.\n// Long: a reason.\npub fn a() {\n    let x = 1;\n}\n\nfn b(x: u8);\n    fn c(\n        y: u8,\n    ) -> u8 {\n        y\n    }\n";
    let f = functions(src);
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!((f[0].1.as_str(), f[0].2), ("a", 3));
    assert!(f[0].3.iter().any(|l| l.starts_with("// Long:")));
    assert_eq!((f[1].1.as_str(), f[1].2), ("c", 5));
}

/// Each crate's top-level modules and the other top-level modules their code (not comments,
/// not unit tests) names through `crate::`.
fn module_arrows(crate_dir: &Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let src = crate_dir.join("src");
    let mut arrows: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for f in rust_files(&src) {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if top == "lib" || top == "main" || name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for line in without_tests(&text).lines() {
            let code = line.split("//").next().unwrap_or_default();
            for (i, _) in code.match_indices("crate::") {
                let to: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                    .collect();
                let list = arrows.entry(top.clone()).or_default();
                if !to.is_empty() && to != top && !list.contains(&to) {
                    list.push(to);
                }
            }
        }
    }
    arrows
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut bad = Vec::new();
    for c in [
        "oci", "frontend", "solver", "cache", "registry", "executor", "builder",
    ] {
        let arrows = module_arrows(&workspace().join(c));
        // Depth-first, colouring: a module met again while on the path closes a cycle.
        fn visit(
            m: &str,
            arrows: &std::collections::BTreeMap<String, Vec<String>>,
            path: &mut Vec<String>,
            done: &mut Vec<String>,
            found: &mut Vec<String>,
        ) {
            if let Some(i) = path.iter().position(|p| p == m) {
                found.push(format!("{} -> {m}", path[i..].join(" -> ")));
                return;
            }
            if done.iter().any(|d| d == m) {
                return;
            }
            path.push(m.to_string());
            for to in arrows.get(m).into_iter().flatten() {
                visit(to, arrows, path, done, found);
            }
            path.pop();
            done.push(m.to_string());
        }
        let mut done = Vec::new();
        let mut found = Vec::new();
        for m in arrows.keys() {
            visit(m, &arrows, &mut Vec::new(), &mut done, &mut found);
        }
        bad.extend(found.into_iter().map(|f| format!("{c}: {f}")));
    }
    report(
        "module cycles (a module reaches itself through crate::)",
        bad,
    );
}
