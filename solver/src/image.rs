//! Image configuration carried with the build graph: the runtime config a stage's metadata
//! instructions produce, and its history. Field names follow the Docker/OCI image config JSON,
//! with Docker's extensions (Healthcheck, OnBuild, Shell) that the OCI spec leaves out.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The image's HEALTHCHECK. Durations are nanoseconds; 0 means "not set".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// An empty JSON object, as Docker writes set members (`"80/tcp": {}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// The runtime configuration of an image (the `config` object of an image config).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
}

impl ImageConfig {
    /// The value of `key` in Env.
    pub fn env_get(&self, key: &str) -> Option<&str> {
        self.env.iter().find_map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            (k == key).then_some(v)
        })
    }

    /// Sets `key=value` in Env, replacing an existing entry in place.
    pub fn env_set(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        for e in &mut self.env {
            let k = e.split_once('=').map(|(k, _)| k).unwrap_or(e.as_str());
            if k == key {
                *e = entry;
                return;
            }
        }
        self.env.push(entry);
    }
}

/// One history entry, as BuildKit writes them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub created_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_set_replaces_in_place() {
        let mut c = ImageConfig::default();
        c.env_set("PATH", "/bin");
        c.env_set("A", "1");
        c.env_set("PATH", "/usr/bin");
        assert_eq!(c.env, vec!["PATH=/usr/bin", "A=1"]);
        assert_eq!(c.env_get("A"), Some("1"));
        assert_eq!(c.env_get("B"), None);
    }

    #[test]
    fn serializes_with_docker_names() {
        let mut c = ImageConfig::default();
        c.exposed_ports.insert("80/tcp".into(), Empty {});
        c.cmd = Some(vec!["sh".into()]);
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(j, r#"{"ExposedPorts":{"80/tcp":{}},"Cmd":["sh"]}"#);
    }
}
