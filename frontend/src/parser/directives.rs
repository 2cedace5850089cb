//! Parser directives: `# syntax=…`, `# escape=…`, `# check=…` at the very top of a Dockerfile.

use nom::{
    IResult, Parser,
    bytes::complete::{tag, take_while, take_while1},
    character::complete::{satisfy, space0},
    combinator::recognize,
    sequence::pair,
};

/// The directive keys BuildKit knows. Any other `# key=value` line ends directive scanning.
pub const KNOWN: [&str; 3] = ["syntax", "escape", "check"];

/// A parser directive found at the top of the file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Directive {
    /// Lower-cased key.
    pub name: String,
    /// Value as written, surrounding whitespace trimmed.
    pub value: String,
    /// 1-based line.
    pub line: usize,
}

/// Parses `key = value` after the comment prefix: a letter then letters or digits, optional
/// whitespace around `=`, and a non-empty value with trailing whitespace trimmed.
fn key_value(input: &str) -> IResult<&str, (&str, &str)> {
    let (rest, key) = recognize(pair(
        satisfy(|c| c.is_ascii_alphabetic()),
        take_while(|c: char| c.is_ascii_alphanumeric()),
    ))
    .parse(input)?;
    let (rest, _) = (space0, tag("="), take_while(char::is_whitespace)).parse(rest)?;
    let (rest, value) = take_while1(|_| true).parse(rest)?;
    Ok((rest, (key, value)))
}

/// Tries to read one directive from a line that starts (after leading whitespace) with
/// `prefix` (`#` normally). Returns `None` when the line is not a directive line.
pub fn parse_directive_line(line: &str, prefix: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix(prefix)?;
    let rest = rest.trim_start();
    let (_, (key, value)) = key_value(rest).ok()?;
    let value = value.trim_end();
    if value.is_empty() {
        return None;
    }
    Some((key.to_ascii_lowercase(), value.to_string()))
}

/// The state of directive scanning while the parser reads the first lines.
#[derive(Debug, Default)]
pub struct DirectiveScanner {
    done: bool,
    pub found: Vec<Directive>,
}

/// What one line meant to the directive scanner.
#[derive(Debug, PartialEq, Eq)]
pub enum DirectiveLine {
    /// Not a directive (and scanning is over).
    No,
    /// A directive, recorded.
    Yes,
    /// A directive that was already given: an error.
    Duplicate(String),
}

impl DirectiveScanner {
    /// Looks at one line (newline and leading whitespace already removed).
    pub fn scan(&mut self, line: &str, line_no: usize) -> DirectiveLine {
        if self.done {
            return DirectiveLine::No;
        }
        let Some((name, value)) = parse_directive_line(line, "#") else {
            self.done = true;
            return DirectiveLine::No;
        };
        if !KNOWN.contains(&name.as_str()) {
            self.done = true;
            return DirectiveLine::No;
        }
        if self.found.iter().any(|d| d.name == name) {
            return DirectiveLine::Duplicate(name);
        }
        self.found.push(Directive {
            name,
            value,
            line: line_no,
        });
        DirectiveLine::Yes
    }

    pub fn get(&self, name: &str) -> Option<&Directive> {
        self.found.iter().find(|d| d.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str, expect: Option<(&str, &str)>) {
        let got = parse_directive_line(line, "#");
        assert_eq!(
            got.as_ref().map(|(k, v)| (k.as_str(), v.as_str())),
            expect,
            "{line:?}"
        );
    }

    #[test]
    fn directive_forms() {
        check("# escape=`", Some(("escape", "`")));
        check("#escape =  \\  ", Some(("escape", "\\")));
        check(
            "# SYNTAX = docker/dockerfile:1",
            Some(("syntax", "docker/dockerfile:1")),
        );
        check(
            "# check=skip=all;error=true",
            Some(("check", "skip=all;error=true")),
        );
        check("# 1a=b", None);
        check("# a b=c", None);
        check("# a=", None);
        check("just text", None);
    }

    #[test]
    fn scanning_stops_at_first_non_directive() {
        let mut s = DirectiveScanner::default();
        assert_eq!(s.scan("# syntax=x", 1), DirectiveLine::Yes);
        assert_eq!(s.scan("# unknown=x", 2), DirectiveLine::No);
        assert_eq!(s.scan("# escape=`", 3), DirectiveLine::No);
        assert_eq!(s.found.len(), 1);
    }

    #[test]
    fn duplicates_are_reported() {
        let mut s = DirectiveScanner::default();
        assert_eq!(s.scan("# escape=`", 1), DirectiveLine::Yes);
        assert_eq!(
            s.scan("# escape=\\", 2),
            DirectiveLine::Duplicate("escape".into())
        );
    }
}
