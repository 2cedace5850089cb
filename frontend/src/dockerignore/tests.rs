//! `.dockerignore` matching tests: patternmatcher's cases and properties.

use super::*;
use proptest::prelude::*;

fn m(patterns: &[&str], path: &str) -> bool {
    PatternMatcher::new(patterns)
        .unwrap()
        .matches(path)
        .unwrap()
}

#[test]
fn patternmatcher_cases() {
    // (pattern, path, expected) — behaviour of moby/patternmatcher.
    let cases: &[(&str, &str, bool)] = &[
        ("**", "file", true),
        ("**", "file/", true),
        ("**/", "file", true),
        ("**/", "file/", true),
        ("**", "/", true),
        ("**/", "/", true),
        ("**", "dir/file", true),
        ("**/", "dir/file", true),
        ("**", "dir/file/", true),
        ("**/", "dir/file/", true),
        ("**/**", "dir/file", true),
        ("**/**", "dir/file/", true),
        ("dir/**", "dir/file", true),
        ("dir/**", "dir/file/", true),
        ("dir/**", "dir/dir2/file", true),
        ("dir/**", "dir/dir2/file/", true),
        ("**/dir", "dir", true),
        ("**/dir", "dir/file", true),
        ("**/dir2/*", "dir/dir2/file", true),
        ("**/dir2/*", "dir/dir2/file/", true),
        ("**/dir2/**", "dir/dir2/dir3/file", true),
        ("**/dir2/**", "dir/dir2/dir3/file/", true),
        ("**file", "file", true),
        ("**file", "dir/file", true),
        ("**/file", "dir/file", true),
        ("**file", "dir/dir/file", true),
        ("**/file", "dir/dir/file", true),
        ("**/file*", "dir/dir/file", true),
        ("**/file*", "dir/dir/file.txt", true),
        ("**/file*txt", "dir/dir/file.txt", true),
        ("**/file*.txt", "dir/dir/file.txt", true),
        ("**/file*.txt*", "dir/dir/file.txt", true),
        ("**/**/*.txt", "dir/dir/file.txt", true),
        ("**/**/*.txt2", "dir/dir/file.txt", false),
        ("**/*.txt", "file.txt", true),
        ("**/**/*.txt", "file.txt", true),
        ("a**/*.txt", "a/file.txt", true),
        ("a**/*.txt", "a/dir/file.txt", true),
        ("a**/*.txt", "a/dir/dir/file.txt", true),
        ("a/*.txt", "a/dir/file.txt", false),
        ("a/*.txt", "a/file.txt", true),
        ("a/*.txt**", "a/file.txt", true),
        ("a[b-d]e", "ae", false),
        ("a[b-d]e", "ace", true),
        ("a[b-d]e", "aae", false),
        ("a[^b-d]e", "aze", true),
        (".*", ".foo", true),
        (".*", "foo", false),
        ("abc.def", "abcdef", false),
        ("abc.def", "abc.def", true),
        ("abc.def", "abcZdef", false),
        ("abc?def", "abcZdef", true),
        ("abc?def", "abcdef", false),
        ("a\\\\", "a\\", true),
        ("**/foo/bar", "foo/bar", true),
        ("**/foo/bar", "dir/foo/bar", true),
        ("**/foo/bar", "dir/dir2/foo/bar", true),
        ("abc/**", "abc", false),
        ("abc/**", "abc/def", true),
        ("abc/**", "abc/def/ghi", true),
        ("**/.foo", ".foo", true),
        ("**/.foo", "bar.foo", false),
        ("a(b)c/def", "a(b)c/def", true),
        ("a(b)c/def", "a(b)c/xyz", false),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
        (
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        (
            "dist/*.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
    ];
    for (p, path, want) in cases {
        let got = PatternMatcher::new(&[p]).unwrap().matches(path).unwrap();
        assert_eq!(got, *want, "pattern {p:?} path {path:?}");
    }
}

#[test]
fn parents_exceptions_and_order() {
    assert!(m(&["node_modules"], "node_modules/a/b.js"));
    assert!(!m(&["*", "!src/**"], "src/main.rs"));
    assert!(m(&["*", "!src/**"], "docs/x"));
    assert!(m(&["*.md", "!README.md", "README.md"], "README.md"));
    assert!(!m(&["*.md", "!README.md"], "README.md"));
    assert!(m(&["build/"], "build/out"));
    let pm = PatternMatcher::new(&["*", "!src/**"]).unwrap();
    assert!(pm.exclusions());
    assert!(pm.may_match_below("src"));
    assert!(!pm.may_match_below("docs"));
    assert!(!PatternMatcher::new(&["*"]).unwrap().may_match_below("src"));
}

#[test]
fn parent_results_agree_with_full_matching() {
    let pm = PatternMatcher::new(&["a/b", "!a/b/keep", "*.log"]).unwrap();
    let (m1, i1) = pm
        .matches_using_parent_results("a", &MatchInfo::default())
        .unwrap();
    let (m2, i2) = pm.matches_using_parent_results("a/b", &i1).unwrap();
    let (m3, _) = pm.matches_using_parent_results("a/b/keep", &i2).unwrap();
    let (m4, _) = pm.matches_using_parent_results("a/b/other", &i2).unwrap();
    assert_eq!((m1, m2, m3, m4), (false, true, false, true));
    for p in ["a", "a/b", "a/b/keep", "a/b/other", "x.log"] {
        let (full, _) = pm
            .matches_using_parent_results(p, &MatchInfo::default())
            .unwrap();
        assert_eq!(full, pm.matches(p).unwrap(), "{p}");
    }
}

#[test]
fn bad_patterns() {
    assert_eq!(
        PatternMatcher::new(&["!"]).unwrap_err(),
        IgnoreError::BareExclusion
    );
    assert!(PatternMatcher::new(&["[a-"]).is_err());
    assert!(PatternMatcher::new(&["a\\"]).is_err());
    // Rust-only class syntax stays literal, as in Go.
    assert!(m(&["[a&&b]"], "&"));
    assert!(m(&["[a~~b]"], "~"));
}

#[test]
fn classes_and_escapes_match_as_the_regex_does() {
    let cases: &[(&str, &str, bool)] = &[
        ("a[\\]]c", "a]c", true),
        ("a[^\\]b]c", "a]c", false),
        ("a[^\\]b]c", "a/c", true),
        ("a[^b]c", "a\nc", true),
        ("a[x\\-z]c", "ayc", false),
        ("a[x\\-z]c", "a-c", true),
        ("a\\*c", "a*c", true),
        ("a\\*c", "abc", false),
        ("[a-c][0-9]", "b7", true),
        ("a\\dz", "a5z", true),
        ("x*^y", "xa^y", false),
        ("^*y", "ay", true),
    ];
    for (p, path, want) in cases {
        let got = PatternMatcher::new(&[p]).unwrap().matches(path).unwrap();
        assert_eq!(got, *want, "pattern {p:?} path {path:?}");
    }
    assert!(PatternMatcher::new(&["a[z-a]"]).is_err());
    // Long patterns (their states on the heap) match as the regex does.
    let long = format!("{}**/[a-c]*", "d?/".repeat(20));
    let (_, glob, re) = compile_with_source(&long).unwrap();
    let (glob, r) = (glob.unwrap(), regex::Regex::new(&re).unwrap());
    for path in [
        format!("{}x/y/b1", "dx/".repeat(20)),
        format!("{}b", "dx/".repeat(20)),
        format!("{}x/y/z", "dx/".repeat(20)),
        format!("{}b", "dx/".repeat(19)),
    ] {
        assert_eq!(glob.matches(&path), r.is_match(&path), "{path}");
    }
    assert!(glob.matches(&format!("{}x/b", "dx/".repeat(20))));
}

#[test]
fn common_patterns_build_no_regex_and_cost_their_length() {
    let patterns: Vec<String> = (0..100_000)
        .map(|i| match i % 5 {
            0 => format!("dir{i}/**/*.log"),
            1 => format!("*.tmp{i}"),
            2 => format!("build/{i}/obj?/[a-f]*.o"),
            3 => format!("!keep{i}/**"),
            _ => format!("**/cache{i}/*"),
        })
        .collect();
    let text: usize = patterns.iter().map(String::len).sum();
    let pm = PatternMatcher::new(&patterns).unwrap();
    assert_eq!(pm.regexes_built(), 0);
    assert!(m(&["build/1/obj?/[a-f]*.o"], "build/1/objx/cafe.o"));
    assert!(pm.matches("dir0/x/y.log").unwrap());
    assert!(!pm.matches("dir0/x/y.txt").unwrap());
    assert!(pm.matches("a/cache4/file").unwrap());
    assert_eq!(pm.regexes_built(), 0);
    // A regex costs about 15 KB; a pattern now costs a few bytes per character.
    let bytes = pm.heap_bytes();
    assert!(
        bytes < 12 * text + 100_000 * 96,
        "{bytes} bytes for {text} bytes of patterns"
    );
}

proptest! {
    #[test]
    fn tokens_agree_with_patternmatchers_regex(
        p in "[ab/*?.\\[\\]^!-]{1,12}",
        path in "[ab/.\\[\\]^!\n-]{0,12}",
    ) {
        if let Ok((MatchType::Regex, Some(glob @ Glob::Tokens { .. }), re)) = compile_with_source(&p)
            && let Ok(r) = regex::Regex::new(&re)
        {
            prop_assert_eq!(glob.matches(&path), r.is_match(&path), "pattern {:?} regex {:?} path {:?}", p, re, path);
        }
    }
}

#[test]
fn ignore_file_reading() {
    let f = "\u{feff}# comment\n  # indented is a pattern\n\nnode_modules\n!  keep.md \n/abs/../x/\n./a/./b\r\n!\n";
    let lines = read_ignore_file(f.as_bytes()).unwrap();
    let pats: Vec<&str> = lines.iter().map(|l| l.pattern.as_str()).collect();
    assert_eq!(
        pats,
        vec![
            "# indented is a pattern",
            "node_modules",
            "!keep.md",
            "x",
            "a/b",
            "!"
        ]
    );
    assert_eq!(lines[1].line, 4);
}

#[test]
fn go_filepath_match() {
    // Go's match_test.go table.
    let cases: &[(&str, &str, Result<bool, ()>)] = &[
        ("abc", "abc", Ok(true)),
        ("*", "abc", Ok(true)),
        ("*c", "abc", Ok(true)),
        ("a*", "a", Ok(true)),
        ("a*", "abc", Ok(true)),
        ("a*", "ab/c", Ok(false)),
        ("a*/b", "abc/b", Ok(true)),
        ("a*/b", "a/c/b", Ok(false)),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
        ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
        ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
        ("ab[c]", "abc", Ok(true)),
        ("ab[b-d]", "abc", Ok(true)),
        ("ab[e-g]", "abc", Ok(false)),
        ("ab[^c]", "abc", Ok(false)),
        ("ab[^b-d]", "abc", Ok(false)),
        ("ab[^e-g]", "abc", Ok(true)),
        ("a\\*b", "a*b", Ok(true)),
        ("a\\*b", "ab", Ok(false)),
        ("a?b", "a☺b", Ok(true)),
        ("a[^a]b", "a☺b", Ok(true)),
        ("a???b", "a☺b", Ok(false)),
        ("a[^a][^a][^a]b", "a☺b", Ok(false)),
        ("[a-ζ]*", "α", Ok(true)),
        ("*[a-ζ]", "A", Ok(false)),
        ("a?b", "a/b", Ok(false)),
        ("a*b", "a/b", Ok(false)),
        ("[\\]a]", "]", Ok(true)),
        ("[\\-]", "-", Ok(true)),
        ("[x\\-]", "x", Ok(true)),
        ("[x\\-]", "-", Ok(true)),
        ("[x\\-]", "z", Ok(false)),
        ("[\\-x]", "x", Ok(true)),
        ("[\\-x]", "-", Ok(true)),
        ("[\\-x]", "a", Ok(false)),
        ("[]a]", "]", Err(())),
        ("[-]", "-", Err(())),
        ("[x-]", "x", Err(())),
        ("[x-]", "-", Err(())),
        ("[x-]", "z", Err(())),
        ("[-x]", "x", Err(())),
        ("[-x]", "-", Err(())),
        ("[-x]", "a", Err(())),
        ("\\", "a", Err(())),
        ("[a-b-c]", "a", Err(())),
        ("[", "a", Err(())),
        ("[^", "a", Err(())),
        ("[^bc", "a", Err(())),
        ("a[", "a", Err(())),
        ("a[", "ab", Err(())),
        ("a[", "x", Err(())),
        ("a/b[", "x", Err(())),
        ("*x", "xxx", Ok(true)),
    ];
    for (p, s, want) in cases {
        let got = path_match(p, s).map_err(|_| ());
        assert_eq!(&got, want, "Match({p:?}, {s:?})");
    }
}

#[test]
fn wildcard_detection() {
    assert!(contains_wildcards("*.go"));
    assert!(contains_wildcards("a[bc]"));
    assert!(!contains_wildcards("a\\*b"));
    assert!(!contains_wildcards("plain/path"));
}

proptest! {
    #[test]
    fn never_panics(p in ".{0,24}", path in "[a-z/.*?\\[\\]!-]{0,24}") {
        if let Ok(pm) = PatternMatcher::new(&[p.as_str()]) {
            let _ = pm.matches(&path);
            let _ = pm.may_match_below(&path);
        }
        let _ = path_match(&p, &path);
        let _ = read_ignore_file(p.as_bytes());
    }

    #[test]
    fn literal_matches_itself_and_descendants(p in "[a-z0-9_]{1,8}(/[a-z0-9_]{1,8}){0,2}", child in "[a-z0-9]{1,6}") {
        prop_assert!(m(&[p.as_str()], &p));
        let c = format!("{p}/{child}");
        prop_assert!(m(&[p.as_str()], &c));
    }
}
