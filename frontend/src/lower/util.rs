//! Small pure helpers for lowering: paths, ports, modes, signals, remote sources.

pub use crate::path::clean;

/// Joins `p` onto `base` (when relative) and cleans it, keeping a trailing slash when
/// `keep_slash` is set (BuildKit's `NormalizePath`).
pub fn normalize(base: &str, p: &str, keep_slash: bool) -> String {
    let joined = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("{}/{}", if base.is_empty() { "/" } else { base }, p)
    };
    let mut c = clean(&joined);
    let wants_slash = keep_slash && (p.ends_with('/') || p.ends_with("/.") || p == ".");
    if wants_slash && !c.ends_with('/') {
        c.push('/');
    }
    c
}

/// COPY/ADD destination relative to the working directory (trailing slash kept).
pub fn dest_path(workdir: &str, p: &str) -> String {
    if p.starts_with('/') {
        return normalize("/", p, true);
    }
    let p = if p.is_empty() || p == "." { "./" } else { p };
    normalize(workdir, p, true)
}

/// A chmod value: octal up to 07777 or chmod(1) symbolic syntax.
pub enum ChmodValue {
    Octal(u32),
    Symbolic(String),
}

/// Why a `--chmod` value was refused. Each variant carries the whole value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChmodError {
    #[error(
        "invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777"
    )]
    NotOctal { value: String },
    #[error("invalid chmod parameter: '{value}': missing operator (+, - or =)")]
    MissingOperator { value: String },
    #[error("invalid chmod parameter: '{value}': unknown who {who:?}")]
    UnknownWho { value: String, who: String },
    #[error("invalid chmod parameter: '{value}'")]
    Malformed { value: String },
    #[error("invalid chmod parameter: '{value}': unknown permission {perms:?}")]
    UnknownPermission { value: String, perms: String },
}

pub fn parse_chmod(s: &str) -> Result<ChmodValue, ChmodError> {
    let value = || s.to_string();
    let non_octal = || ChmodError::NotOctal { value: value() };
    if let Ok(v) = u32::from_str_radix(s, 8) {
        return if v > 0o7777 {
            Err(non_octal())
        } else {
            Ok(ChmodValue::Octal(v))
        };
    }
    if s.chars().all(|c| c.is_ascii_digit()) {
        return Err(non_octal());
    }
    // [ugoa]*([-+=]([rwxXst]*|[ugo]))+ separated by commas
    for clause in s.split(',') {
        let ops_at = clause
            .find(['+', '-', '='])
            .ok_or_else(|| ChmodError::MissingOperator { value: value() })?;
        let (who, mut rest) = clause.split_at(ops_at);
        if !who.chars().all(|c| matches!(c, 'u' | 'g' | 'o' | 'a')) {
            return Err(ChmodError::UnknownWho {
                value: value(),
                who: who.to_string(),
            });
        }
        while !rest.is_empty() {
            let op_len = rest.chars().next().map(char::len_utf8).unwrap_or(1);
            if !rest.starts_with(['+', '-', '=']) {
                return Err(ChmodError::Malformed { value: value() });
            }
            rest = &rest[op_len..];
            let end = rest.find(['+', '-', '=']).unwrap_or(rest.len());
            let perms = &rest[..end];
            let ok = perms
                .chars()
                .all(|c| matches!(c, 'r' | 'w' | 'x' | 'X' | 's' | 't'))
                || matches!(perms, "u" | "g" | "o");
            if !ok {
                return Err(ChmodError::UnknownPermission {
                    value: value(),
                    perms: perms.to_string(),
                });
            }
            rest = &rest[end..];
        }
    }
    Ok(ChmodValue::Symbolic(s.to_string()))
}

/// Why an EXPOSE entry was refused, worded as Docker's `nat.ParsePortSpec`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExposeError {
    #[error("invalid proto: {proto}")]
    InvalidProto { proto: String },
    #[error("invalid containerPort: {port}")]
    InvalidPort { port: String },
    #[error("invalid range specified for container port: {port}")]
    InvalidRange { port: String },
}

/// One EXPOSE entry: `port[-port][/proto]`, possibly `ip:host:container` (only the container
/// port is kept). Returns the `port/proto` keys and whether a host part was dropped.
pub fn parse_expose(spec: &str) -> Result<(Vec<String>, bool), ExposeError> {
    let (main, proto) = match spec.rsplit_once('/') {
        Some((m, p)) => (m, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(ExposeError::InvalidProto { proto });
    }
    let (container, had_host) = match main.rfind(':') {
        Some(i) => (&main[i + 1..], true),
        None => (main, false),
    };
    let bad = || ExposeError::InvalidPort {
        port: container.to_string(),
    };
    let parse = |s: &str| s.parse::<u16>().map_err(|_| bad());
    let (start, end) = match container.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(container)?;
            (p, p)
        }
    };
    if end < start {
        return Err(ExposeError::InvalidRange {
            port: container.to_string(),
        });
    }
    Ok((
        (start..=end).map(|p| format!("{p}/{proto}")).collect(),
        had_host,
    ))
}

/// Signal names Docker accepts for STOPSIGNAL.
const SIGNALS: [&str; 31] = [
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM",
];

pub fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return n > 0 && n <= 64;
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if SIGNALS.contains(&name) || name == "WINCH" || name == "XCPU" || name == "XFSZ" {
        return true;
    }
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rest.is_empty()
            || rest
                .strip_prefix('+')
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n <= 15);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rest.is_empty()
            || rest
                .strip_prefix('-')
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n <= 14);
    }
    false
}

pub fn is_http_source(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://")
}

/// A Git source of ADD.
#[derive(Debug, PartialEq, Eq)]
pub struct GitRef {
    pub remote: String,
    pub reference: String,
    pub subdir: Option<String>,
    pub keep_git_dir: Option<bool>,
    pub checksum: Option<String>,
}

/// Why a Git source of ADD was refused. `reference` is the source as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitRefError {
    #[error("invalid git reference {reference:?}: use either a #fragment or ?query, not both")]
    FragmentAndQuery { reference: String },
    #[error("unknown git query parameter {name:?} in {reference:?}")]
    UnknownQueryParameter { name: String, reference: String },
}

/// Recognizes Git sources as BuildKit does: `git@host:repo`, `ssh://`, `git://`, and
/// `http(s)://…` whose path ends in `.git`, with `#ref[:subdir]` or `?ref=…&subdir=…`.
pub fn parse_git_ref(s: &str) -> Result<Option<GitRef>, GitRefError> {
    let lower = s.to_ascii_lowercase();
    let (base, fragment) = match s.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (s, None),
    };
    let (base, query) = match base.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (base, None),
    };
    let is_git = lower.starts_with("git@")
        || lower.starts_with("ssh://")
        || lower.starts_with("git://")
        || (is_http_source(s) && base.trim_end_matches('/').ends_with(".git"));
    if !is_git {
        return Ok(None);
    }
    let mut g = GitRef {
        remote: base.to_string(),
        reference: String::new(),
        subdir: None,
        keep_git_dir: None,
        checksum: None,
    };
    if let Some(f) = fragment {
        let (r, sub) = match f.split_once(':') {
            Some((r, d)) => (r, Some(d)),
            None => (f, None),
        };
        g.reference = r.to_string();
        g.subdir = sub.filter(|d| !d.is_empty()).map(str::to_string);
    }
    if let Some(q) = query {
        if fragment.is_some() {
            return Err(GitRefError::FragmentAndQuery {
                reference: s.to_string(),
            });
        }
        for kv in q.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match k {
                "ref" | "tag" | "branch" => g.reference = v.to_string(),
                "subdir" => g.subdir = Some(v.to_string()),
                "checksum" | "commit" => g.checksum = Some(v.to_string()),
                "keep-git-dir" => {
                    g.keep_git_dir = Some(matches!(v, "" | "true" | "1"));
                }
                "submodules" | "mtime" | "fetch-by-commit" => {}
                other => {
                    return Err(GitRefError::UnknownQueryParameter {
                        name: other.to_string(),
                        reference: s.to_string(),
                    });
                }
            }
        }
    }
    Ok(Some(g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_like_go() {
        for (i, o) in [
            ("", "."),
            ("/", "/"),
            ("a/b/../c", "a/c"),
            ("/../a", "/a"),
            ("../a", "../a"),
            ("a//b/./", "a/b"),
            ("/a/b/..", "/a"),
        ] {
            assert_eq!(clean(i), o, "{i}");
        }
    }

    #[test]
    fn destinations() {
        assert_eq!(dest_path("/app", "x"), "/app/x");
        assert_eq!(dest_path("/app", "x/"), "/app/x/");
        assert_eq!(dest_path("/app", "."), "/app/");
        assert_eq!(dest_path("/app", "/abs/../y"), "/y");
        assert_eq!(dest_path("/", "../../etc/"), "/etc/");
    }

    #[test]
    fn chmod_values() {
        assert!(matches!(parse_chmod("755"), Ok(ChmodValue::Octal(0o755))));
        assert!(matches!(
            parse_chmod("u=rwX,go=rX"),
            Ok(ChmodValue::Symbolic(_))
        ));
        assert!(matches!(parse_chmod("+x"), Ok(ChmodValue::Symbolic(_))));
        assert!(matches!(parse_chmod("g=u"), Ok(ChmodValue::Symbolic(_))));
        assert!(parse_chmod("17777").is_err());
        assert!(parse_chmod("999").is_err());
        assert!(parse_chmod("q+x").is_err());
        assert!(parse_chmod("u+z").is_err());
    }

    #[test]
    fn chmod_errors() {
        let e = parse_chmod("17777").err().unwrap();
        assert_eq!(
            e,
            ChmodError::NotOctal {
                value: "17777".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "invalid chmod parameter: '17777'. it should be octal string and between 0 and 07777"
        );
        let e = parse_chmod("u=rw,q+x").err().unwrap();
        assert_eq!(
            e,
            ChmodError::UnknownWho {
                value: "u=rw,q+x".into(),
                who: "q".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "invalid chmod parameter: 'u=rw,q+x': unknown who \"q\""
        );
        assert_eq!(
            parse_chmod("u+z").err().unwrap().to_string(),
            "invalid chmod parameter: 'u+z': unknown permission \"z\""
        );
        assert_eq!(
            parse_chmod("ux").err().unwrap(),
            ChmodError::MissingOperator { value: "ux".into() }
        );
    }

    #[test]
    fn expose_specs() {
        assert_eq!(parse_expose("80").unwrap(), (vec!["80/tcp".into()], false));
        assert_eq!(parse_expose("53/UDP").unwrap().0, vec!["53/udp"]);
        assert_eq!(parse_expose("8000-8002/tcp").unwrap().0.len(), 3);
        assert_eq!(
            parse_expose("127.0.0.1:80:8080").unwrap(),
            (vec!["8080/tcp".into()], true)
        );
        assert!(parse_expose("80/icmp").is_err());
        assert!(parse_expose("99999").is_err());
        assert!(parse_expose("90-80").is_err());
        let e = parse_expose("80/icmp").unwrap_err();
        assert_eq!(
            e,
            ExposeError::InvalidProto {
                proto: "icmp".into()
            }
        );
        assert_eq!(e.to_string(), "invalid proto: icmp");
        let e = parse_expose("1:90-80").unwrap_err();
        assert_eq!(
            e,
            ExposeError::InvalidRange {
                port: "90-80".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "invalid range specified for container port: 90-80"
        );
        assert_eq!(
            parse_expose("99999").unwrap_err().to_string(),
            "invalid containerPort: 99999"
        );
    }

    #[test]
    fn signals() {
        for s in ["SIGTERM", "sigkill", "9", "SIGRTMIN+3", "QUIT"] {
            assert!(valid_signal(s), "{s}");
        }
        for s in ["SIGFOO", "0", "100", "SIGRTMIN+99"] {
            assert!(!valid_signal(s), "{s}");
        }
    }

    #[test]
    fn git_refs() {
        let g = parse_git_ref("https://github.com/o/r.git#v1.0:sub")
            .unwrap()
            .unwrap();
        assert_eq!(g.remote, "https://github.com/o/r.git");
        assert_eq!(g.reference, "v1.0");
        assert_eq!(g.subdir.as_deref(), Some("sub"));
        assert!(parse_git_ref("git@github.com:o/r.git").unwrap().is_some());
        assert!(
            parse_git_ref("https://example.com/file.tar.gz")
                .unwrap()
                .is_none()
        );
        let q = parse_git_ref("https://h/r.git?ref=main&keep-git-dir=true")
            .unwrap()
            .unwrap();
        assert_eq!(q.reference, "main");
        assert_eq!(q.keep_git_dir, Some(true));
        let e = parse_git_ref("https://h/r.git?depth=1").unwrap_err();
        assert_eq!(
            e,
            GitRefError::UnknownQueryParameter {
                name: "depth".into(),
                reference: "https://h/r.git?depth=1".into(),
            }
        );
        assert_eq!(
            e.to_string(),
            "unknown git query parameter \"depth\" in \"https://h/r.git?depth=1\""
        );
        assert_eq!(
            parse_git_ref("https://h/r.git?ref=a#b")
                .unwrap_err()
                .to_string(),
            "invalid git reference \"https://h/r.git?ref=a#b\": use either a #fragment or ?query, not both"
        );
    }
}
