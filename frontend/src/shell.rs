//! Variable expansion and word splitting, as BuildKit's shell lexer does them for Dockerfile
//! instructions (`$v`, `${v}`, `${v:-w}`, `${v-w}`, `${v:+w}`, `${v+w}`, `${v:?m}`, `${v?m}`,
//! `${v#p}`, `${v##p}`, `${v%p}`, `${v%%p}`, `${v/p/r}`, `${v//p/r}`, quotes and escapes).
//!
//! Two entry points: [`Lexer::process_word`] gives one word (spaces kept, quotes removed);
//! [`Lexer::process_words`] splits on whitespace outside quotes, and splits unquoted expansion
//! results again.
//!
//! Every input gives a result or an [`ExpandError`], in time linear in its size (times the
//! nesting depth, which is bounded by [`MAX_DEPTH`]); nothing here can panic on user input.

use std::collections::{BTreeMap, BTreeSet};

/// How deeply `${a:-${b:-…}}` may nest before expansion gives up.
pub const MAX_DEPTH: usize = 4096;

/// Variables the lexer can look up: `None` when unset, `Some("")` when set but empty.
pub trait Env: Sync {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        std::collections::HashMap::get(self, name).map(String::as_str)
    }
}

/// Pairs; the last definition of a name wins.
impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The result of expanding one word.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expansion {
    pub result: String,
    /// Names that were looked up and set.
    pub matched: BTreeSet<String>,
    /// Names that were referenced but unset (even where a default was used).
    pub unmatched: BTreeSet<String>,
}

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {word:?}: {kind}")]
pub struct ExpandError {
    pub word: String,
    pub kind: ExpandErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandErrorKind {
    #[error("unexpected end of statement while looking for matching {0}")]
    Unterminated(&'static str),
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    #[error("{0}: {1}")]
    Required(String, String),
    #[error("invalid pattern ({0}) in substitution: {1}")]
    InvalidPattern(String, String),
    #[error("variable expansion nested too deeply (more than {MAX_DEPTH} levels)")]
    TooDeep,
}

/// The lexer's settings. `escape` is the Dockerfile's escape character.
#[derive(Clone, Debug)]
pub struct Lexer {
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave references to unset variables as they are.
    pub skip_unset_env: bool,
    /// Treat quotes as ordinary characters.
    pub skip_process_quotes: bool,
}

impl Lexer {
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
            skip_process_quotes: false,
        }
    }

    /// One word out: spaces kept, quotes removed, variables expanded.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<Expansion, ExpandError> {
        with_stack_for(word, || {
            let mut w = Word::new(self, word, env, true);
            let (result, _) = w.process(word)?;
            Ok(Expansion {
                result,
                matched: w.matched,
                unmatched: w.unmatched,
            })
        })
    }

    /// Words out: whitespace outside quotes separates words, and unquoted expansion results
    /// are split again.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ExpandError> {
        with_stack_for(word, || {
            let mut w = Word::new(self, word, env, false);
            let (_, words) = w.process(word)?;
            Ok(words)
        })
    }
}

/// Nesting up to this depth runs on the caller's stack.
const INLINE_DEPTH: usize = 32;
/// Stack reserved per nesting level when a word nests deeper (generous for debug builds).
const STACK_PER_LEVEL: usize = 16 * 1024;

/// Runs `f` on the caller's stack, or, when `word` could nest deeply (each level needs a `${`),
/// on a scoped thread whose stack is sized for the nesting, so no input can overflow a stack.
fn with_stack_for<T: Send>(
    word: &str,
    f: impl FnOnce() -> Result<T, ExpandError> + Send,
) -> Result<T, ExpandError> {
    let levels = word.matches("${").count().min(MAX_DEPTH + 1);
    if levels <= INLINE_DEPTH {
        return f();
    }
    let size = 256 * 1024 + levels * STACK_PER_LEVEL;
    std::thread::scope(|scope| {
        match std::thread::Builder::new()
            .stack_size(size)
            .spawn_scoped(scope, f)
        {
            Ok(handle) => match handle.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(_) => Err(ExpandError {
                word: word.chars().take(80).collect(),
                kind: ExpandErrorKind::TooDeep,
            }),
        }
    })
}

/// Go's `unicode.IsDigit`: decimal digits of any script.
fn is_go_digit(c: char) -> bool {
    c.is_ascii_digit() || is_decimal_digit(c)
}

/// Unicode Nd blocks: every decimal digit set is 10 consecutive code points starting at a
/// code point whose value modulo 16 is 0 or 6 (true for all Nd ranges in Unicode 15).
fn is_decimal_digit(c: char) -> bool {
    let v = c as u32;
    const STARTS: [u32; 64] = [
        0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6,
        0x0D66, 0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0,
        0x1A80, 0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0,
        0xAA50, 0xABF0, 0xFF10, 0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0,
        0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0,
        0x11F50, 0x16A60, 0x16AC0, 0x16B50, 0x1D7CE, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E950, 0x1FBF0,
        0x1D7D8,
    ];
    STARTS.iter().any(|s| v >= *s && v < s + 10)
}

/// Go's `unicode.IsSpace`.
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{85}' | '\u{A0}'
    ) || (c > '\u{FF}' && c.is_whitespace())
}

/// Word splitting state of one nesting level. The characters of the word being built live in
/// [`Word::wbuf`], which (as in BuildKit) all nesting levels share: a nested `${...}` starts by
/// clearing it, so `ab${X:-c} d` splits into `c`, `d`. That quirk is kept on purpose.
struct Words {
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn new() -> Self {
        Words {
            words: vec![],
            in_word: false,
        }
    }
    fn add_char(&mut self, buf: &mut String, c: char) {
        if is_space(c) {
            if self.in_word && !buf.is_empty() {
                self.words.push(std::mem::take(buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(buf, c);
        }
    }
    fn add_raw_char(&mut self, buf: &mut String, c: char) {
        buf.push(c);
        self.in_word = true;
    }
    fn add_string(&mut self, buf: &mut String, s: &str) {
        for c in s.chars() {
            self.add_char(buf, c);
        }
    }
    fn add_raw_string(&mut self, buf: &mut String, s: &str) {
        buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self, buf: &mut String) -> Vec<String> {
        if !buf.is_empty() {
            self.words.push(std::mem::take(buf));
        }
        self.words
    }
}

struct Word<'a> {
    lex: &'a Lexer,
    /// The word being built, shared by every nesting level (see [`Words`]).
    wbuf: String,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
    capture: bool,
    raw_escapes: bool,
    depth: usize,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

type R<T> = Result<T, ExpandErrorKind>;

impl<'a> Word<'a> {
    fn new(lex: &'a Lexer, word: &str, env: &'a dyn Env, capture: bool) -> Self {
        // Go's text/scanner skips a byte order mark at the start of the input.
        let word = word.strip_prefix('\u{feff}').unwrap_or(word);
        Word {
            lex,
            wbuf: String::new(),
            chars: word.chars().collect(),
            pos: 0,
            env,
            capture,
            raw_escapes: lex.raw_escapes,
            depth: 0,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process(&mut self, source: &str) -> Result<(String, Vec<String>), ExpandError> {
        let raw = self.raw_escapes;
        self.stop_on(None, raw).map_err(|kind| ExpandError {
            word: source.to_string(),
            kind,
        })
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.get(name) {
            Some(v) => {
                if self.capture {
                    self.matched.insert(name.to_string());
                }
                Some(v.to_string())
            }
            None => {
                if self.capture {
                    self.unmatched.insert(name.to_string());
                }
                None
            }
        }
    }

    fn stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> R<(String, Vec<String>)> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ExpandErrorKind::TooDeep);
        }
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        self.depth -= 1;
        r
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> R<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::new();
        self.wbuf.clear();
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, words.finish(&mut self.wbuf)));
            }
            let special = match ch {
                '$' => Some(self.dollar()?),
                '<' => Some(self.possible_heredoc()),
                '\'' if !self.lex.skip_process_quotes => Some(self.single_quote()?),
                '"' if !self.lex.skip_process_quotes => Some(self.double_quote()?),
                _ => None,
            };
            if let Some(tmp) = special {
                result.push_str(&tmp);
                if ch == '$' {
                    words.add_string(&mut self.wbuf, &tmp);
                } else {
                    words.add_raw_string(&mut self.wbuf, &tmp);
                }
                continue;
            }
            let mut ch = match self.next() {
                Some(c) => c,
                None => break,
            };
            if ch == self.lex.escape {
                if self.raw_escapes {
                    words.add_raw_char(&mut self.wbuf, ch);
                    result.push(ch);
                }
                ch = match self.next() {
                    Some(c) => c,
                    None => break,
                };
                words.add_raw_char(&mut self.wbuf, ch);
            } else {
                words.add_char(&mut self.wbuf, ch);
            }
            result.push(ch);
        }
        if let Some(s) = stop {
            return Err(ExpandErrorKind::Unterminated(match s {
                '}' => "}",
                '/' => "/",
                _ => "character",
            }));
        }
        Ok((result, words.finish(&mut self.wbuf)))
    }

    #[inline(never)]
    fn single_quote(&mut self) -> R<String> {
        let mut out = String::new();
        let q = self.next();
        if self.lex.raw_quotes
            && let Some(q) = q
        {
            out.push(q);
        }
        loop {
            match self.next() {
                None => return Err(ExpandErrorKind::Unterminated("single-quote")),
                Some('\'') => {
                    if self.lex.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> R<String> {
        let mut out = String::new();
        let q = self.next();
        if self.lex.raw_quotes
            && let Some(q) = q
        {
            out.push(q);
        }
        loop {
            match self.peek() {
                None => return Err(ExpandErrorKind::Unterminated("double-quote")),
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                }
                Some(_) => {
                    let Some(mut ch) = self.next() else { continue };
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                self.next();
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    #[inline(never)]
    fn possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut s = String::from("<<");
        while let Some(c) = self.peek() {
            if !matches!(c, '\t' | '\r' | ' ') {
                break;
            }
            s.push(c);
            self.next();
        }
        s
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_go_digit(ch) {
                while let Some(d) = self.peek() {
                    if !is_go_digit(d) {
                        break;
                    }
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    fn dollar(&mut self) -> R<String> {
        self.next();
        if self.peek() != Some('{') {
            return Ok(self.simple_var());
        }
        self.next();
        match self.peek() {
            None => return Err(ExpandErrorKind::MissingBrace),
            Some('{' | '}' | ':') => return Err(ExpandErrorKind::BadSubstitution),
            _ => {}
        }
        let name = self.name();
        let Some(ch) = self.next() else {
            return Err(ExpandErrorKind::MissingBrace);
        };
        match ch {
            '}' => Ok(self.braced_var(&name)),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = ch == ':';
                let op = if null_is_unset {
                    match self.next() {
                        Some(c) => c,
                        None => return Err(ExpandErrorKind::MissingBrace),
                    }
                } else {
                    ch
                };
                let raw = op == '#' || op == '%';
                if null_is_unset && raw {
                    return Err(ExpandErrorKind::UnsupportedModifier(format!(":{op}")));
                }
                // The recursion: keep this frame small, the work happens in `apply_modifier`.
                let word = self.stop_on_brace(Some('}'), raw, ExpandErrorKind::MissingBrace)?;
                self.apply_modifier(&name, op, null_is_unset, word)
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let pattern = self.stop_on_brace(Some('/'), true, ExpandErrorKind::MissingSlash)?;
                let replacement =
                    self.stop_on_brace(Some('}'), true, ExpandErrorKind::MissingBrace)?;
                self.apply_replace(&name, all, pattern, replacement)
            }
            _ => Err(ExpandErrorKind::UnsupportedModifier(ch.to_string())),
        }
    }

    /// Reads up to `stop`; an unterminated word at the end of input becomes `at_eof`.
    fn stop_on_brace(
        &mut self,
        stop: Option<char>,
        raw: bool,
        at_eof: ExpandErrorKind,
    ) -> R<String> {
        match self.stop_on(stop, raw) {
            Ok((w, _)) => Ok(w),
            // BuildKit reports any error found at the end of the input as the missing closer.
            Err(_) if self.peek().is_none() => Err(at_eof),
            Err(e) => Err(e),
        }
    }

    #[inline(never)]
    fn simple_var(&mut self) -> String {
        let name = self.name();
        if name.is_empty() {
            return "$".into();
        }
        match self.get_env(&name) {
            Some(v) => v,
            None if self.lex.skip_unset_env => format!("${name}"),
            None => String::new(),
        }
    }

    #[inline(never)]
    fn braced_var(&mut self, name: &str) -> String {
        match self.get_env(name) {
            Some(v) => v,
            None if self.lex.skip_unset_env => format!("${{{name}}}"),
            None => String::new(),
        }
    }

    #[inline(never)]
    fn apply_modifier(
        &mut self,
        name: &str,
        op: char,
        null_is_unset: bool,
        word: String,
    ) -> R<String> {
        let chs = if null_is_unset {
            format!(":{op}")
        } else {
            op.to_string()
        };
        let value = self.get_env(name);
        if self.lex.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}{chs}{word}}}"));
        }
        let set = value.is_some();
        let value = value.unwrap_or_default();
        let empty_as_unset = !set || (null_is_unset && value.is_empty());
        match op {
            '-' => Ok(if empty_as_unset { word } else { value }),
            '+' => Ok(if empty_as_unset { String::new() } else { word }),
            '?' => {
                if !set {
                    let m = if word.is_empty() {
                        "is not allowed to be unset".to_string()
                    } else {
                        word
                    };
                    return Err(ExpandErrorKind::Required(name.to_string(), m));
                }
                if null_is_unset && value.is_empty() {
                    let m = if word.is_empty() {
                        "is not allowed to be empty".to_string()
                    } else {
                        word
                    };
                    return Err(ExpandErrorKind::Required(name.to_string(), m));
                }
                Ok(value)
            }
            '%' | '#' => {
                let (greedy, pat) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest.to_string()),
                    None => (false, word),
                };
                if op == '%' {
                    trim_suffix(&pat, &value, greedy)
                } else {
                    trim_prefix(&pat, &value, greedy)
                }
            }
            _ => Err(ExpandErrorKind::UnsupportedModifier(chs)),
        }
    }

    #[inline(never)]
    fn apply_replace(
        &mut self,
        name: &str,
        all: bool,
        pattern: String,
        replacement: String,
    ) -> R<String> {
        let value = self.get_env(name);
        if self.lex.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
        }
        let value = value.unwrap_or_default();
        let re = shell_pattern_regex(&pattern, true, false)?;
        if all {
            // As Go's ReplaceAllString: `$$`, `$0`, `$name` in the replacement are expanded
            // (unknown names expand to nothing). A single replacement is inserted literally.
            Ok(re
                .replace_all(&value, |c: &regex::Captures<'_>| {
                    go_expand(&replacement, c.get(0).map(|m| m.as_str()).unwrap_or(""))
                })
                .into_owned())
        } else {
            Ok(re
                .replacen(&value, 1, regex::NoExpand(&replacement))
                .into_owned())
        }
    }
}

/// Go's `Regexp.Expand` for a pattern without groups: `$$` is `$`, `$0`/`${0}` the match,
/// any other `$name`/`${name}` (names of Unicode letters, digits and `_`) nothing, and a `$`
/// that starts no name stays literal.
fn go_expand(template: &str, whole: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let is_name = |c: char| c.is_alphabetic() || is_go_digit(c) || c == '_';
        let (name, r) = if let Some(b) = after.strip_prefix('{') {
            match b.find('}') {
                Some(end) if end > 0 && b[..end].chars().all(is_name) => (&b[..end], &b[end + 1..]),
                _ => ("", after),
            }
        } else {
            let end = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        if name == "0" {
            out.push_str(whole);
        }
        rest = r;
    }
    out.push_str(rest);
    out
}

/// Converts a shell pattern (`*`, `?`, `\` escapes) to a regex, as BuildKit does.
fn shell_pattern_regex(pattern: &str, greedy: bool, anchored: bool) -> R<regex::Regex> {
    let invalid = |m: String| ExpandErrorKind::InvalidPattern(pattern.to_string(), m);
    let mut out = String::with_capacity(pattern.len() + 4);
    if anchored {
        out.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    let mut it = pattern.chars().peekable();
    while let Some(tok) = it.next() {
        match tok {
            '*' => out.push_str(star),
            '?' => out.push('.'),
            '\\' => {
                if matches!(it.peek(), Some('}') | Some('/')) {
                    continue;
                }
                match it.next() {
                    Some(t @ ('*' | '?' | '\\')) => {
                        out.push('\\');
                        out.push(t);
                    }
                    Some(t) => return Err(invalid(format!("invalid escape '\\{t}'"))),
                    None => return Err(invalid("invalid escape '\\' at end of pattern".into())),
                }
            }
            c => {
                let mut buf = [0u8; 4];
                out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
            }
        }
    }
    regex::RegexBuilder::new(&out)
        .dot_matches_new_line(false)
        .size_limit(1 << 24)
        .build()
        .map_err(|e| invalid(e.to_string()))
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> R<String> {
    let re = shell_pattern_regex(pattern, greedy, true)?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_string(),
        None => value.to_string(),
    })
}

/// Reverses a pattern keeping `\x` escapes attached to their character.
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut units: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i + 1 < chars.len() {
            units.push(format!("\\{}", chars[i + 1]));
            i += 2;
        } else {
            units.push(chars[i].to_string());
            i += 1;
        }
    }
    units.reverse();
    units.concat()
}

fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> R<String> {
    let rp = reverse_pattern(pattern);
    let rv: String = value.chars().rev().collect();
    let s = trim_prefix(&rp, &rv, greedy)?;
    Ok(s.chars().rev().collect())
}

#[cfg(test)]
mod tests;
