//! `.dockerignore` semantics (moby/patternmatcher and its `ignorefile` reader) and Go's
//! `path/filepath.Match`, which COPY source wildcards use.
//!
//! Patterns are anchored at the context root: `*` stays within one path segment, `**` spans
//! any number of segments, `!` re-includes, the last matching pattern wins, and a pattern that
//! matches a directory matches everything below it.

use crate::lower::util::clean;

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

#[derive(Debug, Clone)]
struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: MatchType,
    regex: Option<regex::Regex>,
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
            MatchType::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(path)),
        }
    }
}

/// Compiles a cleaned pattern as patternmatcher does (fast paths for exact, prefix and suffix
/// patterns, a regex otherwise).
fn compile(pattern: &str) -> Result<(MatchType, Option<regex::Regex>), IgnoreError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut kind = MatchType::Exact;
    let mut in_class = false;
    let mut i = 0;
    let mut iteration = 0;
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
                        kind = MatchType::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = MatchType::Regex;
                }
                if iteration == 0 {
                    kind = MatchType::Suffix;
                }
            } else {
                re.push_str("[^/]*");
                kind = MatchType::Regex;
            }
        } else if ch == '?' && !in_class {
            re.push_str("[^/]");
            kind = MatchType::Regex;
        } else if ".+()|{}$".contains(ch) {
            re.push('\\');
            re.push(ch);
        } else if ch == '\\' {
            match chars.get(i) {
                Some(&n) => {
                    i += 1;
                    re.push('\\');
                    re.push(n);
                    kind = MatchType::Regex;
                }
                None => re.push('\\'),
            }
        } else if ch == '[' && !in_class {
            in_class = true;
            re.push('[');
            kind = MatchType::Regex;
            // A leading ']' or '^]' is literal inside a Go class.
            if chars.get(i) == Some(&'^') {
                re.push('^');
                i += 1;
            }
            if chars.get(i) == Some(&']') {
                re.push_str("\\]");
                i += 1;
            }
        } else if ch == ']' && in_class {
            in_class = false;
            re.push(']');
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
            } else if is_range {
                re.push('-');
            } else {
                re.push('\\');
                re.push(ch);
            }
        } else if ch == '[' || ch == ']' {
            re.push('\\');
            re.push(ch);
            kind = MatchType::Regex;
        } else {
            re.push(ch);
        }
        iteration += 1;
    }
    if kind != MatchType::Regex {
        return Ok((kind, None));
    }
    re.push('$');
    let r = regex::RegexBuilder::new(&re)
        .size_limit(1 << 22)
        .build()
        .map_err(|_| IgnoreError::BadPattern(pattern.to_string()))?;
    Ok((kind, Some(r)))
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
            let (kind, regex) = compile(&p)?;
            out.push(Pattern {
                cleaned: p,
                exclusion,
                kind,
                regex,
            });
        }
        Ok(PatternMatcher {
            patterns: out,
            exclusions,
        })
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
