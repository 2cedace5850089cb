//! Multi-platform images in the store: an image index (its document kept exactly, in the
//! content store) whose members are images of their own, one per platform. A member is known
//! from the index before its image is here (a pull brings the platforms asked for); a build
//! for several platforms records an OCI index of the images it made.

use super::{Image, ImageError, ImageStore};
use crate::digest::Digest;
use crate::metadata::{IndexMember, IndexRecord};
use strata_oci::manifest::{Descriptor, Document, Index};
use strata_oci::media_type as mt;
use strata_oci::platform::Platform;

/// The most of an index document the store reads back.
const MAX_INDEX: u64 = 4 << 20;

/// An index as stored: its record and its document.
#[derive(Debug, Clone)]
pub struct StoredIndex {
    pub record: IndexRecord,
    pub bytes: Vec<u8>,
}

/// What a multi-platform image has for one platform.
#[derive(Debug, Clone)]
pub enum ForPlatform {
    /// The member's image is in the store.
    Image(Box<Image>),
    /// The index names a manifest for the platform, but its image is not here yet.
    NotHere {
        index: Digest,
        position: usize,
        manifest: Digest,
    },
    /// No member runs on the platform; these are the index's platforms.
    NoMatch(Vec<String>),
}

impl ImageStore {
    /// Records a multi-platform image made of stored images (platform, image ID): an OCI index
    /// of their manifests, in the order given, tagged `tags`. Returns the index digest.
    pub fn put_index(
        &mut self,
        members: &[(Platform, Digest)],
        tags: &[String],
        now: i64,
    ) -> Result<Digest, ImageError> {
        let mut descriptors = Vec::new();
        let mut rec_members = Vec::new();
        for (platform, id) in members {
            let img = self.image(id.as_str())?;
            let manifest = img
                .record
                .manifest_digest
                .clone()
                .ok_or_else(|| ImageError::NoSuchImage(format!("the manifest of {id}")))?;
            // The manifest the image has (the one it came with, or the one recorded for it).
            let media_type = match self.meta.distributed_manifest(id)? {
                Some((d, media_type)) if d == manifest => media_type,
                _ => mt::OCI_MANIFEST.to_string(),
            };
            let size = self.content.size(&manifest)?;
            let mut d = Descriptor::new(&media_type, manifest.clone(), size);
            d.platform = Some(platform.clone());
            descriptors.push(d);
            rec_members.push(IndexMember {
                platform: platform.to_string(),
                manifest_digest: manifest,
                image_id: Some(id.clone()),
            });
        }
        let (bytes, _) = Index::new(descriptors).encode();
        let digest = self.content.put(&bytes)?.digest;
        self.meta.put_index(
            &IndexRecord {
                digest: digest.clone(),
                media_type: mt::OCI_INDEX.into(),
                members: rec_members,
                tags: tags.to_vec(),
            },
            now,
        )?;
        Ok(digest)
    }

    /// Records an index as it was distributed (its bytes kept exactly), tagged `tags`;
    /// `here` names members already in the store (manifest digest, image ID).
    pub fn put_distributed_index(
        &mut self,
        bytes: &[u8],
        media_type: &str,
        here: &[(Digest, Digest)],
        tags: &[String],
        now: i64,
    ) -> Result<IndexRecord, ImageError> {
        let bad = |reason: String| ImageError::BadConfig {
            digest: Digest::of(bytes),
            reason,
        };
        let idx = match Document::parse(bytes, Some(media_type)).map_err(|e| bad(e.to_string()))? {
            Document::Index(i) => i,
            Document::Manifest(_) => return Err(bad("it is a manifest, not an index".into())),
        };
        let digest = self.content.put(bytes)?.digest;
        let members = idx
            .manifests
            .iter()
            .filter(|d| !d.is_attestation())
            .map(|d| IndexMember {
                platform: d
                    .platform
                    .as_ref()
                    .map(|p| p.clone().normalized().to_string())
                    .unwrap_or_default(),
                manifest_digest: d.digest.clone(),
                image_id: here
                    .iter()
                    .find(|(m, _)| *m == d.digest)
                    .map(|(_, i)| i.clone()),
            })
            .collect();
        let rec = IndexRecord {
            digest,
            media_type: if media_type.is_empty() {
                mt::OCI_INDEX.into()
            } else {
                media_type.to_string()
            },
            members,
            tags: tags.to_vec(),
        };
        self.meta.put_index(&rec, now)?;
        Ok(rec)
    }

    /// The index `name` names (a tag, `name:latest`, or its digest).
    pub fn index(&self, name: &str) -> Result<Option<StoredIndex>, ImageError> {
        let rec = match self.meta.resolve_index(name)? {
            Some(r) => Some(r),
            None if !name.contains(':') && !name.contains('@') => {
                self.meta.resolve_index(&format!("{name}:latest"))?
            }
            None => None,
        };
        let Some(record) = rec else {
            return Ok(None);
        };
        if self.content.size(&record.digest)? > MAX_INDEX {
            return Err(ImageError::BadConfig {
                digest: record.digest.clone(),
                reason: format!("the index is larger than {MAX_INDEX} bytes"),
            });
        }
        let bytes = self.content.read(&record.digest)?;
        Ok(Some(StoredIndex { record, bytes }))
    }

    /// What the multi-platform image `idx` has for `platform`: the best ranked member
    /// ([`Platform::rank`]), whether or not its image is here.
    pub fn index_member_for(
        &self,
        idx: &IndexRecord,
        platform: &Platform,
    ) -> Result<ForPlatform, ImageError> {
        let best = idx
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match Platform::parse(&m.platform) {
                Ok(p) => Some((platform.rank(&p)?, i, m)),
                // An entry that names no platform is taken only as the index's one entry (as
                // `Index::select` takes it).
                Err(_) if idx.members.len() == 1 => Some((usize::MAX, i, m)),
                Err(_) => None,
            })
            .min_by_key(|(rank, i, _)| (*rank, *i));
        Ok(match best {
            None => ForPlatform::NoMatch(idx.members.iter().map(|m| m.platform.clone()).collect()),
            Some((_, _, m)) if m.image_id.is_some() => {
                let id = m.image_id.as_ref().map(Digest::as_str).unwrap_or_default();
                ForPlatform::Image(Box::new(self.image(id)?))
            }
            Some((_, i, m)) => ForPlatform::NotHere {
                index: idx.digest.clone(),
                position: i,
                manifest: m.manifest_digest.clone(),
            },
        })
    }

    /// Removes the tag `name` of an index; an index left without tags goes, and with it each
    /// member image nothing else names. Returns what was done, as `rmi` says it.
    pub fn remove_index(
        &mut self,
        idx: &IndexRecord,
        name: &str,
    ) -> Result<Vec<String>, ImageError> {
        let mut out = Vec::new();
        let tag = if idx.tags.iter().any(|t| t == name) {
            name.to_string()
        } else {
            format!("{name}:latest")
        };
        if self.meta.untag_index(&tag)?.is_some() {
            out.push(format!("Untagged: {tag}"));
        }
        if idx.tags.iter().filter(|t| **t != tag).count() > 0 {
            return Ok(out);
        }
        self.meta.delete_index(&idx.digest)?;
        let _ = self.content.delete(&idx.digest);
        out.push(format!("Deleted: {}", idx.digest));
        let still = self.meta.images_in_indexes()?;
        for m in &idx.members {
            let Some(id) = &m.image_id else { continue };
            if still.contains(id) {
                continue;
            }
            match self.meta.resolve(id.as_str())? {
                Some(r) if r.tags.is_empty() => out.extend(self.remove(id.as_str(), false)?),
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::ImageConfig;

    fn image(store: &mut ImageStore, arch: &str) -> Digest {
        let cfg = ImageConfig {
            architecture: arch.into(),
            os: "linux".into(),
            ..ImageConfig::default()
        };
        store.put_image(&cfg, &[], 1).unwrap()
    }

    #[test]
    fn a_multi_platform_image_is_an_index_of_images() {
        let d = tempfile::tempdir().unwrap();
        let mut store = ImageStore::open(d.path()).unwrap();
        let amd = image(&mut store, "amd64");
        let arm = image(&mut store, "arm64");
        let p = |s: &str| Platform::parse(s).unwrap();
        let digest = store
            .put_index(
                &[
                    (p("linux/amd64"), amd.clone()),
                    (p("linux/arm64"), arm.clone()),
                ],
                &["app:latest".into()],
                2,
            )
            .unwrap();
        let idx = store.index("app").unwrap().expect("tagged");
        assert_eq!(idx.record.digest, digest);
        assert_eq!(Digest::of(&idx.bytes), digest);
        let Document::Index(doc) = Document::parse(&idx.bytes, None).unwrap() else {
            panic!("not an index")
        };
        assert_eq!(doc.manifests.len(), 2);
        match store
            .index_member_for(&idx.record, &p("linux/arm64/v8"))
            .unwrap()
        {
            ForPlatform::Image(i) => assert_eq!(i.record.id, arm),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            store
                .index_member_for(&idx.record, &p("linux/s390x"))
                .unwrap(),
            ForPlatform::NoMatch(_)
        ));
        // Members are kept by prune as if tagged; removing the tag removes them.
        let out = store.remove("app", false).unwrap();
        assert!(out.iter().any(|l| l == "Untagged: app:latest"), "{out:?}");
        assert!(store.index("app").unwrap().is_none());
        assert!(store.image(amd.as_str()).is_err());
        assert!(store.image(arm.as_str()).is_err());
    }

    #[test]
    fn a_distributed_index_knows_members_before_their_images() {
        let d = tempfile::tempdir().unwrap();
        let mut store = ImageStore::open(d.path()).unwrap();
        let amd = image(&mut store, "amd64");
        let amd_manifest = store
            .image(amd.as_str())
            .unwrap()
            .record
            .manifest_digest
            .unwrap();
        let other = Digest::of(b"arm64 manifest");
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{amd_manifest}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
            {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{other}","size":1,"platform":{{"os":"linux","architecture":"arm64"}}}}]}}"#
        );
        let rec = store
            .put_distributed_index(
                doc.as_bytes(),
                mt::OCI_INDEX,
                &[(amd_manifest.clone(), amd.clone())],
                &["base:1".into()],
                3,
            )
            .unwrap();
        let arm64 = Platform::parse("linux/arm64").unwrap();
        match store.index_member_for(&rec, &arm64).unwrap() {
            ForPlatform::NotHere {
                position, manifest, ..
            } => {
                assert_eq!((position, manifest), (1, other));
            }
            f => panic!("{f:?}"),
        }
        // The exact bytes are kept.
        assert_eq!(
            store.index("base:1").unwrap().unwrap().bytes,
            doc.as_bytes()
        );
        // Tagging an image with the name takes it from the index.
        store.meta.tag("base:1", &amd).unwrap();
        assert!(store.index("base:1").unwrap().is_none());
    }
}
