//! Layer 1 of the frontend: Dockerfile text → a list of instruction nodes.
//!
//! This follows BuildKit's `frontend/dockerfile/parser` rule for rule (line continuation with the
//! escape character, comments inside continuations, parser directives, heredocs, per-instruction
//! argument styles), so `strata parse` splits every file exactly as BuildKit does. Unlike
//! BuildKit it does not stop at the first bad instruction: it records a [`Diagnostic`] and goes
//! on, so one run reports every error ([`parse`] returns the AST *and* the diagnostics).
//!
//! Nothing here knows what an instruction means; that is [`crate::instructions`].

pub mod directives;
pub mod dump;
pub mod line_parsers;

use crate::diagnostic::{Diagnostic, LineRange};
use crate::shell::{Env, Lexer};
use directives::{Directive, DirectiveLine, DirectiveScanner};
use line_parsers::{Parsed, is_space, is_ws_re, parse_args, style_for};
use nom::{
    IResult, Parser,
    bytes::complete::{tag, take_while, take_while1},
    character::complete::digit0,
    combinator::{opt, rest},
};
use serde::Serialize;

/// A heredoc attached to an instruction (`<<EOF` … `EOF`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter word with quotes removed; for COPY/ADD also the file name.
    pub name: String,
    /// The file descriptor written before `<<` (`3<<EOF`), 0 when none.
    pub file_descriptor: u32,
    /// False when any part of the delimiter was quoted: the body is not expanded.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body (when it is used, not here).
    pub chomp: bool,
    /// The raw body, newlines kept, terminator line excluded.
    pub content: String,
}

/// One instruction as the parser saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The instruction word as written (`RUN`, `run`, …).
    pub value: String,
    /// The arguments. For ENV/LABEL: `key, value, sep` triples where `sep` is `=` (new form)
    /// or empty (legacy `KEY value` form).
    pub next: Vec<String>,
    /// ONBUILD's nested instruction.
    pub child: Option<Box<Node>>,
    /// The arguments were written in JSON (exec) form.
    pub json: bool,
    /// The `--flags` after the instruction word, quotes and escapes removed.
    pub flags: Vec<String>,
    /// The instruction's text after continuation lines were joined (heredoc bodies excluded).
    pub original: String,
    pub heredocs: Vec<Heredoc>,
    pub start_line: usize,
    pub end_line: usize,
    /// Comment lines directly above the instruction.
    pub prev_comment: Vec<String>,
    /// ENV/LABEL in the legacy `KEY value` form.
    pub legacy_kv: bool,
}

impl Node {
    /// The lower-cased instruction word.
    pub fn command(&self) -> String {
        self.value.to_ascii_lowercase()
    }

    pub fn range(&self) -> LineRange {
        LineRange::new(self.start_line, self.end_line)
    }

    /// The instruction text with heredoc bodies appended, as BuildKit rebuilds it for RUN
    /// heredocs and ONBUILD triggers.
    pub fn original_with_heredocs(&self) -> String {
        if self.heredocs.is_empty() {
            return self.original.clone();
        }
        let mut s = self.original.clone();
        s.push('\n');
        for h in &self.heredocs {
            s.push_str(&h.content);
            s.push_str(&h.name);
            s.push('\n');
        }
        s
    }

    fn can_contain_heredoc(&self) -> bool {
        let node = match (self.command().as_str(), &self.child) {
            ("onbuild", Some(c)) => c.as_ref(),
            _ => self,
        };
        matches!(node.command().as_str(), "add" | "copy" | "run") && !node.json
    }
}

/// The parsed Dockerfile.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Ast {
    pub children: Vec<Node>,
    pub directives: Vec<Directive>,
    /// The escape character in force (`\` or `` ` ``).
    pub escape: char,
}

impl Ast {
    pub fn directive(&self, name: &str) -> Option<&Directive> {
        self.directives.iter().find(|d| d.name == name)
    }
}

/// An error from parsing one instruction, before it has a location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub hint: Option<String>,
}

impl ParseError {
    pub fn new(message: impl Into<String>) -> Self {
        ParseError {
            message: message.into(),
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    fn at(self, range: LineRange) -> Diagnostic {
        let d = Diagnostic::error(range, self.message);
        match self.hint {
            Some(h) => d.with_hint(h),
            None => d,
        }
    }
}

/// Warning rule name for blank lines inside a continued instruction.
pub const NO_EMPTY_CONTINUATION: &str = "NoEmptyContinuation";

struct EmptyEnv;
impl Env for EmptyEnv {
    fn get(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// Splits the input into physical lines, each with its line ending kept.
fn physical_lines(src: &str) -> impl Iterator<Item = &str> {
    src.split_inclusive('\n')
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start_matches(is_space).starts_with('#')
}

/// If the line ends with the escape character (then only spaces or tabs), returns the line
/// without it. Mirrors BuildKit's continuation regex, including its quirk that an escape
/// preceded by another escape is not a continuation.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if let Some(before) = trimmed.strip_suffix(escape)
        && (before.is_empty() || !before.ends_with(escape))
    {
        return (before.to_string(), false);
    }
    (line.to_string(), true)
}

/// `word` then optional whitespace: the instruction word.
fn instruction_word(input: &str) -> IResult<&str, &str> {
    let (rest, word) = take_while1(|c: char| !is_ws_re(c)).parse(input)?;
    let (rest, _) = take_while(is_ws_re).parse(rest)?;
    Ok((rest, word))
}

/// BuildKit's `splitCommand`: instruction word, `--flags`, and the rest of the line.
fn split_command(line: &str, escape: char) -> (String, Vec<String>, String) {
    let line = line.trim_matches(is_space);
    let Ok((rest, cmd)) = instruction_word(line) else {
        return (String::new(), vec![], String::new());
    };
    let (rest, flags) = extract_builder_flags(rest, escape);
    (
        cmd.to_string(),
        flags,
        rest.trim_matches(is_space).to_string(),
    )
}

/// Reads the `--flag` words at the start of `line`; returns the text after them and the flags.
fn extract_builder_flags(line: &str, escape: char) -> (&str, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut iter = line.char_indices().peekable();
    while let Some((pos, ch)) = iter.next() {
        if phase == Phase::Spaces {
            if is_space(ch) {
                continue;
            }
            if !line[pos..].starts_with("--") {
                return (&line[pos..], words);
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if is_space(ch) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (&line[pos..], words);
                }
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
                continue;
            }
            if ch == escape {
                match iter.next() {
                    None => continue,
                    Some((_, n)) => word.push(n),
                }
                continue;
            }
            word.push(ch);
            continue;
        }
        // Quote
        if ch == quote {
            phase = Phase::Word;
            continue;
        }
        if ch == escape {
            match iter.next() {
                None => {
                    phase = Phase::Word;
                    continue;
                }
                Some((_, n)) => word.push(n),
            }
            continue;
        }
        word.push(ch);
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    ("", words)
}

/// Builds a node from one joined logical line.
fn node_from_line(line: &str, escape: char, comments: Vec<String>) -> Result<Node, ParseError> {
    let (cmd, flags, rest) = split_command(line, escape);
    let style = style_for(&cmd);
    let sub = |r: &str| node_from_line(r, escape, vec![]);
    let Parsed {
        next,
        json,
        child,
        legacy_kv,
    } = parse_args(style, &rest, escape, &sub)?;
    Ok(Node {
        value: cmd,
        next,
        child,
        json,
        flags,
        original: line.to_string(),
        heredocs: vec![],
        start_line: 0,
        end_line: 0,
        prev_comment: comments,
        legacy_kv,
    })
}

/// `^(\d*)<<(-?)\s*([^<]*)$` on one word.
fn heredoc_marker(word: &str) -> IResult<&str, (&str, bool, &str)> {
    let (r, fd) = digit0(word)?;
    let (r, _) = tag("<<")(r)?;
    let (r, chomp) = opt(tag("-")).parse(r)?;
    let (r, _) = take_while(|c: char| matches!(c, '\t' | '\n' | '\u{0C}' | '\r' | ' ')).parse(r)?;
    let (r, name) = rest(r)?;
    if name.contains('<') {
        return Err(nom::Err::Error(nom::error::Error::new(
            r,
            nom::error::ErrorKind::Verify,
        )));
    }
    Ok((r, (fd, chomp.is_some(), name)))
}

/// BuildKit's `ParseHeredoc`: whether one word of an instruction is a heredoc marker.
pub fn parse_heredoc_word(word: &str) -> Result<Option<Heredoc>, ParseError> {
    let Ok((_, (fd, chomp, rest))) = heredoc_marker(word) else {
        return Ok(None);
    };
    if rest.is_empty() {
        return Ok(None);
    }
    let mut lex = Lexer::new('\\');
    lex.skip_unset_env = true;
    let words = lex
        .process_words(rest, &EmptyEnv)
        .map_err(|e| ParseError::new(format!("invalid heredoc delimiter {rest:?}: {e}")))?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw = lex
        .process_words(rest, &EmptyEnv)
        .map_err(|e| ParseError::new(format!("invalid heredoc delimiter {rest:?}: {e}")))?;
    if raw.len() != 1 {
        return Err(ParseError::new(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        )));
    }
    let count = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    let expand = count(&words[0]) == count(&raw[0]);
    Ok(Some(Heredoc {
        name: words[0].clone(),
        file_descriptor: fd.parse().unwrap_or(0),
        expand,
        chomp,
        content: String::new(),
    }))
}

/// The heredoc markers in a joined instruction line, in order.
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, ParseError> {
    let mut lex = Lexer::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset_env = true;
    let words = lex.process_words(line, &EmptyEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc_word(&w)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

/// Removes leading tabs from every line of a heredoc body (`<<-`).
pub fn chomp_heredoc_content(src: &str) -> String {
    src.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

/// Parses a Dockerfile. Never fails: problems come back as diagnostics next to whatever could
/// be parsed.
// Long: the line loop: continuations, comments inside them, heredocs and directives share its state.
pub fn parse(src: &str) -> (Ast, Vec<Diagnostic>) {
    let src = src.strip_prefix('\u{FEFF}').unwrap_or(src);
    let mut diags = Vec::new();
    let mut scanner = DirectiveScanner::default();
    let mut escape = '\\';
    let mut children = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut lines = physical_lines(src).peekable();
    let mut current_line = 0usize;

    while let Some(raw) = lines.next() {
        if is_comment(raw) {
            // BuildKit drops the first byte of the raw line (not of the trimmed one).
            let c = raw.chars().skip(1).collect::<String>();
            let c = c.trim_matches(is_space);
            if c.is_empty() {
                comments.clear();
            } else {
                comments.push(c.to_string());
            }
        }
        let first = trim_newline(raw).trim_start_matches(is_space);
        current_line += 1;
        match scanner.scan(first, current_line) {
            DirectiveLine::Yes => {
                comments.pop();
                if let Some(d) = scanner.found.last()
                    && d.name == "escape"
                {
                    match d.value.as_str() {
                        "\\" => escape = '\\',
                        "`" => escape = '`',
                        other => diags.push(
                            Diagnostic::error(
                                LineRange::line(current_line),
                                format!("invalid escape token '{other}' does not match ` or \\"),
                            )
                            .with_hint("use # escape=\\ or # escape=`"),
                        ),
                    }
                }
            }
            DirectiveLine::Duplicate(name) => diags.push(
                Diagnostic::error(
                    LineRange::line(current_line),
                    format!("only one {name} parser directive can be used"),
                )
                .with_hint("remove the repeated directive"),
            ),
            DirectiveLine::No => {}
        }
        let first = if is_comment(first) { "" } else { first };
        let start_line = current_line;
        let (mut buf, mut end_of_line) = trim_continuation(first, escape);
        if end_of_line && buf.is_empty() {
            continue;
        }
        let mut empty_continuation = false;
        while !end_of_line {
            let Some(raw) = lines.next() else { break };
            current_line += 1;
            if is_comment(raw) {
                continue;
            }
            let line = trim_newline(raw);
            if line.trim_start_matches(is_space).is_empty() {
                empty_continuation = true;
                continue;
            }
            let (piece, eol) = trim_continuation(line, escape);
            buf.push_str(&piece);
            end_of_line = eol;
        }
        if empty_continuation {
            let mut d = Diagnostic::warning(
                LineRange::new(start_line, current_line),
                "Empty continuation line found: empty continuation lines will become errors in a future release",
            )
            .with_hint("remove the blank line or end the instruction before it");
            d.rule = Some(NO_EMPTY_CONTINUATION);
            d.url =
                Some("https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/".into());
            diags.push(d);
        }

        let node = node_from_line(&buf, escape, std::mem::take(&mut comments));
        let mut node = match node {
            Ok(n) => n,
            Err(e) => {
                diags.push(e.at(LineRange::new(start_line, current_line)));
                continue;
            }
        };

        if node.can_contain_heredoc() && buf.contains("<<") {
            match heredocs_from_line(&buf) {
                Err(e) => {
                    diags.push(e.at(LineRange::new(start_line, current_line)));
                    continue;
                }
                Ok(docs) => {
                    for mut doc in docs {
                        let mut terminated = false;
                        let mut content = String::new();
                        for raw in lines.by_ref() {
                            current_line += 1;
                            let mut candidate = trim_newline(raw);
                            if doc.chomp {
                                candidate = candidate.trim_start_matches('\t');
                            }
                            if candidate == doc.name {
                                terminated = true;
                                break;
                            }
                            content.push_str(raw);
                        }
                        if !terminated {
                            diags.push(
                                Diagnostic::error(
                                    LineRange::new(start_line, current_line),
                                    format!("unterminated heredoc {:?}", doc.name),
                                )
                                .with_hint(format!(
                                    "end the heredoc with a line that holds only {}",
                                    doc.name
                                )),
                            );
                        }
                        doc.content = content;
                        node.heredocs.push(doc);
                    }
                }
            }
        }
        node.start_line = start_line;
        node.end_line = current_line;
        if let Some(c) = node.child.as_mut() {
            c.start_line = start_line;
            c.end_line = current_line;
        }
        children.push(node);
    }

    if children.is_empty() && !diags.iter().any(Diagnostic::is_error) {
        let msg = if src.trim().is_empty() {
            "the Dockerfile cannot be empty"
        } else {
            "file with no instructions"
        };
        diags.push(
            Diagnostic::error(LineRange::line(current_line.max(1)), msg)
                .with_hint("a Dockerfile needs at least a FROM instruction"),
        );
    }

    let ast = Ast {
        children,
        directives: scanner.found,
        escape,
    };
    (ast, diags)
}

#[cfg(test)]
mod tests;
