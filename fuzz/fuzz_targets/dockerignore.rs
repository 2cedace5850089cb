//! Ignore files and paths from arbitrary bytes: errors only, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_frontend::dockerignore::{PatternMatcher, path_match, read_ignore_file};

fuzz_target!(|data: &[u8]| {
    let (a, b) = data.split_at(data.len() / 2);
    let path = String::from_utf8_lossy(b);
    if let Ok(lines) = read_ignore_file(a) {
        let pats: Vec<String> = lines.into_iter().map(|l| l.pattern).collect();
        if let Ok(m) = PatternMatcher::new(&pats) {
            let _ = m.matches(&path);
            let _ = m.may_match_below(&path);
        }
    }
    let text = String::from_utf8_lossy(a);
    let _ = path_match(&text, &path);
});
