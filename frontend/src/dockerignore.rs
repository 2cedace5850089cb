//! `.dockerignore` semantics (moby/patternmatcher and its `ignorefile` reader) and Go's
//! `path/filepath.Match`, which COPY source wildcards use.
//!
//! Patterns are anchored at the context root: `*` stays within one path segment, `**` spans
//! any number of segments, `!` re-includes, the last matching pattern wins, and a pattern that
//! matches a directory matches everything below it.

use crate::path::clean;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    #[error("illegal exclusion pattern: \"!\"")]
    BareExclusion,
    #[error("syntax error in pattern {0:?}")]
    BadPattern(String),
    #[error("wrong number of values in parent match info")]
    ParentInfo,
}

/// One pattern line of an ignore file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreLine {
    pub line: usize,
    pub pattern: String,
}

/// Reads an ignore file as moby's `ignorefile.ReadAll` does.
pub fn read_ignore_file(content: &[u8]) -> Result<Vec<IgnoreLine>, IgnoreError> {
    let text = String::from_utf8_lossy(content);
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
    let mut out = Vec::new();
    for (n, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.starts_with('#') {
            continue;
        }
        let mut pattern = raw.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut p = String::new();
        if !pattern.is_empty() {
            p = clean(pattern);
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
        }
        if invert {
            p.insert(0, '!');
        }
        out.push(IgnoreLine {
            line: n + 1,
            pattern: p,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchType {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

/// One element of a compiled pattern: what patternmatcher's regex says, element by element.
/// Eight bytes each, so a pattern costs memory in proportion to its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// One character.
    Lit(char),
    /// `*`: `[^/]*`.
    Star,
    /// `?`: `[^/]`.
    One,
    /// `**/`, or `**` inside a pattern: `(.*/)?`.
    DirStar,
    /// `**` at the end of a pattern with wildcards before it: `.*`.
    AnyStar,
    /// `[…]`: the pattern's class with this index.
    Class(u32),
}

/// A character class: its ranges (inclusive) and whether it is negated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Class {
    negated: bool,
    ranges: Box<[(char, char)]>,
}

impl Class {
    fn matches(&self, c: char) -> bool {
        self.ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != self.negated
    }
}

/// How a pattern that is not a plain exact, prefix or suffix match is matched.
#[derive(Debug)]
enum Glob {
    /// Wildcards, `**` and classes, matched by [`glob_match`]: no regex.
    Tokens {
        toks: Box<[Tok]>,
        classes: Box<[Class]>,
    },
    /// Regex syntax patternmatcher passes through (`\d`-style escapes, POSIX classes, `^`):
    /// the regex is built when first needed.
    Regex {
        source: Box<str>,
        compiled: std::sync::OnceLock<Option<regex::Regex>>,
    },
}

impl Clone for Glob {
    fn clone(&self) -> Self {
        match self {
            Glob::Tokens { toks, classes } => Glob::Tokens {
                toks: toks.clone(),
                classes: classes.clone(),
            },
            Glob::Regex { source, .. } => Glob::Regex {
                source: source.clone(),
                compiled: std::sync::OnceLock::new(),
            },
        }
    }
}

/// The largest compiled regex a pattern may make (its NFA; patterns are short).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

fn build_regex(source: &str) -> Option<regex::Regex> {
    regex::RegexBuilder::new(source)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .ok()
}

impl Glob {
    fn matches(&self, path: &str) -> bool {
        match self {
            Glob::Tokens { toks, classes } => glob_match(toks, classes, path),
            Glob::Regex { source, compiled } => compiled
                .get_or_init(|| build_regex(source))
                .as_ref()
                .is_some_and(|r| r.is_match(path)),
        }
    }

    /// Heap bytes this glob holds.
    fn heap_bytes(&self) -> usize {
        match self {
            Glob::Tokens { toks, classes } => {
                std::mem::size_of_val::<[Tok]>(toks)
                    + std::mem::size_of_val::<[Class]>(classes)
                    + classes
                        .iter()
                        .map(|c| std::mem::size_of_val::<[(char, char)]>(&c.ranges))
                        .sum::<usize>()
            }
            Glob::Regex { source, .. } => source.len(),
        }
    }
}

/// Whether `toks` match all of `s`, as the anchored regex they stand for would: a set of
/// positions walked over `s` once (time: tokens × characters; memory: twice the tokens).
fn glob_match(toks: &[Tok], classes: &[Class], s: &str) -> bool {
    let n = toks.len();
    // State i < n+1: before token i; state n+1+i: inside the `.*` of DirStar token i.
    let states = 2 * (n + 1);
    // On the stack for patterns of up to 31 tokens (nearly all), else on the heap.
    let (mut stack_a, mut stack_b) = ([false; 64], [false; 64]);
    let (mut heap_a, mut heap_b) = (Vec::new(), Vec::new());
    let (mut cur, mut next): (&mut [bool], &mut [bool]) = if states <= 64 {
        (&mut stack_a[..states], &mut stack_b[..states])
    } else {
        heap_a.resize(states, false);
        heap_b.resize(states, false);
        (&mut heap_a[..], &mut heap_b[..])
    };
    fn enter(set: &mut [bool], toks: &[Tok], mut i: usize) {
        // A star may match nothing: entering it enters what follows too.
        while !set[i] {
            set[i] = true;
            match toks.get(i) {
                Some(Tok::Star | Tok::AnyStar | Tok::DirStar) => i += 1,
                _ => break,
            }
        }
    }
    enter(cur, toks, 0);
    for c in s.chars() {
        next.fill(false);
        let mut alive = false;
        for st in 0..states {
            if !cur[st] {
                continue;
            }
            alive = true;
            if st > n {
                // Inside `(.*/)?`: any character but a newline; after a '/', what follows.
                let i = st - n - 1;
                if c != '\n' {
                    next[st] = true;
                    if c == '/' {
                        enter(next, toks, i + 1);
                    }
                }
                continue;
            }
            let Some(t) = toks.get(st) else {
                continue;
            };
            match *t {
                Tok::Lit(x) if c == x => enter(next, toks, st + 1),
                Tok::One if c != '/' => enter(next, toks, st + 1),
                Tok::Star if c != '/' => enter(next, toks, st),
                Tok::AnyStar if c != '\n' => enter(next, toks, st),
                Tok::DirStar if c != '\n' => {
                    next[n + 1 + st] = true;
                    if c == '/' {
                        enter(next, toks, st + 1);
                    }
                }
                Tok::Class(k) if classes.get(k as usize).is_some_and(|cl| cl.matches(c)) => {
                    enter(next, toks, st + 1)
                }
                _ => {}
            }
        }
        if !alive {
            return false;
        }
        std::mem::swap(&mut cur, &mut next);
    }
    cur[n]
}

#[derive(Debug, Clone)]
struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: MatchType,
    glob: Option<Glob>,
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match self.kind {
            MatchType::Exact => path == self.cleaned,
            MatchType::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            MatchType::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix) || (suffix.starts_with('/') && path == &suffix[1..])
            }
            MatchType::Regex => self.glob.as_ref().is_some_and(|g| g.matches(path)),
        }
    }
}

/// One item of a class as patternmatcher writes it into its regex: a character, escaped
/// (`\-`) or not (a bare `-` may make a range).
#[derive(Clone, Copy)]
struct ClassAtom {
    c: char,
    escaped: bool,
}

/// The ranges of a class body, read as Go's and Rust's regex parsers read it: `a-b` is a
/// range unless the `-` is followed by the end or another bare `-`; `None` when a range is
/// reversed (the regex would not compile).
fn class_ranges(atoms: &[ClassAtom]) -> Option<Vec<(char, char)>> {
    let bare_dash = |a: Option<&ClassAtom>| a.is_some_and(|a| a.c == '-' && !a.escaped);
    let mut out = Vec::new();
    let mut i = 0;
    while i < atoms.len() {
        let lo = atoms[i].c;
        if bare_dash(atoms.get(i + 1)) && i + 2 < atoms.len() && !bare_dash(atoms.get(i + 2)) {
            let hi = atoms[i + 2].c;
            if lo > hi {
                return None;
            }
            out.push((lo, hi));
            i += 3;
        } else {
            out.push((lo, lo));
            i += 1;
        }
    }
    Some(out)
}

/// Compiles a cleaned pattern as patternmatcher does (fast paths for exact, prefix and suffix
/// patterns, its regex otherwise): the regex is kept as tokens, or as regex source for the
/// regex syntax tokens do not cover.
fn compile(pattern: &str) -> Result<(MatchType, Option<Glob>), IgnoreError> {
    compile_with_source(pattern).map(|(kind, glob, _)| (kind, glob))
}

/// [`compile`], with patternmatcher's regex source for the pattern.
// Long: one pass over a pattern's characters, each syntax (escapes, classes, `**`, separators) an arm of one match.
fn compile_with_source(pattern: &str) -> Result<(MatchType, Option<Glob>, String), IgnoreError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut toks: Vec<Tok> = Vec::new();
    let mut classes: Vec<Class> = Vec::new();
    // The class being read: negated, atoms.
    let mut class: Option<(bool, Vec<ClassAtom>)> = None;
    // Regex syntax tokens do not cover: the regex is used.
    let mut needs_regex = false;
    let mut kind = MatchType::Exact;
    let mut in_class = false;
    let mut i = 0;
    let mut iteration = 0;
    let push_char =
        |toks: &mut Vec<Tok>, class: &mut Option<(bool, Vec<ClassAtom>)>, c, escaped| match class {
            Some((_, atoms)) => atoms.push(ClassAtom { c, escaped }),
            None => toks.push(Tok::Lit(c)),
        };
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        if ch == '*' && !in_class {
            if chars.get(i) == Some(&'*') {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if kind == MatchType::Exact {
                        kind = MatchType::Prefix;
                    } else {
                        re.push_str(".*");
                        toks.push(Tok::AnyStar);
                        kind = MatchType::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    toks.push(Tok::DirStar);
                    kind = MatchType::Regex;
                }
                if iteration == 0 {
                    kind = MatchType::Suffix;
                }
            } else {
                re.push_str("[^/]*");
                toks.push(Tok::Star);
                kind = MatchType::Regex;
            }
        } else if ch == '?' && !in_class {
            re.push_str("[^/]");
            toks.push(Tok::One);
            kind = MatchType::Regex;
        } else if ".+()|{}$".contains(ch) {
            re.push('\\');
            re.push(ch);
            push_char(&mut toks, &mut class, ch, true);
        } else if ch == '\\' {
            match chars.get(i) {
                Some(&n) => {
                    i += 1;
                    re.push('\\');
                    re.push(n);
                    kind = MatchType::Regex;
                    if n.is_ascii_punctuation() {
                        push_char(&mut toks, &mut class, n, true);
                    } else {
                        // `\d`, `\n`, `\pL`…: regex escapes.
                        needs_regex = true;
                    }
                }
                None => {
                    re.push('\\');
                    needs_regex = true;
                }
            }
        } else if ch == '[' && !in_class {
            in_class = true;
            re.push('[');
            kind = MatchType::Regex;
            let mut negated = false;
            // A leading ']' or '^]' is literal inside a Go class.
            if chars.get(i) == Some(&'^') {
                re.push('^');
                negated = true;
                i += 1;
            }
            let mut atoms = Vec::new();
            if chars.get(i) == Some(&']') {
                re.push_str("\\]");
                atoms.push(ClassAtom {
                    c: ']',
                    escaped: true,
                });
                i += 1;
            }
            class = Some((negated, atoms));
        } else if ch == ']' && in_class {
            in_class = false;
            re.push(']');
            if let Some((negated, atoms)) = class.take() {
                match class_ranges(&atoms) {
                    Some(ranges) => {
                        toks.push(Tok::Class(classes.len() as u32));
                        classes.push(Class {
                            negated,
                            ranges: ranges.into_boxed_slice(),
                        });
                    }
                    None => needs_regex = true,
                }
            }
        } else if in_class && matches!(ch, '&' | '~' | '[' | '-') {
            // Rust's regex gives these meanings inside classes that Go's RE2 does not
            // (intersections, differences, nested classes): keep them literal, except a
            // single '-' between two characters, which is a range in both.
            let is_range = ch == '-'
                && chars.get(i).is_some_and(|n| *n != ']' && *n != '-')
                && !re.ends_with('[')
                && !re.ends_with('-');
            if ch == '[' && chars.get(i) == Some(&':') {
                re.push('[');
                // A POSIX class (`[[:alpha:]]`).
                needs_regex = true;
            } else if is_range {
                re.push('-');
                push_char(&mut toks, &mut class, '-', false);
            } else {
                re.push('\\');
                re.push(ch);
                push_char(&mut toks, &mut class, ch, true);
            }
        } else if ch == '[' || ch == ']' {
            re.push('\\');
            re.push(ch);
            toks.push(Tok::Lit(ch));
            kind = MatchType::Regex;
        } else {
            re.push(ch);
            if ch == '^' && !in_class {
                // An anchor in the regex.
                needs_regex = true;
            }
            push_char(&mut toks, &mut class, ch, false);
        }
        iteration += 1;
    }
    re.push('$');
    if kind != MatchType::Regex {
        return Ok((kind, None, re));
    }
    if in_class || needs_regex {
        // Checked now (and dropped), built again when a path is matched.
        if build_regex(&re).is_none() {
            return Err(IgnoreError::BadPattern(pattern.to_string()));
        }
        return Ok((
            kind,
            Some(Glob::Regex {
                source: re.clone().into_boxed_str(),
                compiled: std::sync::OnceLock::new(),
            }),
            re,
        ));
    }
    Ok((
        kind,
        Some(Glob::Tokens {
            toks: toks.into_boxed_slice(),
            classes: classes.into_boxed_slice(),
        }),
        re,
    ))
}

/// Parent results carried down a directory walk (one bit per pattern).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// A compiled list of ignore patterns.
#[derive(Debug, Clone)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl PatternMatcher {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, IgnoreError> {
        let mut out = Vec::new();
        let mut exclusions = false;
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let mut p = clean(p);
            let mut exclusion = false;
            if let Some(rest) = p.strip_prefix('!') {
                if rest.is_empty() {
                    return Err(IgnoreError::BareExclusion);
                }
                exclusion = true;
                exclusions = true;
                p = rest.to_string();
            }
            path_match(&p, ".").map_err(|_| IgnoreError::BadPattern(p.clone()))?;
            let (kind, glob) = compile(&p)?;
            p.shrink_to_fit();
            out.push(Pattern {
                cleaned: p,
                exclusion,
                kind,
                glob,
            });
        }
        Ok(PatternMatcher {
            patterns: out,
            exclusions,
        })
    }

    /// Heap bytes the compiled patterns hold (a regex not built yet holds only its source).
    pub fn heap_bytes(&self) -> usize {
        self.patterns.capacity() * std::mem::size_of::<Pattern>()
            + self
                .patterns
                .iter()
                .map(|p| p.cleaned.capacity() + p.glob.as_ref().map_or(0, Glob::heap_bytes))
                .sum::<usize>()
    }

    /// How many patterns are matched with a regex that has been built.
    pub fn regexes_built(&self) -> usize {
        self.patterns
            .iter()
            .filter(|p| {
                matches!(&p.glob, Some(Glob::Regex { compiled, .. }) if compiled.get().is_some())
            })
            .count()
    }

    /// Whether any pattern is an exception (`!pattern`).
    pub fn exclusions(&self) -> bool {
        self.exclusions
    }

    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|p| p.cleaned.as_str())
    }

    /// `MatchesOrParentMatches`: whether `path` (relative, `/`-separated) is excluded.
    pub fn matches(&self, path: &str) -> Result<bool, IgnoreError> {
        let parent = parent_dirs(path);
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(path);
            if !m {
                m = parent.iter().any(|d| p.matches(d));
            }
            if m {
                matched = !p.exclusion;
            }
        }
        Ok(matched)
    }

    /// `MatchesUsingParentResults`: matches `path` reusing what was computed for its parent
    /// directory, so a walker matches each path once.
    pub fn matches_using_parent_results(
        &self,
        path: &str,
        parent: &MatchInfo,
    ) -> Result<(bool, MatchInfo), IgnoreError> {
        let pm = &parent.parent_matched;
        if !pm.is_empty() && pm.len() != self.patterns.len() {
            return Err(IgnoreError::ParentInfo);
        }
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        for (i, p) in self.patterns.iter().enumerate() {
            let mut m = pm.get(i).copied().unwrap_or(false);
            if !m {
                if p.exclusion != matched {
                    continue;
                }
                m = p.matches(path);
                if !m && pm.is_empty() {
                    m = parent_dirs(path).iter().any(|d| p.matches(d));
                }
            }
            info.parent_matched[i] = m;
            if m {
                matched = !p.exclusion;
            }
        }
        Ok((matched, info))
    }

    /// Whether a walker must look inside the excluded directory `dir` because an exception
    /// pattern could re-include something below it (`*` then `!src/**`).
    pub fn may_match_below(&self, dir: &str) -> bool {
        let dsegs: Vec<&str> = dir.split('/').collect();
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            let psegs: Vec<&str> = p.cleaned.split('/').collect();
            for (i, d) in dsegs.iter().enumerate() {
                let Some(ps) = psegs.get(i) else {
                    // The exception matches an ancestor of what is below `dir`.
                    return true;
                };
                if ps.contains("**") {
                    return true;
                }
                if !path_match(ps, d).unwrap_or(false) {
                    return false;
                }
            }
            true
        })
    }
}

/// The parent directories of `path`: `a`, `a/b` for `a/b/c`.
fn parent_dirs(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut idx = 0;
    while let Some(pos) = path[idx..].find('/') {
        let end = idx + pos;
        if end > 0 {
            out.push(&path[..end]);
        }
        idx = end + 1;
    }
    out
}

/// Whether `s` has wildcard characters (`*`, `?`, `[`, or a `\` escape).
pub fn contains_wildcards(s: &str) -> bool {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Go's `filepath.Match` on `/`-separated names.
pub fn path_match(pattern: &str, name: &str) -> Result<bool, IgnoreError> {
    let bad = || IgnoreError::BadPattern(pattern.to_string());
    let mut pat = pattern;
    let mut name = name;
    'outer: while !pat.is_empty() {
        let (star, chunk, rest) = scan_chunk(pat);
        pat = rest;
        if star && chunk.is_empty() {
            return Ok(!name.contains('/'));
        }
        let (t, ok, err) = match_chunk(chunk, name);
        if ok && (t.is_empty() || !pat.is_empty()) {
            name = t;
            continue;
        }
        if err {
            return Err(bad());
        }
        if star {
            for (i, c) in name.char_indices() {
                if c == '/' {
                    break;
                }
                let after = &name[i + c.len_utf8()..];
                let (t, ok, err) = match_chunk(chunk, after);
                if ok {
                    if pat.is_empty() && !t.is_empty() {
                        continue;
                    }
                    name = t;
                    continue 'outer;
                }
                if err {
                    return Err(bad());
                }
            }
        }
        // Check that the rest of the pattern is well formed before saying no.
        while !pat.is_empty() {
            let (_, chunk, rest) = scan_chunk(pat);
            pat = rest;
            if match_chunk(chunk, "").2 {
                return Err(bad());
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

fn scan_chunk(pattern: &str) -> (bool, &str, &str) {
    let mut star = false;
    let mut p = pattern;
    while let Some(r) = p.strip_prefix('*') {
        p = r;
        star = true;
    }
    let mut in_range = false;
    let bytes = p.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if i + 1 < bytes.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => return (star, &p[..i], &p[i..]),
            _ => {}
        }
        i += 1;
    }
    (star, p, "")
}

/// Matches `chunk` at the start of `s`: returns the rest, whether it matched, and whether the
/// chunk is malformed.
fn match_chunk<'s>(chunk: &str, s: &'s str) -> (&'s str, bool, bool) {
    let mut failed = false;
    let mut chunk = chunk;
    let mut s = s;
    while !chunk.is_empty() {
        if !failed && s.is_empty() {
            failed = true;
        }
        let first = chunk.chars().next().unwrap_or('\0');
        match first {
            '[' => {
                let mut r = '\0';
                if !failed {
                    let c = s.chars().next().unwrap_or('\0');
                    s = &s[c.len_utf8()..];
                    r = c;
                }
                chunk = &chunk[1..];
                let mut negated = false;
                if let Some(rest) = chunk.strip_prefix('^') {
                    negated = true;
                    chunk = rest;
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if let Some(rest) = chunk.strip_prefix(']')
                        && nrange > 0
                    {
                        chunk = rest;
                        break;
                    }
                    let Some((lo, rest)) = get_esc(chunk) else {
                        return ("", false, true);
                    };
                    chunk = rest;
                    let mut hi = lo;
                    if let Some(rest) = chunk.strip_prefix('-') {
                        let Some((h, rest)) = get_esc(rest) else {
                            return ("", false, true);
                        };
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            '?' => {
                if !failed {
                    let c = s.chars().next().unwrap_or('\0');
                    if c == '/' {
                        failed = true;
                    }
                    s = &s[c.len_utf8().min(s.len())..];
                }
                chunk = &chunk[1..];
            }
            '\\' => {
                chunk = &chunk[1..];
                if chunk.is_empty() {
                    return ("", false, true);
                }
                let c = chunk.chars().next().unwrap_or('\0');
                if !failed {
                    if s.starts_with(c) {
                        s = &s[c.len_utf8()..];
                    } else {
                        failed = true;
                    }
                }
                chunk = &chunk[c.len_utf8()..];
            }
            c => {
                if !failed {
                    if s.starts_with(c) {
                        s = &s[c.len_utf8()..];
                    } else {
                        failed = true;
                    }
                }
                chunk = &chunk[c.len_utf8()..];
            }
        }
    }
    if failed {
        return ("", false, false);
    }
    (s, true, false)
}

/// One possibly escaped character of a class; `None` when malformed.
fn get_esc(chunk: &str) -> Option<(char, &str)> {
    let mut it = chunk.chars();
    let c = it.next()?;
    if c == '-' || c == ']' {
        return None;
    }
    let (c, rest) = if c == '\\' {
        let n = it.next()?;
        (n, &chunk[1 + n.len_utf8()..])
    } else {
        (c, &chunk[c.len_utf8()..])
    };
    if rest.is_empty() {
        return None;
    }
    Some((c, rest))
}

#[cfg(test)]
mod tests;
