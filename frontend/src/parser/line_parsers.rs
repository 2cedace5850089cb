//! Per-instruction argument parsing (layer 1): how the text after the instruction word and its
//! flags becomes the node's argument list. The styles follow BuildKit's parser exactly, quirks
//! included, so that `strata parse` splits every line as BuildKit does.

use super::{Node, ParseError};

/// Which argument style an instruction uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// JSON array of strings, else the whole text as one argument (RUN, CMD, ENTRYPOINT, SHELL).
    MaybeJson,
    /// JSON array of strings, else whitespace-separated words (ADD, COPY, VOLUME).
    MaybeJsonToList,
    /// Whitespace-separated words (FROM, EXPOSE).
    Whitespace,
    /// The whole rest of the line (USER, WORKDIR, STOPSIGNAL, MAINTAINER).
    String,
    /// `k=v ...` or legacy `k v` (ENV, LABEL).
    NameVal(&'static str),
    /// `name` or `name=value` words (ARG).
    NameOrNameVal,
    /// Type word, then maybe-JSON (HEALTHCHECK).
    Health,
    /// A nested instruction (ONBUILD).
    SubCommand,
    /// Unknown instruction: arguments are not kept.
    Ignore,
}

/// The argument style of an instruction word (case-insensitive).
pub fn style_for(cmd: &str) -> Style {
    match cmd.to_ascii_lowercase().as_str() {
        "add" | "copy" | "volume" => Style::MaybeJsonToList,
        "arg" => Style::NameOrNameVal,
        "cmd" | "entrypoint" | "run" | "shell" => Style::MaybeJson,
        "env" => Style::NameVal("ENV"),
        "label" => Style::NameVal("LABEL"),
        "expose" | "from" => Style::Whitespace,
        "healthcheck" => Style::Health,
        "maintainer" | "stopsignal" | "user" | "workdir" => Style::String,
        "onbuild" => Style::SubCommand,
        _ => Style::Ignore,
    }
}

/// Go's `unicode.IsSpace`.
pub fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{85}' | '\u{A0}'
    ) || (c > '\u{FF}' && c.is_whitespace())
}

/// The characters of BuildKit's `[\t\v\f\r ]+` whitespace regex.
pub fn is_ws_re(c: char) -> bool {
    matches!(c, '\t' | '\u{0B}' | '\u{0C}' | '\r' | ' ')
}

/// Splits on runs of `[\t\v\f\r ]`, as Go's `regexp.Split(s, -1)` (empty leading and trailing
/// pieces are kept, as Go keeps them).
pub fn split_ws_all(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_ws = false;
    for c in s.chars() {
        if is_ws_re(c) {
            if !in_ws {
                out.push(std::mem::take(&mut cur));
                in_ws = true;
            }
        } else {
            in_ws = false;
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// Splits into at most two pieces at the first run of `[\t\v\f\r ]` (Go `Split(s, 2)`).
pub fn split_ws_2(s: &str) -> (String, Option<String>) {
    match s.find(is_ws_re) {
        None => (s.to_string(), None),
        Some(i) => {
            let rest = &s[i..];
            let rest = rest.trim_start_matches(is_ws_re);
            (s[..i].to_string(), Some(rest.to_string()))
        }
    }
}

/// Result of argument parsing for one instruction.
#[derive(Debug, Default)]
pub struct Parsed {
    pub next: Vec<String>,
    pub json: bool,
    pub child: Option<Box<Node>>,
    /// ENV/LABEL written in the legacy `KEY value` form.
    pub legacy_kv: bool,
}

/// Outcome of trying the JSON exec form.
pub enum JsonOutcome {
    /// A JSON array of strings.
    Json(Vec<String>),
    /// Not JSON (or not an array): use the fallback style.
    NotJson,
    /// Valid JSON array with a non-string element: always an error.
    NotStrings,
}

/// BuildKit's `parseJSON`: text starting with `[` that is a valid JSON array of strings.
pub fn parse_json(rest: &str) -> JsonOutcome {
    let rest = rest.trim_start_matches(is_space);
    if !rest.starts_with('[') {
        return JsonOutcome::NotJson;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(rest) {
        Ok(values) => {
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return JsonOutcome::NotStrings,
                }
            }
            JsonOutcome::Json(out)
        }
        Err(_) => JsonOutcome::NotJson,
    }
}

pub const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// BuildKit's `parseWords`: words split on whitespace, quotes kept (they are removed later by
/// variable expansion), the escape character kept together with the character it escapes.
pub fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(ch) = chars.next() {
        if phase == Phase::Spaces {
            if is_space(ch) {
                continue;
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if is_space(ch) {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                word.push(ch);
                continue;
            }
            if ch == escape {
                match chars.next() {
                    None => continue, // a lone escape at the end is dropped
                    Some(n) => {
                        word.push(ch);
                        word.push(n);
                    }
                }
                continue;
            }
            word.push(ch);
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            word.push(ch);
            continue;
        }
        if ch == escape && quote != '\'' {
            match chars.next() {
                None => {
                    phase = Phase::Word;
                    continue;
                }
                Some(n) => {
                    // An escaped quote character does not close the quote.
                    word.push(ch);
                    word.push(n);
                }
            }
            continue;
        }
        word.push(ch);
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// ENV / LABEL arguments.
fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Parsed, ParseError> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Ok(Parsed::default());
    }
    if !words[0].contains('=') {
        let (name, value) = split_ws_2(rest);
        let Some(value) = value else {
            return Err(ParseError::new(format!("{key} must have two arguments"))
                .hint(format!("write {key} NAME=VALUE")));
        };
        return Ok(Parsed {
            next: vec![name, value, String::new()],
            legacy_kv: true,
            ..Parsed::default()
        });
    }
    let mut next = Vec::with_capacity(words.len() * 3);
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(ParseError::new(format!(
                "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
            ))
            .hint(format!(
                "every word of {key} must be NAME=VALUE; quote values that contain spaces"
            )));
        };
        next.push(k.to_string());
        next.push(v.to_string());
        next.push("=".to_string());
    }
    Ok(Parsed {
        next,
        ..Parsed::default()
    })
}

/// Dispatches on the instruction's argument style.
pub fn parse_args(
    style: Style,
    rest: &str,
    escape: char,
    sub: &dyn Fn(&str) -> Result<Node, ParseError>,
) -> Result<Parsed, ParseError> {
    match style {
        Style::Ignore => Ok(Parsed {
            next: vec![String::new()],
            ..Parsed::default()
        }),
        Style::SubCommand => {
            if rest.is_empty() {
                return Ok(Parsed::default());
            }
            let child = sub(rest)?;
            Ok(Parsed {
                child: Some(Box::new(child)),
                ..Parsed::default()
            })
        }
        Style::String => Ok(Parsed {
            next: if rest.is_empty() {
                vec![]
            } else {
                vec![rest.to_string()]
            },
            ..Parsed::default()
        }),
        Style::Whitespace => Ok(Parsed {
            next: if rest.is_empty() {
                vec![]
            } else {
                split_ws_all(rest)
            },
            ..Parsed::default()
        }),
        Style::NameOrNameVal => Ok(Parsed {
            next: parse_words(rest, escape),
            ..Parsed::default()
        }),
        Style::NameVal(key) => parse_name_val(rest, key, escape),
        Style::MaybeJson => {
            if rest.is_empty() {
                return Ok(Parsed::default());
            }
            maybe_json(rest, |r| vec![r.to_string()])
        }
        Style::MaybeJsonToList => maybe_json(rest, |r| {
            if r.is_empty() {
                vec![]
            } else {
                split_ws_all(r)
            }
        }),
        Style::Health => {
            let sep = rest.find(is_space).unwrap_or(rest.len());
            if sep == 0 {
                return Ok(Parsed::default());
            }
            let typ = &rest[..sep];
            let after = rest[sep..].trim_start_matches(is_space);
            let mut parsed = if after.is_empty() {
                Parsed::default()
            } else {
                maybe_json(after, |r| vec![r.to_string()])?
            };
            parsed.next.insert(0, typ.to_string());
            Ok(parsed)
        }
    }
}

fn maybe_json(rest: &str, fallback: impl Fn(&str) -> Vec<String>) -> Result<Parsed, ParseError> {
    match parse_json(rest) {
        JsonOutcome::Json(next) => Ok(Parsed {
            next,
            json: true,
            ..Parsed::default()
        }),
        JsonOutcome::NotStrings => Err(ParseError::new(NOT_STRING_ARRAY)
            .hint("quote every element of the JSON array, e.g. [\"echo\", \"1\"]")),
        JsonOutcome::NotJson => Ok(Parsed {
            next: fallback(rest),
            ..Parsed::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(
            parse_words(r#"a "b c" d\ e"#, '\\'),
            vec!["a", "\"b c\"", "d\\ e"]
        );
        assert_eq!(parse_words("x='' y", '\\'), vec!["x=''", "y"]);
        assert_eq!(parse_words("a\\", '\\'), vec!["a"]);
        assert_eq!(parse_words(r#""a\"b" c"#, '\\'), vec![r#""a\"b""#, "c"]);
    }

    #[test]
    fn whitespace_split_is_go_regexp_split() {
        assert_eq!(split_ws_all("a  b\tc"), vec!["a", "b", "c"]);
        assert_eq!(split_ws_all("a "), vec!["a", ""]);
        assert_eq!(split_ws_2("k  v w"), ("k".into(), Some("v w".into())));
    }

    #[test]
    fn json_detection() {
        assert!(matches!(parse_json(r#"["a","b"]"#), JsonOutcome::Json(v) if v == ["a", "b"]));
        assert!(matches!(parse_json("['a']"), JsonOutcome::NotJson));
        assert!(matches!(parse_json(r#"["a", 1]"#), JsonOutcome::NotStrings));
        assert!(matches!(parse_json(r#"["a" "#), JsonOutcome::NotJson));
        assert!(matches!(parse_json("[]"), JsonOutcome::Json(v) if v.is_empty()));
    }
}
