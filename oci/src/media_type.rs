//! Media types of the OCI image spec and Docker's image manifest schema 2, and what each is.

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER_NONDISTRIBUTABLE: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
pub const OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const OCI_LAYER_NONDISTRIBUTABLE_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar";
pub const DOCKER_LAYER_FOREIGN_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// In-toto statements: BuildKit's provenance and SBOM attestations.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
/// The annotation BuildKit puts on an attestation manifest in an index…
pub const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// … whose value is this …
pub const REFERENCE_TYPE_ATTESTATION: &str = "attestation-manifest";
/// … and the manifest it is about.
pub const ANNOTATION_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// The name of an image in an OCI layout's index (containerd's, then the OCI one).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Accept header for manifests: every kind strata reads.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A layer's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

/// What a media type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Index,
    Manifest,
    /// A Docker schema 1 manifest (deprecated, unsupported by every current registry).
    Schema1,
    Config,
    /// A filesystem layer. Foreign (Docker) and non-distributable (OCI) layers may live only
    /// at their descriptor's `urls`.
    Layer {
        compression: LayerCompression,
        foreign: bool,
    },
    Other,
}

/// What `media_type` names.
pub fn kind(media_type: &str) -> Kind {
    use LayerCompression::*;
    let layer = |compression, foreign| Kind::Layer {
        compression,
        foreign,
    };
    match media_type {
        OCI_INDEX | DOCKER_MANIFEST_LIST => Kind::Index,
        OCI_MANIFEST | DOCKER_MANIFEST => Kind::Manifest,
        DOCKER_MANIFEST_V1 | DOCKER_MANIFEST_V1_SIGNED => Kind::Schema1,
        OCI_CONFIG | DOCKER_CONFIG => Kind::Config,
        OCI_LAYER | DOCKER_LAYER => layer(None, false),
        OCI_LAYER_GZIP | DOCKER_LAYER_GZIP => layer(Gzip, false),
        OCI_LAYER_ZSTD => layer(Zstd, false),
        OCI_LAYER_NONDISTRIBUTABLE | DOCKER_LAYER_FOREIGN => layer(None, true),
        OCI_LAYER_NONDISTRIBUTABLE_GZIP | DOCKER_LAYER_FOREIGN_GZIP => layer(Gzip, true),
        OCI_LAYER_NONDISTRIBUTABLE_ZSTD => layer(Zstd, true),
        _ => Kind::Other,
    }
}

/// Whether `media_type` is a filesystem layer.
pub fn is_layer(media_type: &str) -> bool {
    matches!(kind(media_type), Kind::Layer { .. })
}

/// The compression a layer media type names.
pub fn layer_compression(media_type: &str) -> Option<LayerCompression> {
    match kind(media_type) {
        Kind::Layer { compression, .. } => Some(compression),
        _ => None,
    }
}

/// The OCI media type of a distributable layer in `c`.
pub fn oci_layer(c: LayerCompression) -> &'static str {
    match c {
        LayerCompression::None => OCI_LAYER,
        LayerCompression::Gzip => OCI_LAYER_GZIP,
        LayerCompression::Zstd => OCI_LAYER_ZSTD,
    }
}

/// The Docker media type of a layer in `c` (Docker schema 2 has no zstd layers).
pub fn docker_layer(c: LayerCompression) -> Option<&'static str> {
    match c {
        LayerCompression::None => Some(DOCKER_LAYER),
        LayerCompression::Gzip => Some(DOCKER_LAYER_GZIP),
        LayerCompression::Zstd => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind(DOCKER_MANIFEST_LIST), Kind::Index);
        assert_eq!(kind(DOCKER_MANIFEST_V1_SIGNED), Kind::Schema1);
        assert_eq!(
            kind(DOCKER_LAYER_FOREIGN_GZIP),
            Kind::Layer {
                compression: LayerCompression::Gzip,
                foreign: true
            }
        );
        assert_eq!(
            layer_compression(OCI_LAYER_ZSTD),
            Some(LayerCompression::Zstd)
        );
        assert_eq!(layer_compression(IN_TOTO), None);
        assert_eq!(docker_layer(LayerCompression::Zstd), None);
        assert_eq!(oci_layer(LayerCompression::Gzip), OCI_LAYER_GZIP);
    }
}
