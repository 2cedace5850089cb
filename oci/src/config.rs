//! The image config (`application/vnd.oci.image.config.v1+json`, Docker's
//! `application/vnd.docker.container.image.v1+json`): the platform, the runtime config with
//! Docker's extensions (Healthcheck, OnBuild, Shell, ArgsEscaped) that the OCI spec leaves out,
//! the layers' diff IDs and the history.
//!
//! Decoding is lenient as Docker's Go structs are ([`crate::lenient`]): `null` is absent, Cmd,
//! Entrypoint and Shell may be one string. Fields not modelled here (`container_config`,
//! `docker_version`, `Hostname`, …) are kept in `extra`, so a decoded document encodes to the
//! same fields. A stored config is never encoded again: its digest is over its stored bytes.

use crate::digest::Digest;
use crate::lenient;
use crate::platform::Platform;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

type Extra = serde_json::Map<String, serde_json::Value>;

/// An empty JSON object, as Docker writes set members (`"80/tcp": {}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// The image's HEALTHCHECK. Durations are nanoseconds; 0 means "not set".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::vec"
    )]
    pub test: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "lenient::u64"
    )]
    pub interval: u64,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "lenient::u64"
    )]
    pub timeout: u64,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "lenient::u64"
    )]
    pub start_period: u64,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "lenient::u64"
    )]
    pub start_interval: u64,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "lenient::u64"
    )]
    pub retries: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn none_or_empty(v: &Option<Vec<String>>) -> bool {
    v.as_ref().is_none_or(Vec::is_empty)
}

/// The runtime configuration of an image (the `config` object of an image config). Encoded
/// as BuildKit encodes it: in its field order, empty fields left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub user: String,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::set"
    )]
    pub exposed_ports: BTreeMap<String, Empty>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::vec"
    )]
    pub env: Vec<String>,
    /// `None`: not set. `Some([])`: set to nothing (`ENTRYPOINT []`); encoded as not set,
    /// as BuildKit does.
    #[serde(
        default,
        skip_serializing_if = "none_or_empty",
        deserialize_with = "lenient::str_slice"
    )]
    pub entrypoint: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "none_or_empty",
        deserialize_with = "lenient::str_slice"
    )]
    pub cmd: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::set"
    )]
    pub volumes: BTreeMap<String, Empty>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub working_dir: String,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::string_map"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub stop_signal: String,
    #[serde(
        default,
        skip_serializing_if = "std::ops::Not::not",
        deserialize_with = "lenient::bool"
    )]
    pub args_escaped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::vec"
    )]
    pub on_build: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "none_or_empty",
        deserialize_with = "lenient::str_slice"
    )]
    pub shell: Option<Vec<String>>,
    /// Docker's fields this model does not name (`Hostname`, `Image`, `AttachStdin`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

impl RuntimeConfig {
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

/// One history entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_string"
    )]
    pub created: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub created_by: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub author: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub comment: String,
    #[serde(
        default,
        skip_serializing_if = "std::ops::Not::not",
        deserialize_with = "lenient::bool"
    )]
    pub empty_layer: bool,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `rootfs` of an image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub kind: String,
    #[serde(default, deserialize_with = "lenient::vec")]
    pub diff_ids: Vec<Digest>,
}

impl RootFs {
    pub fn layers(diff_ids: Vec<Digest>) -> RootFs {
        RootFs {
            kind: "layers".into(),
            diff_ids,
        }
    }
}

/// An image config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_string"
    )]
    pub created: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_string"
    )]
    pub author: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub architecture: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_string"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::vec"
    )]
    pub os_features: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_string"
    )]
    pub variant: Option<String>,
    /// The runtime config; `null` or absent is empty.
    #[serde(default, deserialize_with = "null_config")]
    pub config: RuntimeConfig,
    #[serde(default, deserialize_with = "null_rootfs")]
    pub rootfs: RootFs,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::vec"
    )]
    pub history: Vec<History>,
    /// Fields this model does not name (`container_config`, `docker_version`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

fn null_config<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RuntimeConfig, D::Error> {
    Ok(Option::<RuntimeConfig>::deserialize(d)?.unwrap_or_default())
}

fn null_rootfs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RootFs, D::Error> {
    Ok(Option::<RootFs>::deserialize(d)?.unwrap_or_default())
}

/// Why bytes are not an image config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the image config is not valid JSON for an image config: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the image config's rootfs is of type {0:?}, not \"layers\"")]
    RootFsType(String),
}

impl ImageConfig {
    /// Decodes a config as stored or sent.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, ConfigError> {
        let c: ImageConfig = serde_json::from_slice(bytes)?;
        if !c.rootfs.kind.is_empty() && c.rootfs.kind != "layers" {
            return Err(ConfigError::RootFsType(c.rootfs.kind));
        }
        Ok(c)
    }

    /// The platform the image is for (`linux` when an old config names no OS).
    pub fn platform(&self) -> Platform {
        let os = if self.os.is_empty() {
            "linux"
        } else {
            &self.os
        };
        let mut p = Platform::new(os, &self.architecture, self.variant.as_deref());
        p.os_version = self.os_version.clone();
        p.os_features = self.os_features.clone();
        p
    }

    /// How many history entries describe a layer (those not marked `empty_layer`).
    pub fn layer_history(&self) -> usize {
        self.history.iter().filter(|h| !h.empty_layer).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_are_absent() {
        let c = ImageConfig::parse(
            br#"{"architecture":"amd64","os":"linux","config":{"Hostname":"","Env":null,"Cmd":null,"Entrypoint":null,"OnBuild":null,"Volumes":null,"Labels":null,"ExposedPorts":null,"Shell":null,"Healthcheck":null,"User":null,"WorkingDir":""},"container_config":{"Env":null},"rootfs":{"type":"layers","diff_ids":null},"history":null}"#,
        )
        .unwrap();
        assert_eq!(
            c.config,
            RuntimeConfig {
                extra: [("Hostname".to_string(), serde_json::json!(""))]
                    .into_iter()
                    .collect(),
                ..Default::default()
            }
        );
        assert!(c.history.is_empty() && c.rootfs.diff_ids.is_empty());
        assert!(c.extra.contains_key("container_config"));
        assert!(
            ImageConfig::parse(
                br#"{"architecture":"amd64","os":"linux","config":null,"rootfs":null}"#
            )
            .is_ok()
        );
    }

    #[test]
    fn docker_str_slices_and_sets() {
        let c: RuntimeConfig = serde_json::from_str(
            r#"{"Cmd":"sh","Entrypoint":[],"ExposedPorts":{"80/tcp":{},"53/udp":null},"Labels":{"a":null,"b":"c"},"Healthcheck":{"Test":["CMD","true"],"Interval":-1,"Retries":3}}"#,
        )
        .unwrap();
        assert_eq!(c.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(c.entrypoint, Some(vec![]));
        assert_eq!(c.exposed_ports.len(), 2);
        assert_eq!(c.labels["a"], "");
        let h = c.healthcheck.as_ref().unwrap();
        assert_eq!((h.interval, h.retries), (0, 3));
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let src = r#"{"created":"2024-01-01T00:00:00Z","architecture":"arm64","os":"linux","variant":"v8","config":{"Env":["A=1"],"Hostname":"abc","StopTimeout":10},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created":"2024-01-01T00:00:00Z","created_by":"x","empty_layer":true,"x-extra":1}],"docker_version":"20.10.24","x-vendor":{"a":[1,2]}}"#;
        let c = ImageConfig::parse(src.as_bytes()).unwrap();
        let again: serde_json::Value = serde_json::to_value(&c).unwrap();
        let orig: serde_json::Value = serde_json::from_str(src).unwrap();
        assert_eq!(again, orig);
        assert_eq!(c.platform().to_string(), "linux/arm64");
    }

    #[test]
    fn encodes_as_buildkit_does() {
        let mut c = RuntimeConfig::default();
        c.exposed_ports.insert("80/tcp".into(), Empty {});
        c.cmd = Some(vec!["sh".into()]);
        c.entrypoint = Some(vec![]);
        c.env_set("PATH", "/bin");
        c.env_set("A", "1");
        c.env_set("PATH", "/usr/bin");
        assert_eq!(c.env_get("A"), Some("1"));
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(
            j,
            r#"{"ExposedPorts":{"80/tcp":{}},"Env":["PATH=/usr/bin","A=1"],"Cmd":["sh"]}"#
        );
    }

    #[test]
    fn refuses_what_is_not_a_config() {
        assert!(ImageConfig::parse(b"[]").is_err());
        assert!(ImageConfig::parse(br#"{"rootfs":{"type":"layered"}}"#).is_err());
        assert!(ImageConfig::parse(br#"{"config":{"Env":"A=1"}}"#).is_err());
    }
}
