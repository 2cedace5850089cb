//! Shell lexer tests: expansion and word splitting, tables and properties.

use super::*;
use proptest::prelude::*;

fn env() -> BTreeMap<String, String> {
    [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("NULL", ""),
        ("A", "a b  c"),
        ("FILE", "dir/sub/name.tar.gz"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn word(s: &str) -> String {
    match Lexer::new('\\').process_word(s, &env()) {
        Ok(e) => e.result,
        Err(e) => format!("ERR {}", e.kind),
    }
}

fn words(s: &str) -> Vec<String> {
    Lexer::new('\\')
        .process_words(s, &env())
        .unwrap_or_else(|e| vec![format!("ERR {}", e.kind)])
}

#[test]
fn modifiers() {
    let cases = [
        ("$PWD", "/home"),
        ("${PWD}x", "/homex"),
        ("${NOPE:-dflt}", "dflt"),
        ("${NULL:-dflt}", "dflt"),
        ("${NULL-dflt}", ""),
        ("${PWD:+alt}", "alt"),
        ("${NULL:+alt}", ""),
        ("${NULL+alt}", "alt"),
        ("${FILE#*/}", "sub/name.tar.gz"),
        ("${FILE##*/}", "name.tar.gz"),
        ("${FILE%.*}", "dir/sub/name.tar"),
        ("${FILE%%.*}", "dir/sub/name"),
        ("${FILE/sub/SUB}", "dir/SUB/name.tar.gz"),
        ("${FILE//a/A}", "dir/sub/nAme.tAr.gz"),
        ("${NOPE:-${PWD:-x}}", "/home"),
        ("'$PWD'", "$PWD"),
        ("\"$PWD\"", "/home"),
        ("\\$PWD", "$PWD"),
        ("$1x", "x"),
        ("$", "$"),
        ("a$.b", "a$.b"),
        ("${NOPE:?}", "ERR NOPE: is not allowed to be unset"),
        ("${NULL:?must}", "ERR NULL: must"),
        ("${}", "ERR syntax error: bad substitution"),
        ("${PWD", "ERR syntax error: missing '}'"),
        ("${PWD:#x}", "ERR unsupported modifier (:#) in substitution"),
        (
            "'open",
            "ERR unexpected end of statement while looking for matching single-quote",
        ),
        (
            "\"open",
            "ERR unexpected end of statement while looking for matching double-quote",
        ),
    ];
    for (i, o) in cases {
        assert_eq!(word(i), o, "{i}");
    }
}

#[test]
fn word_splitting() {
    assert_eq!(words("a $A d"), vec!["a", "a", "b", "c", "d"]);
    assert_eq!(words("a \"$A\" d"), vec!["a", "a b  c", "d"]);
    assert_eq!(words("x<< EOF"), vec!["x<< EOF"]);
}

#[test]
fn unmatched_names_are_reported() {
    let e = Lexer::new('\\')
        .process_word("$PWD ${NOPE:-x} $OTHER", &env())
        .unwrap();
    assert!(e.matched.contains("PWD"));
    assert_eq!(
        e.unmatched.iter().collect::<Vec<_>>(),
        vec!["NOPE", "OTHER"]
    );
}

#[test]
fn skip_unset_and_raw_modes() {
    let mut l = Lexer::new('\\');
    l.skip_unset_env = true;
    l.raw_quotes = true;
    assert_eq!(
        l.process_word("$NOPE ${NOPE:-x} '$PWD'", &env())
            .unwrap()
            .result,
        "$NOPE ${NOPE:-x} '$PWD'"
    );
    let mut l = Lexer::new('`');
    l.raw_escapes = true;
    assert_eq!(l.process_word("a`$b", &env()).unwrap().result, "a`$b");
}

#[test]
fn deep_nesting_is_bounded_and_linear() {
    let depth = 1000;
    let s = format!("{}x{}", "${a:-".repeat(depth), "}".repeat(depth));
    let r = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            Lexer::new('\\')
                .process_word(&s, &BTreeMap::new())
                .map(|e| e.result)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(r.unwrap(), "x");
    let too_deep = format!(
        "{}x{}",
        "${a:-".repeat(MAX_DEPTH + 10),
        "}".repeat(MAX_DEPTH + 10)
    );
    let r = std::thread::Builder::new()
        .stack_size(16 * 1024 * 1024)
        .spawn(move || {
            Lexer::new('\\')
                .process_word(&too_deep, &BTreeMap::new())
                .map(|e| e.result)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(r.unwrap_err().kind, ExpandErrorKind::TooDeep);
}

#[test]
fn large_input() {
    let s = "ab $PWD ".repeat(1_300_000);
    let r = Lexer::new('\\').process_word(&s, &env()).unwrap();
    assert_eq!(r.result.len(), 1_300_000 * 9);
}

#[test]
fn patterns_like_buildkit() {
    assert!(shell_pattern_regex("\\", true, true).is_err());
    assert!(shell_pattern_regex("\\x", true, true).is_err());
    let re = shell_pattern_regex("(()[]{\\}^$.\\*\\?|\\\\", true, true).unwrap();
    assert!(re.is_match("(()[]{}^$.*?|\\"));
    assert!(!re.is_match("x(()[]{}^$.*?|\\"));
    assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
    assert_eq!(reverse_pattern("\\\\\\ab"), "b\\a\\\\");
    assert_eq!(reverse_pattern("ab\\"), "\\ba");
}

proptest! {
    #[test]
    fn never_panics(s in ".{0,64}") {
        let _ = Lexer::new('\\').process_word(&s, &env());
        let _ = Lexer::new('`').process_words(&s, &env());
    }

    #[test]
    fn plain_words_expand_to_themselves(s in "[a-zA-Z0-9_./:@=+, -]{0,40}") {
        prop_assert_eq!(Lexer::new('\\').process_word(&s, &env()).unwrap().result, s);
    }

    #[test]
    fn default_for_unset(x in "[a-z0-9]{1,10}") {
        let w = format!("${{UNSET_VAR:-{x}}}");
        prop_assert_eq!(Lexer::new('\\').process_word(&w, &env()).unwrap().result, x);
    }

    #[test]
    fn words_split_on_spaces(ws in proptest::collection::vec("[a-z0-9]{1,8}", 1..6)) {
        let joined = ws.join("  ");
        prop_assert_eq!(Lexer::new('\\').process_words(&joined, &env()).unwrap(), ws);
    }
}

#[test]
fn buildkit_quirks_kept() {
    // A nested ${...} clears the word being built (BuildKit shares one word buffer).
    let env: BTreeMap<String, String> = BTreeMap::new();
    assert_eq!(
        Lexer::new('\\').process_words("ab${X:-c} d", &env).unwrap(),
        vec!["c", "d"]
    );
    assert_eq!(
        Lexer::new('\\')
            .process_word("ab${X:-c} d", &env)
            .unwrap()
            .result,
        "abc d"
    );
    // A leading byte order mark is skipped.
    assert_eq!(
        Lexer::new('\\')
            .process_word("\u{feff}x", &env)
            .unwrap()
            .result,
        "x"
    );
    // ${v//p/r} expands $0 and $name in r as Go's regexp does; ${v/p/r} does not.
    let mut e = BTreeMap::new();
    e.insert("v".to_string(), "aXa".to_string());
    let mut keep = Lexer::new('\\');
    keep.skip_unset_env = true;
    assert_eq!(
        keep.process_word("${v//a/<$0$Pé$$>}", &e).unwrap().result,
        "<a$>X<a$>"
    );
    assert_eq!(keep.process_word("${v/a/$0}", &e).unwrap().result, "$0Xa");
    // Errors at the end of the input are reported as the missing closer.
    assert_eq!(
        Lexer::new('\\')
            .process_word("${x:-${a!", &env)
            .unwrap_err()
            .kind,
        ExpandErrorKind::MissingBrace
    );
}
