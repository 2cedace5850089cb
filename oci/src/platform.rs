//! Platforms (`os/arch[/variant]`), normalized and matched as containerd does: `x86_64` is
//! `amd64`, `aarch64` and `arm64/v8` are `arm64`, `armhf` is `arm/v7`; a host runs its own
//! platform first, then the older variants of its architecture, then the 32-bit one
//! (`amd64` → `386`, `arm64` → `arm/v8`…`arm/v5`, `arm/v7` → `arm/v6`, `arm/v5`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A platform, as in an OCI descriptor or image config (`os.version` and `os.features` are
/// carried, never compared).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default, deserialize_with = "crate::lenient::string")]
    pub os: String,
    #[serde(default, deserialize_with = "crate::lenient::string")]
    pub architecture: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::lenient::opt_string"
    )]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::lenient::opt_string"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::lenient::vec"
    )]
    pub os_features: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/amd64")]
pub struct PlatformError(pub String);

impl Platform {
    /// A normalized platform.
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: variant.map(str::to_string),
            os_version: None,
            os_features: Vec::new(),
        }
        .normalized()
    }

    /// The platform of the machine strata runs on (the build platform).
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform::new("linux", arch, variant)
    }

    /// Parses `os/arch[/variant]` and normalizes it.
    pub fn parse(s: &str) -> Result<Platform, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || PlatformError(s.chars().take(100).collect());
        let (os, arch, variant) = match parts.as_slice() {
            [os, arch] => (*os, *arch, None),
            [os, arch, v] => (*os, *arch, Some(*v)),
            _ => return Err(bad()),
        };
        if os.is_empty() || arch.is_empty() || variant.is_some_and(str::is_empty) {
            return Err(bad());
        }
        Ok(Platform::new(os, arch, variant))
    }

    /// The same platform in containerd's normal form: lowercase, `amd64`, `arm64` without
    /// `v8`, `arm` with a variant, `386`, `amd64/v1` as `amd64`.
    pub fn normalized(mut self) -> Platform {
        self.os = self.os.to_ascii_lowercase();
        if self.os == "macos" {
            self.os = "darwin".into();
        }
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self.variant.take().map(|v| v.to_ascii_lowercase());
        let (arch, variant): (&str, Option<String>) = match (arch.as_str(), variant) {
            ("x86_64" | "x86-64" | "amd64", Some(v)) if v == "v1" => ("amd64", None),
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v),
            ("aarch64" | "arm64", Some(v)) if v == "v8" || v == "8" => ("arm64", None),
            ("aarch64" | "arm64", v) => ("arm64", v),
            ("armhf", _) => ("arm", Some("v7".into())),
            ("armel", _) => ("arm", Some("v6".into())),
            ("arm" | "armv7l" | "armv7", None) => ("arm", Some("v7".into())),
            ("armv6l" | "armv6", _) => ("arm", Some("v6".into())),
            ("armv5tel" | "armv5", _) => ("arm", Some("v5".into())),
            ("arm", Some(v)) => (
                "arm",
                Some(if v.starts_with('v') {
                    v
                } else {
                    format!("v{v}")
                }),
            ),
            ("i386" | "i486" | "i586" | "i686" | "386", v) => ("386", v),
            (a, v) => (a, v),
        };
        self.architecture = arch.to_string();
        self.variant = variant.filter(|v| !v.is_empty());
        self
    }

    /// `os/arch[/variant]` (normalized) equal, `os.version` and `os.features` ignored.
    pub fn same(&self, other: &Platform) -> bool {
        let (a, b) = (self.clone().normalized(), other.clone().normalized());
        a.os == b.os && a.architecture == b.architecture && a.variant == b.variant
    }

    /// The platforms a machine of this platform runs, most preferred first (containerd's
    /// `platforms.Only`).
    pub fn runs(&self) -> Vec<Platform> {
        let p = self.clone().normalized();
        let mut v = vec![p.clone()];
        let with = |arch: &str, variant: Option<String>| Platform {
            os: p.os.clone(),
            architecture: arch.to_string(),
            variant,
            os_version: None,
            os_features: Vec::new(),
        };
        let version = |variant: &Option<String>, default: u32| {
            variant
                .as_deref()
                .and_then(|s| s.trim_start_matches('v').parse::<u32>().ok())
                .unwrap_or(default)
        };
        match p.architecture.as_str() {
            "amd64" => {
                for n in (1..version(&p.variant, 1)).rev() {
                    v.push(with("amd64", (n > 1).then(|| format!("v{n}"))));
                }
                v.push(with("386", None));
            }
            "arm64" => {
                for n in (5..=8).rev() {
                    v.push(with("arm", Some(format!("v{n}"))));
                }
            }
            "arm" => {
                for n in (5..version(&p.variant, 7)).rev() {
                    v.push(with("arm", Some(format!("v{n}"))));
                }
            }
            _ => {}
        }
        v
    }

    /// How well `candidate` suits a machine of this platform: `Some(0)` is its own platform,
    /// higher is less preferred, `None` is a platform it cannot run.
    pub fn rank(&self, candidate: &Platform) -> Option<usize> {
        self.runs().iter().position(|p| p.same(candidate))
    }

    /// Whether this is the `unknown/unknown` platform BuildKit gives attestation manifests.
    pub fn is_unknown(&self) -> bool {
        self.os == "unknown" && self.architecture == "unknown"
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_as_containerd() {
        for (given, want) in [
            ("linux/x86_64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/aarch64/v8", "linux/arm64"),
            ("linux/arm64/v9", "linux/arm64/v9"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/i686", "linux/386"),
            ("Linux/AMD64", "linux/amd64"),
            ("windows/amd64", "windows/amd64"),
        ] {
            assert_eq!(Platform::parse(given).unwrap().to_string(), want, "{given}");
        }
        for bad in ["", "linux", "linux/", "/amd64", "linux/arm/", "a/b/c/d"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_run_their_own_platform_first_then_older_ones() {
        let p = |s: &str| Platform::parse(s).unwrap();
        let amd64 = p("linux/amd64");
        assert_eq!(amd64.rank(&p("linux/amd64")), Some(0));
        assert_eq!(amd64.rank(&p("linux/x86_64")), Some(0));
        assert_eq!(amd64.rank(&p("linux/386")), Some(1));
        assert_eq!(amd64.rank(&p("linux/arm64")), None);
        assert_eq!(amd64.rank(&p("linux/amd64/v2")), None);
        assert_eq!(amd64.rank(&p("windows/amd64")), None);
        let v3 = p("linux/amd64/v3");
        assert_eq!(v3.rank(&p("linux/amd64/v2")), Some(1));
        assert_eq!(v3.rank(&p("linux/amd64")), Some(2));
        let arm64 = p("linux/arm64");
        assert_eq!(arm64.rank(&p("linux/arm64/v8")), Some(0));
        assert_eq!(arm64.rank(&p("linux/arm/v7")), Some(2));
        let armv7 = p("linux/arm/v7");
        assert_eq!(armv7.rank(&p("linux/arm/v6")), Some(1));
        assert_eq!(armv7.rank(&p("linux/arm64")), None);
    }

    #[test]
    fn decodes_descriptor_platforms_leniently() {
        let p: Platform = serde_json::from_str(
            r#"{"architecture":"arm64","os":"linux","variant":null,"os.features":null,"os.version":"10.0"}"#,
        )
        .unwrap();
        assert_eq!(p.to_string(), "linux/arm64");
        assert_eq!(p.os_version.as_deref(), Some("10.0"));
        assert!(
            Platform {
                os: "unknown".into(),
                architecture: "unknown".into(),
                ..Platform::host()
            }
            .is_unknown()
        );
    }
}
