//! Diagnostics: every error and warning the frontend reports, with the lines it is about.
//!
//! A diagnostic renders as BuildKit-style text:
//!
//! ```text
//! Dockerfile:3: ENV names can not be blank
//!  3 | ENV =x
//! hint: write ENV NAME=VALUE
//! ```
//!
//! The frontend never stops at the first problem: parsing, instruction checking, lowering and
//! linting all push diagnostics and go on, so one run reports everything it can.

use serde::Serialize;
use std::fmt::{self, Write as _};

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A build-check (lint) finding or a parser warning; the build goes on.
    Warning,
    /// The Dockerfile cannot be built as written.
    Error,
}

/// A 1-based, inclusive range of source lines. `start == 0` means "no particular line".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct LineRange {
    pub start: usize,
    pub end: usize,
}

impl LineRange {
    pub fn new(start: usize, end: usize) -> Self {
        LineRange {
            start,
            end: end.max(start),
        }
    }
    pub fn line(line: usize) -> Self {
        LineRange::new(line, line)
    }
}

/// One problem found in a Dockerfile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The build-check rule that produced this, e.g. `UndefinedVar`; `None` for plain errors.
    pub rule: Option<&'static str>,
    pub message: String,
    pub range: LineRange,
    /// What to do about it, when there is something useful to say.
    pub hint: Option<String>,
    /// Documentation link for build-check rules.
    pub url: Option<String>,
}

impl Diagnostic {
    pub fn error(range: LineRange, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            rule: None,
            message: message.into(),
            range,
            hint: None,
            url: None,
        }
    }

    pub fn warning(range: LineRange, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(range, message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic with the offending source lines.
    ///
    /// `file` is the Dockerfile name as the user gave it; `source` the whole Dockerfile text.
    pub fn render(&self, file: &str, source: &str) -> String {
        let mut out = String::new();
        let _ = write!(out, "{}", self.headline(file));
        if self.range.start > 0 {
            let width = self.range.end.to_string().len();
            // Show at most 12 lines of a long range: the first 6 and the last 6.
            let lines: Vec<(usize, &str)> = source
                .lines()
                .enumerate()
                .map(|(i, l)| (i + 1, l))
                .filter(|(n, _)| *n >= self.range.start && *n <= self.range.end)
                .collect();
            let shown: Vec<&(usize, &str)> = if lines.len() > 12 {
                lines
                    .iter()
                    .take(6)
                    .chain(lines.iter().skip(lines.len() - 6))
                    .collect()
            } else {
                lines.iter().collect()
            };
            let mut prev = None;
            for (n, text) in shown {
                if let Some(p) = prev
                    && *n != p + 1
                {
                    let _ = write!(out, "\n {:>width$} | ...", "", width = width);
                }
                let _ = write!(out, "\n {n:>width$} | {}", text.trim_end_matches('\r'));
                prev = Some(*n);
            }
        }
        if let Some(h) = &self.hint {
            let _ = write!(out, "\nhint: {h}");
        }
        if let Some(u) = &self.url {
            let _ = write!(out, "\nsee {u}");
        }
        out
    }

    /// `FILE:LINE: [Rule: ]message` (or `FILE: message` for a diagnostic without a line).
    pub fn headline(&self, file: &str) -> String {
        let rule = self.rule.map(|r| format!("{r}: ")).unwrap_or_default();
        if self.range.start > 0 {
            format!("{file}:{}: {rule}{}", self.range.start, self.message)
        } else {
            format!("{file}: {rule}{}", self.message)
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.headline("Dockerfile"))
    }
}

/// Whether any of `diags` is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_and_source() {
        let src = "FROM a\nENV =x\nRUN b\n";
        let d = Diagnostic::error(LineRange::line(2), "ENV names can not be blank")
            .with_hint("write ENV NAME=VALUE");
        assert_eq!(
            d.render("app.Dockerfile", src),
            "app.Dockerfile:2: ENV names can not be blank\n 2 | ENV =x\nhint: write ENV NAME=VALUE"
        );
    }

    #[test]
    fn long_ranges_are_elided() {
        let src: String = (1..=30).map(|i| format!("l{i}\n")).collect();
        let d = Diagnostic::error(LineRange::new(1, 30), "x");
        let r = d.render("Dockerfile", &src);
        assert!(r.contains(" 1 | l1"));
        assert!(r.contains("   | ..."));
        assert!(r.contains("30 | l30"));
        assert!(!r.contains("l15"));
    }
}
