//! Build checks: BuildKit's lint rules, configured by `# check=skip=…;error=true` (or the
//! `BUILDKIT_DOCKERFILE_CHECK` build arg), and per instruction by a `# check=skip=Rule`
//! comment right above it.
//!
//! Rules that need only the syntax tree run in [`lint_ast`]; rules that need variable values
//! or stage state are reported by [`crate::lower`] through a [`Linter`].

use crate::diagnostic::{Diagnostic, LineRange, Severity};
use crate::parser::{Ast, NO_EMPTY_CONTINUATION};

/// A rule: name, whether it is experimental (off unless enabled), documentation slug.
pub struct Rule {
    pub name: &'static str,
    pub experimental: bool,
}

macro_rules! rules {
    ($($id:ident = $name:literal $(, $exp:ident)?;)*) => {
        $(pub const $id: Rule = Rule { name: $name, experimental: rules!(@exp $($exp)?) };)*
        /// Every rule strata knows.
        pub const ALL_RULES: &[Rule] = &[$($id),*];
    };
    (@exp experimental) => { true };
    (@exp) => { false };
}

rules! {
    STAGE_NAME_CASING = "StageNameCasing";
    FROM_AS_CASING = "FromAsCasing";
    NO_EMPTY_CONTINUATION_RULE = "NoEmptyContinuation";
    CONSISTENT_INSTRUCTION_CASING = "ConsistentInstructionCasing";
    DUPLICATE_STAGE_NAME = "DuplicateStageName";
    RESERVED_STAGE_NAME = "ReservedStageName";
    JSON_ARGS_RECOMMENDED = "JSONArgsRecommended";
    MAINTAINER_DEPRECATED = "MaintainerDeprecated";
    UNDEFINED_ARG_IN_FROM = "UndefinedArgInFrom";
    WORKDIR_RELATIVE_PATH = "WorkdirRelativePath";
    UNDEFINED_VAR = "UndefinedVar";
    MULTIPLE_INSTRUCTIONS_DISALLOWED = "MultipleInstructionsDisallowed";
    LEGACY_KEY_VALUE_FORMAT = "LegacyKeyValueFormat";
    REDUNDANT_TARGET_PLATFORM = "RedundantTargetPlatform";
    SECRETS_USED_IN_ARG_OR_ENV = "SecretsUsedInArgOrEnv";
    INVALID_DEFAULT_ARG_IN_FROM = "InvalidDefaultArgInFrom";
    FROM_PLATFORM_FLAG_CONST_DISALLOWED = "FromPlatformFlagConstDisallowed";
    COPY_IGNORED_FILE = "CopyIgnoredFile";
    INVALID_DEFINITION_DESCRIPTION = "InvalidDefinitionDescription", experimental;
    EXPOSE_PROTO_CASING = "ExposeProtoCasing";
    EXPOSE_INVALID_FORMAT = "ExposeInvalidFormat";
}

fn doc_url(rule: &str) -> String {
    let mut slug = String::new();
    for (i, c) in rule.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            slug.push('-');
        }
        slug.push(c.to_ascii_lowercase());
    }
    // BuildKit's slugs keep "JSON" together.
    let slug = slug.replace("j-s-o-n", "json");
    format!("https://docs.docker.com/go/dockerfile/rule/{slug}/")
}

/// Why a `check` configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckConfigError {
    #[error("invalid check option {option:?}: expected key=value")]
    NotKeyValue { option: String },
    #[error("invalid value for check error: {value:?}")]
    InvalidError { value: String },
    #[error("unknown check option {option:?}")]
    UnknownOption { option: String },
}

/// The `check` configuration: which rules are skipped, whether findings fail the build.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckConfig {
    pub skip_all: bool,
    pub skip: Vec<String>,
    pub experimental_all: bool,
    pub experimental: Vec<String>,
    pub error: bool,
}

impl CheckConfig {
    /// Parses `skip=A,B;error=true;experimental=all`.
    pub fn parse(s: &str) -> Result<CheckConfig, CheckConfigError> {
        let mut c = CheckConfig::default();
        c.merge(s)?;
        Ok(c)
    }

    /// Applies `s` on top of this configuration.
    pub fn merge(&mut self, s: &str) -> Result<(), CheckConfigError> {
        for part in s.split(';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((k, v)) = part.split_once('=') else {
                return Err(CheckConfigError::NotKeyValue {
                    option: part.to_string(),
                });
            };
            let list = || -> Vec<String> {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "skip" => {
                    let l = list();
                    if l.iter().any(|r| r == "all") {
                        self.skip_all = true;
                    }
                    self.skip.extend(l);
                }
                "experimental" => {
                    let l = list();
                    if l.iter().any(|r| r == "all") {
                        self.experimental_all = true;
                    }
                    self.experimental.extend(l);
                }
                "error" => {
                    self.error = match v.trim().to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        other => {
                            return Err(CheckConfigError::InvalidError {
                                value: other.to_string(),
                            });
                        }
                    }
                }
                other => {
                    return Err(CheckConfigError::UnknownOption {
                        option: other.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    fn enabled(&self, rule: &Rule) -> bool {
        if self.skip_all || self.skip.iter().any(|r| r == rule.name) {
            return false;
        }
        !rule.experimental
            || self.experimental_all
            || self.experimental.iter().any(|r| r == rule.name)
    }
}

/// Collects findings, honouring the configuration and per-instruction skip comments.
#[derive(Debug, Default)]
pub struct Linter {
    pub config: CheckConfig,
    pub findings: Vec<Diagnostic>,
    seen: std::collections::HashSet<(&'static str, usize, String)>,
}

impl Linter {
    pub fn new(config: CheckConfig) -> Self {
        Linter {
            config,
            findings: vec![],
            seen: Default::default(),
        }
    }

    /// Reports `rule` at `range` unless skipped. `comments` are the comment lines directly
    /// above the instruction (a `check=skip=Rule` among them skips it here).
    pub fn report(&mut self, rule: &Rule, range: LineRange, comments: &[String], message: String) {
        let mut cfg = self.config.clone();
        for c in comments {
            if let Some(v) = c.trim().strip_prefix("check=") {
                let _ = cfg.merge(v);
            }
        }
        if !cfg.enabled(rule) {
            return;
        }
        let mut d = Diagnostic::warning(range, message);
        d.rule = Some(rule.name);
        d.url = Some(doc_url(rule.name));
        if !self
            .seen
            .insert((rule.name, range.start, d.message.clone()))
        {
            return;
        }
        self.findings.push(d);
    }

    /// Findings as diagnostics; with `error=true` they become errors.
    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        let error = self.config.error;
        self.findings
            .into_iter()
            .map(|mut d| {
                if error {
                    d.severity = Severity::Error;
                }
                d
            })
            .collect()
    }
}

/// Whether an ARG/ENV name looks like it holds a secret (BuildKit's heuristic).
pub fn looks_secret(name: &str) -> bool {
    const DENY: [&str; 10] = [
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    const ALLOW: [&str; 3] = ["public", "file", "version"];
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower.split(['_', '-', '.']).collect();
    if words.iter().any(|w| ALLOW.contains(w)) {
        return false;
    }
    words.iter().any(|w| DENY.contains(w))
}

/// Rules that need only the syntax tree: casing and parser warnings.
pub fn lint_ast(ast: &Ast, parse_warnings: &[Diagnostic], linter: &mut Linter) {
    for w in parse_warnings {
        if w.rule == Some(NO_EMPTY_CONTINUATION) {
            linter.report(
                &NO_EMPTY_CONTINUATION_RULE,
                w.range,
                &[],
                "Empty continuation line found".to_string(),
            );
        }
    }
    // ConsistentInstructionCasing: compare against the majority.
    let (mut upper, mut lower) = (0usize, 0usize);
    for n in &ast.children {
        if n.value == n.value.to_uppercase() {
            upper += 1;
        } else if n.value == n.value.to_lowercase() {
            lower += 1;
        }
    }
    let majority_lower = lower > upper;
    for n in &ast.children {
        let ok = if majority_lower {
            n.value == n.value.to_lowercase()
        } else {
            n.value == n.value.to_uppercase()
        };
        if !ok {
            let casing = if majority_lower {
                "lowercase"
            } else {
                "uppercase"
            };
            linter.report(
                &CONSISTENT_INSTRUCTION_CASING,
                n.range(),
                &n.prev_comment,
                format!(
                    "Command '{}' should match the case of the command majority ({casing})",
                    n.value
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parsing() {
        let c = CheckConfig::parse("skip=JSONArgsRecommended,StageNameCasing;error=true").unwrap();
        assert!(c.error);
        assert!(!c.enabled(&JSON_ARGS_RECOMMENDED));
        assert!(c.enabled(&UNDEFINED_VAR));
        assert!(!c.enabled(&INVALID_DEFINITION_DESCRIPTION));
        let c = CheckConfig::parse("skip=all").unwrap();
        assert!(!c.enabled(&UNDEFINED_VAR));
        assert!(CheckConfig::parse("bogus=1").is_err());
        assert!(CheckConfig::parse("error=maybe").is_err());
    }

    #[test]
    fn config_errors() {
        let e = CheckConfig::parse("skip=all; Bogus=1").unwrap_err();
        assert_eq!(
            e,
            CheckConfigError::UnknownOption {
                option: "bogus".into()
            }
        );
        assert_eq!(e.to_string(), "unknown check option \"bogus\"");
        let e = CheckConfig::parse("error=Maybe").unwrap_err();
        assert_eq!(
            e,
            CheckConfigError::InvalidError {
                value: "maybe".into()
            }
        );
        assert_eq!(e.to_string(), "invalid value for check error: \"maybe\"");
        let mut c = CheckConfig::default();
        let e = c.merge("error").unwrap_err();
        assert_eq!(
            e,
            CheckConfigError::NotKeyValue {
                option: "error".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "invalid check option \"error\": expected key=value"
        );
    }

    #[test]
    fn secrets_heuristic() {
        assert!(looks_secret("AWS_SECRET_KEY"));
        assert!(looks_secret("github_token"));
        assert!(!looks_secret("PUBLIC_KEY"));
        assert!(!looks_secret("KEY_FILE"));
        assert!(!looks_secret("NODE_VERSION"));
        assert!(!looks_secret("MONKEY"));
    }

    #[test]
    fn urls() {
        assert_eq!(
            doc_url("JSONArgsRecommended"),
            "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"
        );
        assert_eq!(
            doc_url("FromAsCasing"),
            "https://docs.docker.com/go/dockerfile/rule/from-as-casing/"
        );
    }

    #[test]
    fn per_instruction_skip() {
        let mut l = Linter::new(CheckConfig::default());
        l.report(
            &UNDEFINED_VAR,
            LineRange::line(2),
            &["check=skip=UndefinedVar".into()],
            "x".into(),
        );
        l.report(&UNDEFINED_VAR, LineRange::line(3), &[], "y".into());
        assert_eq!(l.findings.len(), 1);
        let mut l = Linter::new(CheckConfig::parse("error=true").unwrap());
        l.report(&UNDEFINED_VAR, LineRange::line(3), &[], "y".into());
        assert!(l.into_diagnostics()[0].is_error());
    }
}
