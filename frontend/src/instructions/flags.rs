//! Instruction flags (`--name=value`), parsed as BuildKit's `bflag` parses them.

use crate::suggest::{did_you_mean, did_you_mean_suffix};
use std::collections::BTreeMap;

/// Why an instruction's flags were refused, worded as BuildKit's `bflag`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("arg should start with -- : {arg}")]
    NotAFlag { arg: String },
    #[error("unknown flag: --{name}{}", did_you_mean_suffix(.suggestion, "--"))]
    Unknown {
        name: String,
        suggestion: Option<&'static str>,
    },
    #[error("duplicate flag specified: --{name}")]
    Duplicate { name: String },
    #[error("missing a value on flag: --{name}")]
    MissingValue { name: String },
    #[error("expecting boolean value for flag --{name}, not: {value}")]
    NotBoolean { name: String, value: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    String,
    Strings,
}

/// The flags one instruction accepts, and what the user gave.
#[derive(Debug, Default)]
pub struct Flags {
    defs: BTreeMap<&'static str, Kind>,
    bools: BTreeMap<&'static str, bool>,
    strings: BTreeMap<&'static str, String>,
    lists: BTreeMap<&'static str, Vec<String>>,
    used: Vec<&'static str>,
}

impl Flags {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn bool(mut self, name: &'static str) -> Self {
        self.defs.insert(name, Kind::Bool);
        self
    }
    pub fn string(mut self, name: &'static str) -> Self {
        self.defs.insert(name, Kind::String);
        self
    }
    pub fn strings(mut self, name: &'static str) -> Self {
        self.defs.insert(name, Kind::Strings);
        self
    }

    /// Reads the raw `--flag` words of a node.
    pub fn parse(mut self, args: &[String]) -> Result<Self, FlagError> {
        for a in args {
            if a == "--" {
                break;
            }
            let Some(body) = a.strip_prefix("--") else {
                return Err(FlagError::NotAFlag { arg: a.clone() });
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let missing_value = || FlagError::MissingValue {
                name: name.to_string(),
            };
            let Some((&key, &kind)) = self.defs.get_key_value(name) else {
                let names: Vec<&'static str> = self.defs.keys().copied().collect();
                return Err(FlagError::Unknown {
                    name: name.to_string(),
                    suggestion: did_you_mean(name, &names),
                });
            };
            if self.used.contains(&key) && kind != Kind::Strings {
                return Err(FlagError::Duplicate {
                    name: name.to_string(),
                });
            }
            self.used.push(key);
            match kind {
                Kind::Bool => {
                    if value == Some("") {
                        return Err(missing_value());
                    }
                    let v = match value.map(str::to_ascii_lowercase).as_deref() {
                        None | Some("true") => true,
                        Some("false") => false,
                        Some(_) => {
                            return Err(FlagError::NotBoolean {
                                name: name.to_string(),
                                value: value.unwrap_or_default().to_string(),
                            });
                        }
                    };
                    self.bools.insert(key, v);
                }
                Kind::String => {
                    let Some(v) = value else {
                        return Err(missing_value());
                    };
                    self.strings.insert(key, v.to_string());
                }
                Kind::Strings => {
                    let Some(v) = value else {
                        return Err(missing_value());
                    };
                    self.lists.entry(key).or_default().push(v.to_string());
                }
            }
        }
        Ok(self)
    }

    pub fn get_bool(&self, name: &str) -> bool {
        self.bools.get(name).copied().unwrap_or(false)
    }
    /// `Some` only when the flag was given (even as `--x=false`).
    pub fn get_opt_bool(&self, name: &str) -> Option<bool> {
        self.bools.get(name).copied()
    }
    /// The value, or empty when not given (BuildKit treats `--x=` as not given).
    pub fn get_string(&self, name: &str) -> String {
        self.strings.get(name).cloned().unwrap_or_default()
    }
    pub fn get_strings(&self, name: &str) -> Vec<String> {
        self.lists.get(name).cloned().unwrap_or_default()
    }
    pub fn used(&self) -> &[&'static str] {
        &self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f() -> Flags {
        Flags::new().bool("link").string("from").strings("exclude")
    }
    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_each_kind() {
        let p = f()
            .parse(&args(&["--link", "--from=a", "--exclude=x", "--exclude=y"]))
            .unwrap();
        assert!(p.get_bool("link"));
        assert_eq!(p.get_string("from"), "a");
        assert_eq!(p.get_strings("exclude"), vec!["x", "y"]);
        assert_eq!(
            f().parse(&args(&["--link=FALSE"]))
                .unwrap()
                .get_opt_bool("link"),
            Some(false)
        );
    }

    #[test]
    fn errors() {
        let e = |a: &[&str]| f().parse(&args(a)).unwrap_err().to_string();
        assert_eq!(
            e(&["--frm=a"]),
            "unknown flag: --frm (did you mean --from?)"
        );
        assert_eq!(
            e(&["--from=a", "--from=b"]),
            "duplicate flag specified: --from"
        );
        assert_eq!(e(&["--from"]), "missing a value on flag: --from");
        assert_eq!(e(&["--link="]), "missing a value on flag: --link");
        assert_eq!(
            e(&["--link=maybe"]),
            "expecting boolean value for flag --link, not: maybe"
        );
        assert_eq!(e(&["from=a"]), "arg should start with -- : from=a");
        assert_eq!(e(&["--bogus"]), "unknown flag: --bogus");
    }

    #[test]
    fn error_variants() {
        let e = |a: &[&str]| f().parse(&args(a)).unwrap_err();
        assert_eq!(
            e(&["--frm=a"]),
            FlagError::Unknown {
                name: "frm".into(),
                suggestion: Some("from"),
            }
        );
        assert_eq!(
            e(&["--link", "--link"]),
            FlagError::Duplicate {
                name: "link".into()
            }
        );
        assert_eq!(
            e(&["--exclude"]),
            FlagError::MissingValue {
                name: "exclude".into()
            }
        );
        assert_eq!(
            e(&["--link=maybe"]),
            FlagError::NotBoolean {
                name: "link".into(),
                value: "maybe".into(),
            }
        );
    }
}
