//! Printing the raw syntax tree: BuildKit's S-expression dump (the format of its parser test
//! fixtures) and the JSON form `strata parse --format json` prints.

use super::{Ast, Node};
use serde::Serialize;
use std::fmt::Write as _;

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0B}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7F}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint`: graphic characters and the ASCII space.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c as u32, 0xAD | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2064 | 0xFEFF | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF))
}

/// BuildKit's `Node.Dump` for one instruction.
pub fn dump_node(node: &Node) -> String {
    let mut s = node.value.to_lowercase();
    if !node.flags.is_empty() {
        let flags: Vec<String> = node.flags.iter().map(|f| go_quote(f)).collect();
        let _ = write!(s, " [{}]", flags.join(" "));
    }
    if let Some(child) = &node.child {
        let _ = write!(s, " ({})", dump_node(child));
    }
    for v in &node.next {
        s.push(' ');
        s.push_str(&go_quote(v));
    }
    s.trim().to_string()
}

/// The whole file in the fixture format: one `(…)` line per instruction.
pub fn dump(ast: &Ast) -> String {
    let mut s = String::new();
    for n in &ast.children {
        let _ = writeln!(s, "({})", dump_node(n));
    }
    s
}

/// One heredoc in the JSON dump.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct JsonHeredoc {
    pub name: String,
    pub content: String,
}

/// One instruction in the JSON dump (the shape of the `dockerfile` Python package's Command).
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct JsonInstruction {
    pub cmd: String,
    pub sub_cmd: Option<String>,
    pub json: bool,
    pub original: String,
    pub start_line: usize,
    pub end_line: usize,
    pub flags: Vec<String>,
    pub value: Vec<String>,
    pub heredocs: Vec<JsonHeredoc>,
}

/// Values without ENV/LABEL separators.
fn values(node: &Node) -> Vec<String> {
    match node.command().as_str() {
        "env" | "label" => node
            .next
            .chunks(3)
            .flat_map(|c| c.iter().take(2).cloned())
            .collect(),
        _ => node.next.clone(),
    }
}

pub fn to_json(ast: &Ast) -> Vec<JsonInstruction> {
    ast.children
        .iter()
        .map(|n| {
            let (sub_cmd, json, value) = match &n.child {
                Some(c) => (Some(c.value.clone()), c.json, values(c)),
                None => (None, n.json, values(n)),
            };
            JsonInstruction {
                cmd: n.value.clone(),
                sub_cmd,
                json,
                original: n.original_with_heredocs(),
                start_line: n.start_line,
                end_line: n.end_line,
                flags: n.flags.clone(),
                value,
                heredocs: n
                    .heredocs
                    .iter()
                    .map(|h| JsonHeredoc {
                        name: h.name.clone(),
                        content: h.content.clone(),
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("tab\there\n"), r#""tab\there\n""#);
        assert_eq!(go_quote("한국어"), "\"한국어\"");
        assert_eq!(go_quote("\u{1}"), r#""\x01""#);
        assert_eq!(go_quote("\u{a0}"), r#""\u00a0""#);
    }
}
