//! The files of image archives that are not OCI documents: a `docker save` archive's
//! `manifest.json` and an OCI image layout's `oci-layout`.

use crate::lenient;
use crate::manifest::Descriptor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `oci-layout` file of an OCI image layout.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// One image of a `docker save` archive's `manifest.json` (a list of these).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArchiveEntry {
    /// The config's path in the archive.
    #[serde(default, deserialize_with = "lenient::string")]
    pub config: String,
    #[serde(default, deserialize_with = "lenient::vec")]
    pub repo_tags: Vec<String>,
    /// The layers' paths in the archive, bottom first.
    #[serde(default, deserialize_with = "lenient::vec")]
    pub layers: Vec<String>,
    /// Foreign layers, by diff ID: where they are (they may not be in the archive).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient_sources"
    )]
    pub layer_sources: BTreeMap<String, Descriptor>,
}

fn lenient_sources<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Descriptor>, D::Error> {
    Ok(Option::<BTreeMap<String, Descriptor>>::deserialize(d)?.unwrap_or_default())
}

/// Decodes a `docker save` archive's `manifest.json`.
pub fn parse_archive_manifest(bytes: &[u8]) -> Result<Vec<ArchiveEntry>, serde_json::Error> {
    Ok(
        Option::<Vec<ArchiveEntry>>::deserialize(&mut serde_json::Deserializer::from_slice(bytes))?
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_save_manifest() {
        let m = parse_archive_manifest(
            br#"[{"Config":"c.json","RepoTags":null,"Layers":["a/layer.tar"]},{"Config":"d.json","RepoTags":["busybox:latest"],"Layers":[],"LayerSources":null}]"#,
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert!(m[0].repo_tags.is_empty());
        assert_eq!(m[1].repo_tags, ["busybox:latest"]);
        assert!(parse_archive_manifest(b"{}").is_err());
    }
}
