//! Image references normalized as Docker does: `alpine` → `docker.io/library/alpine:latest`.

use std::fmt;

/// A parsed, normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    /// Registry host (with port), e.g. `docker.io`, `localhost:5000`.
    pub domain: String,
    /// Repository path, e.g. `library/alpine`.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: {0:?} is empty")]
    Empty(String),
    #[error("invalid reference format: repository name {0:?} must be lowercase")]
    Uppercase(String),
    #[error("invalid reference format: {0:?}")]
    Invalid(String),
    #[error(
        "invalid reference format: repository name must not be more than {NAME_MAX} characters ({0} given)"
    )]
    NameTooLong(usize),
}

/// The longest repository name (`domain/path`, normalized), as in Docker's
/// distribution/reference (`NameTotalLengthMax`).
pub const NAME_MAX: usize = 255;

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*
    if c.is_empty() {
        return false;
    }
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    // [\w][\w.-]{0,127}
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

fn valid_digest(d: &str) -> bool {
    match d.split_once(':') {
        Some(("sha256", hex)) => {
            hex.len() == 64 && hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        }
        Some((alg, hex)) => {
            !alg.is_empty()
                && alg.bytes().all(|c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || matches!(c, b'+' | b'.' | b'_' | b'-')
                })
                && hex.len() >= 32
                && hex
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'=' || c == b'_' || c == b'-')
        }
        None => false,
    }
}

impl Reference {
    /// Parses and normalizes `s` (`name[:tag][@digest]`). A reference with neither tag nor
    /// digest gets the tag `latest`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty(s.into()));
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => {
                if !valid_digest(d) {
                    return Err(ReferenceError::Invalid(s.into()));
                }
                (n, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => {
                let t = &name[last_slash + i + 1..];
                if !valid_tag(t) {
                    return Err(ReferenceError::Invalid(s.into()));
                }
                (&name[..last_slash + i], Some(t.to_string()))
            }
            None => (name, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::Invalid(s.into()));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            "docker.io".to_string()
        } else {
            domain
        };
        let path = if domain == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(s.into()));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(ReferenceError::Invalid(s.into()));
        }
        if domain.is_empty() || domain.contains(|c: char| c.is_whitespace() || c == '@') {
            return Err(ReferenceError::Invalid(s.into()));
        }
        let name_len = domain.len() + 1 + path.len();
        if name_len > NAME_MAX {
            return Err(ReferenceError::NameTooLong(name_len));
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        Reference::parse(s)
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(n("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(n("alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(n("user/app"), "docker.io/user/app:latest");
        assert_eq!(n("localhost:5000/app:v1"), "localhost:5000/app:v1");
        assert_eq!(n("ghcr.io/o/r/x"), "ghcr.io/o/r/x:latest");
        assert_eq!(
            n("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            n(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            n(&format!("busybox:1@{d}")),
            format!("docker.io/library/busybox:1@{d}")
        );
    }

    #[test]
    fn rejects_bad_references() {
        assert!(n("").starts_with("ERR"));
        assert!(n("Alpine").contains("lowercase"));
        assert!(n("a b").starts_with("ERR"));
        assert!(n("busybox@sha256:zz").starts_with("ERR"));
        assert!(n("busybox:").starts_with("ERR"));
        assert!(n("-x").starts_with("ERR"));
    }

    #[test]
    fn repository_names_are_at_most_255_characters() {
        // docker.io/library/ is 18 characters of the normalized name.
        let fits = "a".repeat(NAME_MAX - 18);
        assert_eq!(n(&fits), format!("docker.io/library/{fits}:latest"));
        let long = "a".repeat(NAME_MAX - 17);
        assert_eq!(
            Reference::parse(&long),
            Err(ReferenceError::NameTooLong(NAME_MAX + 1))
        );
        assert!(n(&format!("{}:v1", "b".repeat(300))).contains("must not be more than 255"));
        assert!(n(&format!("ghcr.io/{}", "c".repeat(300))).starts_with("ERR"));
        // The tag does not count.
        assert!(!n(&format!("{fits}:{}", "t".repeat(128))).starts_with("ERR"));
    }
}
