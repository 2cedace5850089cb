//! `RUN --mount=...` values: CSV fields parsed and validated as BuildKit does.

use crate::shell::ExpandError;
use crate::suggest::{did_you_mean, did_you_mean_suffix};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

impl fmt::Display for MountType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// One parsed `--mount` flag.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Mount {
    pub kind: MountType,
    pub from: String,
    pub source: String,
    pub target: String,
    pub readonly: bool,
    pub size_limit: Option<u64>,
    pub id: String,
    pub sharing: Option<Sharing>,
    pub required: bool,
    pub env: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Why a `--mount` value is not a CSV record. Each variant carries the whole record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("extraneous \" in field: {record}")]
    ExtraneousQuote { record: String },
    #[error("bare \" in non-quoted field: {record}")]
    BareQuote { record: String },
    #[error("extraneous or missing \" in quoted field: {record}")]
    UnterminatedQuote { record: String },
}

/// A size that [`ram_in_bytes`] cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size: {input:?}")]
pub struct SizeError {
    pub input: String,
}

/// Why a `--mount` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    #[error("failed to parse csv mounts: {0}")]
    Csv(CsvError),
    #[error(transparent)]
    Expand(#[from] ExpandError),
    #[error("invalid field '{field}' must be a key=value pair")]
    NotKeyValue { field: String },
    #[error("unexpected key '{key}' for mount type '{kind}'")]
    KeyNotForType { key: String, kind: MountType },
    #[error("unexpected key '{key}' in '{field}'{}", did_you_mean_suffix(.suggestion, ""))]
    UnknownKey {
        key: String,
        field: String,
        suggestion: Option<&'static str>,
    },
    #[error("unsupported mount type {value:?}{}", did_you_mean_suffix(.suggestion, ""))]
    UnsupportedType {
        value: String,
        suggestion: Option<&'static str>,
    },
    /// A boolean option, or `size`, whose value does not parse.
    #[error("invalid value for {key}: {value}")]
    InvalidValue { key: String, value: String },
    /// `mode` (octal), `uid` or `gid` whose value does not parse.
    #[error("invalid value {value} for {key}")]
    InvalidNumber { key: &'static str, value: String },
    #[error("unsupported sharing value {value:?} (use shared, private or locked)")]
    UnsupportedSharing { value: String },
    #[error("{option} not allowed for \"{kind}\" type mounts")]
    FileInfoNotAllowed {
        option: &'static str,
        kind: MountType,
    },
    #[error("secret mount should not have a from")]
    SecretWithFrom,
    #[error("secret mount should not define sharing")]
    SecretWithSharing,
    #[error("invalid secret mount. one of source, target required")]
    SecretWithoutTarget,
    #[error("both source and id can't be set")]
    SecretSourceAndId,
    #[error("invalid secret id {id:?}: it contains a NUL character")]
    SecretIdNul { id: String },
    #[error("invalid secret id {id:?}: empty, \".\" and \"..\" components are not allowed")]
    SecretIdComponent { id: String },
    #[error("invalid cache sharing set for {kind} mount")]
    SharingNotCache { kind: MountType },
}

/// Splits one CSV record (fields separated by `,`, `"` quoting with `""` for a quote).
pub fn csv_fields(s: &str) -> Result<Vec<String>, CsvError> {
    let record = || s.to_string();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut at_field_start = true;
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_quotes = false;
                    match chars.peek() {
                        None | Some(',') => {}
                        Some(_) => {
                            return Err(CsvError::ExtraneousQuote { record: record() });
                        }
                    }
                }
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            ',' => {
                out.push(std::mem::take(&mut cur));
                at_field_start = true;
                continue;
            }
            '"' if at_field_start => in_quotes = true,
            '"' => return Err(CsvError::BareQuote { record: record() }),
            c => cur.push(c),
        }
        at_field_start = false;
    }
    if in_quotes {
        return Err(CsvError::UnterminatedQuote { record: record() });
    }
    out.push(cur);
    Ok(out)
}

/// Docker's `units.RAMInBytes`: `64m`, `1g`, `512k`, `1.5GiB`, plain bytes.
pub fn ram_in_bytes(s: &str) -> Result<u64, SizeError> {
    let bad = || SizeError {
        input: s.to_string(),
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim_start_matches(' ').to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    let v = num * mult;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as u64)
}

fn parse_bool(key: &str, v: &str) -> Result<bool, MountError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(MountError::InvalidValue {
            key: key.to_string(),
            value: v.to_string(),
        }),
    }
}

const ALL_KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// Parses a `--mount` value. With `expand`, option values (except `from`) are expanded and
/// every option is checked; without it (the first pass, before variables are known), only
/// `type` and `from` are read.
/// Expands one option value.
pub type Expander<'a> = &'a dyn Fn(&str) -> Result<String, ExpandError>;

/// A secret's id names the value, and its last component the default target
/// (`/run/secrets/<base name>`, as BuildKit): ids with a NUL, an empty, `.` or `..`
/// component are refused, so the target is always a file directly in /run/secrets.
pub fn check_secret_id(id: &str) -> Result<(), MountError> {
    if id.contains('\0') {
        return Err(MountError::SecretIdNul { id: id.to_string() });
    }
    if id.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(MountError::SecretIdComponent { id: id.to_string() });
    }
    Ok(())
}

/// The last component of a secret id: its file name in /run/secrets.
pub fn secret_base_name(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

// Long: one arm per `--mount` option, in BuildKit's option table order, then the per-type checks.
pub fn parse_mount(val: &str, expand: Option<Expander<'_>>) -> Result<Mount, MountError> {
    let fields = csv_fields(val).map_err(MountError::Csv)?;
    let mut m = Mount {
        kind: MountType::Bind,
        from: String::new(),
        source: String::new(),
        target: String::new(),
        readonly: false,
        size_limit: None,
        id: String::new(),
        sharing: None,
        required: false,
        env: None,
        mode: None,
        uid: None,
        gid: None,
    };
    let mut ro_auto = true;
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(mut value) = value else {
            if expand.is_none() {
                continue;
            }
            match key.as_str() {
                "readonly" | "ro" => {
                    m.readonly = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = false;
                    ro_auto = false;
                }
                "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                    m.required = true
                }
                "required" => return Err(MountError::KeyNotForType { key, kind: m.kind }),
                _ => {
                    return Err(MountError::NotKeyValue {
                        field: field.clone(),
                    });
                }
            }
            continue;
        };
        // `from` is never expanded here: lowering expands it with the stage's variables and
        // the global ARGs (a strata extension; BuildKit refuses variables in `from`).
        if key != "from" {
            if let Some(ex) = expand {
                value = ex(&value)?;
            } else if key != "type" {
                continue;
            }
        }
        match key.as_str() {
            "type" => {
                m.kind = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        let suggestion =
                            did_you_mean(&value, &["bind", "cache", "tmpfs", "secret", "ssh"]);
                        return Err(MountError::UnsupportedType { value, suggestion });
                    }
                }
            }
            "from" => m.from = value,
            "source" | "src" => m.source = value,
            "target" | "dst" | "destination" => m.target = value,
            "readonly" | "ro" => {
                m.readonly = parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.readonly = !parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "required" => {
                if matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    m.required = parse_bool(&key, &value)?;
                } else {
                    return Err(MountError::KeyNotForType { key, kind: m.kind });
                }
            }
            "size" => {
                if m.kind == MountType::Tmpfs {
                    m.size_limit =
                        Some(ram_in_bytes(&value).map_err(|_| MountError::InvalidValue {
                            key: key.clone(),
                            value: value.clone(),
                        })?);
                } else {
                    return Err(MountError::KeyNotForType { key, kind: m.kind });
                }
            }
            "id" => m.id = value,
            "sharing" => {
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => return Err(MountError::UnsupportedSharing { value }),
                })
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&value, 8).map_err(|_| invalid_number("mode", &value))?,
                )
            }
            "uid" => m.uid = Some(value.parse().map_err(|_| invalid_number("uid", &value))?),
            "gid" => m.gid = Some(value.parse().map_err(|_| invalid_number("gid", &value))?),
            "env" => m.env = Some(value),
            _ => {
                let suggestion = did_you_mean(&key, &ALL_KEYS);
                return Err(MountError::UnknownKey {
                    key,
                    field: field.clone(),
                    suggestion,
                });
            }
        }
    }
    let file_info = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info {
        for (option, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(MountError::FileInfoNotAllowed {
                    option,
                    kind: m.kind,
                });
            }
        }
    }
    if ro_auto {
        m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if !m.from.is_empty() {
            return Err(MountError::SecretWithFrom);
        }
        if m.sharing.is_some() {
            return Err(MountError::SecretWithSharing);
        }
        if expand.is_some() && m.source.is_empty() && m.target.is_empty() && m.id.is_empty() {
            return Err(MountError::SecretWithoutTarget);
        }
        if !m.source.is_empty() && !m.id.is_empty() {
            return Err(MountError::SecretSourceAndId);
        }
        if expand.is_some() {
            for id in [&m.id, &m.source] {
                if !id.is_empty() {
                    check_secret_id(id)?;
                }
            }
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(MountError::SharingNotCache { kind: m.kind });
    }
    Ok(m)
}

fn invalid_number(key: &'static str, value: &str) -> MountError {
    MountError::InvalidNumber {
        key,
        value: value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> Result<Mount, MountError> {
        let id = |v: &str| Ok(v.to_string());
        parse_mount(s, Some(&id))
    }

    #[test]
    fn csv() {
        assert_eq!(csv_fields("a,b=c").unwrap(), vec!["a", "b=c"]);
        assert_eq!(
            csv_fields("\"target=/a,b\",ro").unwrap(),
            vec!["target=/a,b", "ro"]
        );
        assert!(csv_fields("\"open").is_err());
    }

    #[test]
    fn error_variants_and_messages() {
        let e = full("type=bind,targte=/x").unwrap_err();
        assert_eq!(
            e,
            MountError::UnknownKey {
                key: "targte".into(),
                field: "targte=/x".into(),
                suggestion: Some("target"),
            }
        );
        assert_eq!(
            e.to_string(),
            "unexpected key 'targte' in 'targte=/x' (did you mean target?)"
        );

        let e = full("type=tmpfs,target=/t,size=lots").unwrap_err();
        assert_eq!(
            e,
            MountError::InvalidValue {
                key: "size".into(),
                value: "lots".into(),
            }
        );
        assert_eq!(e.to_string(), "invalid value for size: lots");

        let e = full("type=cache,target=/c,uid=x").unwrap_err();
        assert_eq!(
            e,
            MountError::InvalidNumber {
                key: "uid",
                value: "x".into(),
            }
        );
        assert_eq!(e.to_string(), "invalid value x for uid");

        let e = full("type=bind,target=/x,sharing=locked").unwrap_err();
        assert_eq!(
            e,
            MountError::SharingNotCache {
                kind: MountType::Bind
            }
        );
        assert_eq!(e.to_string(), "invalid cache sharing set for bind mount");

        let e = full("type=secret,id=a,src=b").unwrap_err();
        assert_eq!(e, MountError::SecretSourceAndId);
        assert_eq!(e.to_string(), "both source and id can't be set");

        let e = full("target=\"/x").unwrap_err();
        assert_eq!(
            e,
            MountError::Csv(CsvError::BareQuote {
                record: "target=\"/x".into(),
            })
        );
        assert_eq!(
            e.to_string(),
            "failed to parse csv mounts: bare \" in non-quoted field: target=\"/x"
        );
    }

    #[test]
    fn expansion_errors_pass_through() {
        let refuse = |w: &str| {
            if w.contains('$') {
                Err(ExpandError {
                    word: w.to_string(),
                    kind: crate::shell::ExpandErrorKind::BadSubstitution,
                })
            } else {
                Ok(w.to_string())
            }
        };
        let e = parse_mount("type=cache,target=${x", Some(&refuse)).unwrap_err();
        assert!(matches!(&e, MountError::Expand(x) if x.word == "${x"));
        assert_eq!(
            e.to_string(),
            "failed to process \"${x\": syntax error: bad substitution"
        );
    }

    #[test]
    fn defaults_per_type() {
        let m = full("target=/x").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(m.readonly);
        let m = full("type=cache,target=/x,sharing=locked,mode=0700,uid=1").unwrap();
        assert!(!m.readonly);
        assert_eq!(m.mode, Some(0o700));
        assert_eq!(m.sharing, Some(Sharing::Locked));
        let m = full("type=tmpfs,target=/t,size=64m").unwrap();
        assert_eq!(m.size_limit, Some(64 << 20));
        let m = full("type=secret,id=tok,env=TOKEN,required").unwrap();
        assert!(m.required && m.readonly);
        let m = full("type=bind,target=/x,rw").unwrap();
        assert!(!m.readonly);
    }

    #[test]
    fn errors() {
        let e = |s: &str| full(s).unwrap_err().to_string();
        assert_eq!(
            e("type=cahce,target=/x"),
            "unsupported mount type \"cahce\" (did you mean cache?)"
        );
        assert_eq!(
            e("type=bind,target=/x,mode=0700"),
            "mode not allowed for \"bind\" type mounts"
        );
        assert_eq!(
            e("type=secret,from=x,id=a"),
            "secret mount should not have a from"
        );
        assert_eq!(
            e("type=bind,target=/x,size=1m"),
            "unexpected key 'size' for mount type 'bind'"
        );
        assert_eq!(
            e("type=bind,targte=/x"),
            "unexpected key 'targte' in 'targte=/x' (did you mean target?)"
        );
        assert_eq!(
            parse_mount("from=$IMG,target=/x", None).unwrap().from,
            "$IMG"
        );
    }

    #[test]
    fn secret_ids_stay_in_run_secrets() {
        let e = |s: &str| full(s).unwrap_err().to_string();
        assert!(e("type=secret,id=../x").contains("\"..\" components"));
        assert!(e("type=secret,id=..").contains("invalid secret id"));
        assert!(e("type=secret,id=a//b").contains("invalid secret id"));
        assert!(e("type=secret,id=/abs").contains("invalid secret id"));
        assert!(e("type=secret,id=a/.").contains("invalid secret id"));
        assert!(e("type=secret,source=../x").contains("invalid secret id"));
        assert!(e("type=secret,id=a\0b").contains("NUL"));
        // As BuildKit: ids with directories are ids; the target is the base name.
        assert_eq!(full("type=secret,id=aws/creds").unwrap().id, "aws/creds");
        assert_eq!(secret_base_name("aws/creds"), "creds");
        assert_eq!(secret_base_name("tok"), "tok");
        // The first pass (no variables yet) does not judge ids.
        assert!(parse_mount("type=secret,id=../x", None).is_ok());
    }

    #[test]
    fn sizes() {
        assert_eq!(ram_in_bytes("100").unwrap(), 100);
        assert_eq!(ram_in_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(ram_in_bytes("1.5KiB").unwrap(), 1536);
        assert_eq!(
            ram_in_bytes("lots"),
            Err(SizeError {
                input: "lots".into()
            })
        );
        assert_eq!(
            ram_in_bytes("1x").unwrap_err().to_string(),
            "invalid size: \"1x\""
        );
    }
}
