//! Registry settings from the configuration file, in the shape of buildkitd.toml's:
//! `[registry."docker.io"] mirrors = ["mirror:5000"]`, `http = true`, `insecure = true`,
//! `ca = ["/path/ca.pem"]`.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Plain HTTP.
    #[serde(default)]
    pub http: bool,
    /// TLS without certificate verification.
    #[serde(default)]
    pub insecure: bool,
    /// Extra CA certificates (PEM).
    #[serde(default)]
    pub ca: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    pub hosts: BTreeMap<String, HostConfig>,
}

/// A `[registry]` table that is not registry settings.
#[derive(Debug, thiserror::Error)]
#[error("[registry] in the configuration file: {0}")]
pub struct ConfigError(#[from] toml::de::Error);

impl RegistryConfig {
    /// From the `registry` table of the configuration file.
    pub fn from_table(t: Option<&toml::Value>) -> Result<RegistryConfig, ConfigError> {
        let Some(t) = t else {
            return Ok(RegistryConfig::default());
        };
        let hosts: BTreeMap<String, HostConfig> = t.clone().try_into()?;
        Ok(RegistryConfig { hosts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildkitd_shape() {
        let t: toml::Table = toml::from_str(
            "[registry.\"docker.io\"]\nmirrors = [\"127.0.0.1:5000\"]\n[registry.\"r:5000\"]\nhttp = true\ninsecure = true\nca = [\"/ca.pem\"]\n",
        )
        .unwrap();
        let c = RegistryConfig::from_table(t.get("registry")).unwrap();
        assert_eq!(c.hosts["docker.io"].mirrors, vec!["127.0.0.1:5000"]);
        assert!(c.hosts["r:5000"].http && c.hosts["r:5000"].insecure);
        let bad: toml::Table = toml::from_str("[registry.\"x\"]\nmirror = 1\n").unwrap();
        assert!(RegistryConfig::from_table(bad.get("registry")).is_err());
    }
}
