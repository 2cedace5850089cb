//! Descriptors, image manifests and image indexes (OCI, and Docker schema 2's manifest and
//! manifest list, which have the same shape), decoded leniently and kept whole: fields not
//! modelled are kept in `extra`. Manifests are never encoded again once stored or sent; the
//! ones strata makes are encoded once and hashed as written.

use crate::digest::Digest;
use crate::lenient;
use crate::media_type::{self as mt, Kind};
use crate::platform::Platform;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

type Extra = serde_json::Map<String, serde_json::Value>;

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default, deserialize_with = "lenient::string")]
    pub media_type: String,
    pub digest: Digest,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub size: u64,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::vec"
    )]
    pub urls: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::string_map"
    )]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_string"
    )]
    pub artifact_type: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
            extra: Extra::new(),
        }
    }

    /// The size the descriptor states; `None` when it states none (0, or absent: a document
    /// or layer is never empty).
    pub fn stated_size(&self) -> Option<u64> {
        (self.size > 0).then_some(self.size)
    }

    /// Whether this entry of an index is a BuildKit attestation manifest (provenance, SBOM).
    pub fn is_attestation(&self) -> bool {
        self.annotations
            .get(mt::ANNOTATION_REFERENCE_TYPE)
            .is_some_and(|t| t == mt::REFERENCE_TYPE_ATTESTATION)
    }

    /// The image name an OCI layout's index gives this entry, if any.
    pub fn image_name(&self) -> Option<&str> {
        self.annotations
            .get(mt::ANNOTATION_IMAGE_NAME)
            .or_else(|| self.annotations.get(mt::ANNOTATION_REF_NAME))
            .map(String::as_str)
    }
}

fn two() -> u32 {
    2
}

/// An image manifest (OCI, or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default = "two")]
    pub schema_version: u32,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub media_type: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_string"
    )]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default, deserialize_with = "lenient::vec")]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::string_map"
    )]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Manifest {
    /// A manifest of `media_type` for a config and its layers.
    pub fn new(media_type: &str, config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: media_type.to_string(),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: BTreeMap::new(),
            extra: Extra::new(),
        }
    }

    /// Encoded once, as strata writes manifests: the bytes and their digest.
    pub fn encode(&self) -> (Vec<u8>, Digest) {
        encode(self)
    }
}

/// An image index (OCI), or a Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default = "two")]
    pub schema_version: u32,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub media_type: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_string"
    )]
    pub artifact_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::vec")]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::string_map"
    )]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Index {
    pub fn new(manifests: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: mt::OCI_INDEX.into(),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: BTreeMap::new(),
            extra: Extra::new(),
        }
    }

    pub fn encode(&self) -> (Vec<u8>, Digest) {
        encode(self)
    }

    /// The entry for a machine of platform `host`: the best ranked one ([`Platform::rank`]),
    /// the first of equals. Attestation manifests and `unknown/unknown` entries are never
    /// chosen; an entry without a platform only when it is the index's one entry.
    pub fn select(&self, host: &Platform) -> Result<&Descriptor, SelectError> {
        let candidates = || {
            self.manifests
                .iter()
                .filter(|d| !d.is_attestation())
                .filter(|d| matches!(mt::kind(&d.media_type), Kind::Index | Kind::Manifest))
        };
        let best = candidates()
            .filter_map(|d| {
                let p = d.platform.as_ref()?;
                if p.is_unknown() {
                    return None;
                }
                host.rank(p).map(|r| (r, d))
            })
            .min_by_key(|(r, _)| *r)
            .map(|(_, d)| d);
        if let Some(d) = best {
            return Ok(d);
        }
        let all: Vec<&Descriptor> = candidates().collect();
        if let [one] = all.as_slice()
            && one.platform.is_none()
        {
            return Ok(one);
        }
        let mut offered: Vec<String> = self
            .manifests
            .iter()
            .filter(|d| !d.is_attestation())
            .filter_map(|d| d.platform.as_ref())
            .filter(|p| !p.is_unknown())
            .map(|p| p.to_string())
            .collect();
        offered.dedup();
        Err(SelectError {
            want: host.to_string(),
            offered,
        })
    }
}

/// No entry of an index suits the platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", if offered.is_empty() {
    format!("no image for {want}: the index lists no image manifest (only attestations or other artifacts)")
} else {
    format!("no image for {want}: the index has {}; choose one with --platform", offered.join(", "))
})]
pub struct SelectError {
    pub want: String,
    pub offered: Vec<String>,
}

fn encode<T: Serialize>(v: &T) -> (Vec<u8>, Digest) {
    // Serializing these types cannot fail: string keys, no non-finite floats.
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let d = Digest::of(&bytes);
    (bytes, d)
}

/// A manifest or an index, as fetched or read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // short-lived, decoded one at a time
pub enum Document {
    Index(Index),
    Manifest(Manifest),
}

/// Why bytes are not an image manifest or index.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error(
        "a Docker schema 1 manifest ({0}): that format is deprecated and carries no image config; \
         push the image again with a current tool (e.g. `skopeo copy --format v2s2`) and use that"
    )]
    Schema1(String),
    #[error(
        "an OCI artifact, not a container image (artifact type {artifact_type}, config {config}): \
         it has no root filesystem to build on or run; fetch it with a tool for that artifact type (e.g. oras)"
    )]
    Artifact {
        artifact_type: String,
        config: String,
    },
    #[error("not an image manifest or index (media type {0:?})")]
    NotAManifest(String),
    #[error("the {what} is not valid JSON for one: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
}

/// The fields that tell the kinds of manifest apart.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<serde_json::Number>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    config: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    fs_layers: Option<serde::de::IgnoredAny>,
}

impl Document {
    /// The `mediaType` a document declares in itself, if it is JSON and has one.
    pub fn declared_media_type(bytes: &[u8]) -> Option<String> {
        serde_json::from_slice::<Probe>(bytes)
            .ok()?
            .media_type
            .filter(|m| !m.is_empty())
    }

    /// Decodes a manifest or an index. `media_type` is what the registry or the referring
    /// descriptor said, if anything; the document's own `mediaType` wins when it has one.
    pub fn parse(bytes: &[u8], media_type: Option<&str>) -> Result<Document, DocumentError> {
        let probe: Probe = serde_json::from_slice(bytes).map_err(|source| DocumentError::Json {
            what: "manifest",
            source,
        })?;
        let declared = probe
            .media_type
            .clone()
            .filter(|m| !m.is_empty())
            .or_else(|| media_type.map(str::to_string))
            .unwrap_or_default();
        let schema1 = probe.fs_layers.is_some()
            || probe.schema_version.as_ref().and_then(|n| n.as_u64()) == Some(1)
            || mt::kind(&declared) == Kind::Schema1;
        if schema1 {
            return Err(DocumentError::Schema1(if declared.is_empty() {
                mt::DOCKER_MANIFEST_V1.to_string()
            } else {
                declared
            }));
        }
        let is_index = match mt::kind(&declared) {
            Kind::Index => true,
            Kind::Manifest => false,
            _ if probe.manifests.is_some() => true,
            _ if probe.config.is_some() => false,
            _ => return Err(DocumentError::NotAManifest(declared)),
        };
        let json = |what| move |source| DocumentError::Json { what, source };
        Ok(if is_index {
            Document::Index(serde_json::from_slice(bytes).map_err(json("image index"))?)
        } else {
            Document::Manifest(serde_json::from_slice(bytes).map_err(json("image manifest"))?)
        })
    }

    /// Decodes a manifest that must be an image's (an index or an artifact is an error).
    pub fn parse_image_manifest(
        bytes: &[u8],
        media_type: Option<&str>,
    ) -> Result<Manifest, DocumentError> {
        match Document::parse(bytes, media_type)? {
            Document::Manifest(m) => {
                m.check_image()?;
                Ok(m)
            }
            Document::Index(i) => Err(DocumentError::NotAManifest(if i.media_type.is_empty() {
                mt::OCI_INDEX.into()
            } else {
                i.media_type
            })),
        }
    }
}

impl Manifest {
    /// Ok when this manifest is a container image's: its config is an image config (or, for
    /// old writers, has no media type) and it has no artifact type.
    pub fn check_image(&self) -> Result<(), DocumentError> {
        let config_ok =
            self.config.media_type.is_empty() || mt::kind(&self.config.media_type) == Kind::Config;
        let artifact = self
            .artifact_type
            .as_ref()
            .filter(|a| !a.is_empty() && a.as_str() != mt::OCI_CONFIG);
        if config_ok && artifact.is_none() {
            return Ok(());
        }
        Err(DocumentError::Artifact {
            artifact_type: artifact
                .cloned()
                .unwrap_or_else(|| self.config.media_type.clone()),
            config: self.config.media_type.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    #[test]
    fn tells_kinds_apart() {
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{}","size":1}},"layers":null}}"#,
            mt::DOCKER_CONFIG,
            d(1)
        );
        assert!(matches!(
            Document::parse(m.as_bytes(), None),
            Ok(Document::Manifest(_))
        ));
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{}","size":1}}]}}"#,
            mt::OCI_MANIFEST,
            d(2)
        );
        assert!(matches!(
            Document::parse(i.as_bytes(), None),
            Ok(Document::Index(_))
        ));
        let s1 = r#"{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[],"history":[]}"#;
        let e = Document::parse(s1.as_bytes(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("schema 1"), "{e}");
        let helm = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"{}","size":1}},"layers":[]}}"#,
            d(3)
        );
        let e = Document::parse_image_manifest(helm.as_bytes(), Some(mt::OCI_MANIFEST))
            .unwrap_err()
            .to_string();
        assert!(e.contains("artifact"), "{e}");
        assert!(Document::parse(b"{}", None).is_err());
        assert!(Document::parse(b"[1]", None).is_err());
    }

    #[test]
    fn keeps_unknown_fields() {
        let src = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":7,"x-c":true}},"layers":[{{"mediaType":"{}","digest":"{}","size":9,"urls":["https://example.com/l"],"annotations":{{"a":"b"}}}}],"annotations":{{"k":"v"}},"x-top":[1]}}"#,
            mt::OCI_MANIFEST,
            mt::OCI_CONFIG,
            d(1),
            mt::OCI_LAYER_NONDISTRIBUTABLE_GZIP,
            d(2)
        );
        let Document::Manifest(m) = Document::parse(src.as_bytes(), None).unwrap() else {
            panic!("a manifest")
        };
        assert_eq!(m.layers[0].urls, ["https://example.com/l"]);
        let again = serde_json::to_value(&m).unwrap();
        assert_eq!(
            again,
            serde_json::from_str::<serde_json::Value>(&src).unwrap()
        );
    }

    #[test]
    fn selects_the_host_platform() {
        let entry = |n: u8, p: Option<&str>, att: bool| {
            let mut e = Descriptor::new(mt::OCI_MANIFEST, d(n).parse().unwrap(), 1);
            e.platform = p.map(|p| {
                let (os, arch) = p.split_once('/').unwrap();
                let (arch, v) = arch
                    .split_once('/')
                    .map_or((arch, None), |(a, v)| (a, Some(v)));
                Platform {
                    os: os.into(),
                    architecture: arch.into(),
                    variant: v.map(Into::into),
                    os_version: None,
                    os_features: vec![],
                }
            });
            if att {
                e.annotations.insert(
                    mt::ANNOTATION_REFERENCE_TYPE.into(),
                    mt::REFERENCE_TYPE_ATTESTATION.into(),
                );
            }
            e
        };
        let idx = Index::new(vec![
            entry(1, Some("unknown/unknown"), true),
            entry(2, Some("linux/arm64/v8"), false),
            entry(3, Some("linux/386"), false),
            entry(4, Some("linux/x86_64"), false),
        ]);
        let amd64 = Platform::parse("linux/amd64").unwrap();
        assert_eq!(idx.select(&amd64).unwrap().digest.as_str(), d(4));
        let arm64 = Platform::parse("linux/aarch64").unwrap();
        assert_eq!(idx.select(&arm64).unwrap().digest.as_str(), d(2));
        let e = idx
            .select(&Platform::parse("linux/s390x").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("linux/s390x") && e.contains("linux/arm64/v8"),
            "{e}"
        );
        let only_att = Index::new(vec![entry(1, Some("unknown/unknown"), true)]);
        assert!(
            only_att
                .select(&amd64)
                .unwrap_err()
                .to_string()
                .contains("no image for linux/amd64")
        );
        let one = Index::new(vec![entry(5, None, false)]);
        assert_eq!(one.select(&amd64).unwrap().digest.as_str(), d(5));
    }
}
