//! SQLite metadata of a state root: images, tags, layers and their snapshots.
//!
//! The database runs in WAL mode with a busy timeout, and every change is one `IMMEDIATE`
//! transaction, so several strata processes can share a root. The schema is versioned with
//! `PRAGMA user_version`; [`MIGRATIONS`] are applied in order, each in its own transaction.
//! Reference counts are not stored: they are counted from the rows that reference a layer, so
//! they can never drift.

use crate::digest::Digest;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "metadata database is from a newer strata (schema {found}, this strata knows {known}): upgrade strata"
    )]
    TooNew { found: i64, known: i64 },
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    #[error("no such image: {0}")]
    NoSuchImage(String),
}

/// Schema versions, applied in order.
pub const MIGRATIONS: &[&str] = &[
    // 1: images, tags, layers, snapshots.
    "CREATE TABLE images (
        id TEXT PRIMARY KEY,
        config_digest TEXT NOT NULL,
        manifest_digest TEXT,
        created TEXT,
        size INTEGER NOT NULL,
        added_at INTEGER NOT NULL
     );
     CREATE TABLE tags (
        name TEXT PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES images(id)
     );
     CREATE INDEX tags_by_image ON tags(image_id);
     CREATE TABLE layers (
        diff_id TEXT PRIMARY KEY,
        blob_digest TEXT,
        media_type TEXT,
        size INTEGER NOT NULL,
        snapshot TEXT
     );
     CREATE TABLE image_layers (
        image_id TEXT NOT NULL REFERENCES images(id),
        position INTEGER NOT NULL,
        diff_id TEXT NOT NULL REFERENCES layers(diff_id),
        PRIMARY KEY (image_id, position)
     );
     CREATE INDEX image_layers_by_layer ON image_layers(diff_id);",
    // 2: snapshots committed from a container's writable layer (a RUN step's diff), before
    // they become layers.
    "CREATE TABLE snapshots (
        id TEXT PRIMARY KEY,
        created INTEGER NOT NULL
     );",
    // 3: content checksums of context files, so unchanged files are not read again.
    "CREATE TABLE file_checksums (
        root TEXT NOT NULL,
        path TEXT NOT NULL,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (root, path)
     );",
    // 4: the build cache: an op's cache key → its result, the layer chain of its filesystem
    // (JSON: diff IDs bottom first, null for a step that changed nothing).
    "CREATE TABLE build_cache (
        key TEXT PRIMARY KEY,
        layers TEXT NOT NULL,
        created INTEGER NOT NULL,
        last_used INTEGER NOT NULL
     );",
    // 5: compressed forms of layers already made, so exporting a layer again does no work.
    "CREATE TABLE layer_blobs (
        diff_id TEXT NOT NULL,
        compression TEXT NOT NULL,
        level INTEGER NOT NULL,
        digest TEXT NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (diff_id, compression, level)
     );",
    // 6: where a layer pulled lazily can be fetched from (its snapshot comes when needed).
    "CREATE TABLE layer_sources (
        diff_id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        repo TEXT NOT NULL,
        digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        size INTEGER NOT NULL
     );",
    // 7: the last layer each copy from the context made, keyed by the copy's definition and
    // context directory (not by the context's contents), so that copying again can link the
    // files that did not change.
    "CREATE TABLE copy_results (
        copy_key TEXT PRIMARY KEY,
        diff_id TEXT NOT NULL
     );",
    // 8: the manifest an image was pulled or loaded with (its blob is in the content store),
    // so that pushing the image unchanged sends the same bytes.
    "CREATE TABLE distributed_manifests (
        image_id TEXT PRIMARY KEY,
        digest TEXT NOT NULL,
        media_type TEXT NOT NULL
     );",
    // 9: multi-platform images: an index (its document is in the content store) names one
    // manifest per platform; a member's image is there once that platform was pulled, loaded
    // or built. A name is a tag of an image or of an index, never both.
    "CREATE TABLE indexes (
        digest TEXT PRIMARY KEY,
        media_type TEXT NOT NULL,
        added_at INTEGER NOT NULL
     );
     CREATE TABLE index_members (
        index_digest TEXT NOT NULL REFERENCES indexes(digest),
        position INTEGER NOT NULL,
        platform TEXT NOT NULL,
        manifest_digest TEXT NOT NULL,
        image_id TEXT,
        PRIMARY KEY (index_digest, position)
     );
     CREATE INDEX index_members_by_image ON index_members(image_id);
     CREATE TABLE index_tags (
        name TEXT PRIMARY KEY,
        index_digest TEXT NOT NULL REFERENCES indexes(digest)
     );",
    // 10: what each step's cache key was made of, at its last build in a scope (Dockerfile,
    // context, target), so a miss can say what changed. One row per step slot: the records
    // stay as many as the steps, however many builds run.
    "CREATE TABLE step_records (
        scope TEXT NOT NULL,
        slot TEXT NOT NULL,
        instruction TEXT NOT NULL,
        key TEXT NOT NULL,
        inputs TEXT NOT NULL,
        built_at INTEGER NOT NULL,
        PRIMARY KEY (scope, slot)
     );",
    // 11: a record of every build (as `docker buildx history` keeps them), the last N kept.
    "CREATE TABLE builds (
        id TEXT PRIMARY KEY,
        started INTEGER NOT NULL,
        finished INTEGER NOT NULL,
        status TEXT NOT NULL,
        context TEXT NOT NULL,
        dockerfile TEXT NOT NULL,
        target TEXT NOT NULL,
        platforms TEXT NOT NULL,
        executed INTEGER NOT NULL,
        cached INTEGER NOT NULL,
        image TEXT,
        detail TEXT NOT NULL
     );
     CREATE INDEX builds_by_time ON builds(started);",
    // 12: build cache entries that were pruned, when and why (so a miss can say `evicted`).
    "CREATE TABLE evictions (
        key TEXT PRIMARY KEY,
        at INTEGER NOT NULL,
        why TEXT NOT NULL
     );",
];

/// The columns of `builds` in [`BuildRecord`]'s order.
const BUILD_COLUMNS: &str = "id, started, finished, status, context, dockerfile, target, platforms, executed, cached, image, detail";

/// One build as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRecord {
    pub id: String,
    /// Unix milliseconds.
    pub started: i64,
    pub finished: i64,
    /// `completed`, `failed`.
    pub status: String,
    pub context: String,
    pub dockerfile: String,
    pub target: String,
    pub platforms: String,
    pub executed: u64,
    pub cached: u64,
    pub image: Option<String>,
    /// The steps (JSON): each with its time, cache result and reason, and on failure its
    /// output's last lines; the critical path.
    pub detail: String,
}

/// A step's last record in a scope: its key and what the key was made of (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    pub slot: String,
    pub instruction: String,
    pub key: Digest,
    pub inputs: String,
}

/// One platform's entry of a multi-platform image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexMember {
    /// `os/arch[/variant]`.
    pub platform: String,
    pub manifest_digest: Digest,
    /// The image, once this platform is in the store.
    pub image_id: Option<Digest>,
}

/// A multi-platform image: an image index and its members, in the index's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRecord {
    pub digest: Digest,
    pub media_type: String,
    pub members: Vec<IndexMember>,
    pub tags: Vec<String>,
}

/// Where a lazily pulled layer's blob lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSource {
    pub host: String,
    pub repo: String,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// One build cache entry: a step's key and the layer chain of its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub key: Digest,
    /// Bottom first; `None` for a step that changed nothing.
    pub layers: Vec<Option<Digest>>,
    pub created: i64,
    pub last_used: i64,
}

/// A `layers` row as read: diff ID, blob digest, media type, size, snapshot.
type LayerRow = (String, Option<String>, Option<String>, i64, Option<String>);

/// What identifies a file's content without reading it: if all of these are unchanged, so is
/// the content (for the metadata cache of context checksums).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

/// An image record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The image ID: the digest of its config.
    pub id: Digest,
    pub config_digest: Digest,
    pub manifest_digest: Option<Digest>,
    /// `created` from the config, as written there.
    pub created: Option<String>,
    /// Sum of the uncompressed layer sizes.
    pub size: u64,
    pub layers: Vec<Digest>,
    pub tags: Vec<String>,
}

/// A layer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRecord {
    pub diff_id: Digest,
    pub blob_digest: Option<Digest>,
    pub media_type: Option<String>,
    pub size: u64,
    /// The snapshot directory name, once unpacked.
    pub snapshot: Option<String>,
}

pub struct Metadata {
    conn: Connection,
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn digest(s: String) -> Result<Digest, MetadataError> {
    s.parse()
        .map_err(|e: crate::digest::DigestError| MetadataError::Corrupt(e.to_string()))
}

impl Metadata {
    /// Opens (creating and migrating if needed) `<root>/metadata.db`.
    pub fn open(root: &Path) -> Result<Metadata, MetadataError> {
        // Switching to WAL (and the first migration) can meet another process doing the same:
        // SQLite reports "busy" there without waiting, so retry for a while.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut delay = Duration::from_millis(5);
        loop {
            match Self::try_open(root) {
                Err(MetadataError::Sqlite(e))
                    if is_busy(&e) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(200));
                }
                r => return r,
            }
        }
    }

    fn try_open(root: &Path) -> Result<Metadata, MetadataError> {
        let conn = Connection::open(root.join("metadata.db"))?;
        conn.busy_timeout(Duration::from_secs(60))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut m = Metadata { conn };
        m.migrate()?;
        Ok(m)
    }

    fn migrate(&mut self) -> Result<(), MetadataError> {
        let known = MIGRATIONS.len() as i64;
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if version > known {
                return Err(MetadataError::TooNew {
                    found: version,
                    known,
                });
            }
            if version == known {
                return Ok(());
            }
            tx.execute_batch(MIGRATIONS[version as usize])?;
            tx.pragma_update(None, "user_version", version + 1)?;
            tx.commit()?;
        }
    }

    pub fn schema_version(&self) -> Result<i64, MetadataError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Records a layer (or updates what is known about it).
    pub fn put_layer(&mut self, l: &LayerRecord) -> Result<(), MetadataError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO layers (diff_id, blob_digest, media_type, size, snapshot)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(diff_id) DO UPDATE SET
                blob_digest = COALESCE(excluded.blob_digest, layers.blob_digest),
                media_type = COALESCE(excluded.media_type, layers.media_type),
                snapshot = COALESCE(excluded.snapshot, layers.snapshot)",
            params![
                l.diff_id.as_str(),
                l.blob_digest.as_ref().map(Digest::as_str),
                l.media_type,
                l.size as i64,
                l.snapshot
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn layer(&self, diff_id: &Digest) -> Result<Option<LayerRecord>, MetadataError> {
        let row = self
            .conn
            .query_row(
                "SELECT diff_id, blob_digest, media_type, size, snapshot FROM layers WHERE diff_id = ?1",
                [diff_id.as_str()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(d, b, m, s, snap)| {
            Ok(LayerRecord {
                diff_id: digest(d)?,
                blob_digest: b.map(digest).transpose()?,
                media_type: m,
                size: s.max(0) as u64,
                snapshot: snap,
            })
        })
        .transpose()
    }

    /// Every checksum recorded under `root`, by path, with the identity it was recorded for:
    /// one query for a whole context instead of one per file.
    pub fn cached_checksums(
        &self,
        root: &str,
    ) -> Result<std::collections::HashMap<String, (FileIdentity, Digest)>, MetadataError> {
        let mut st = self.conn.prepare_cached(
            "SELECT path, dev, ino, size, mtime_ns, ctime_ns, digest FROM file_checksums WHERE root = ?1",
        )?;
        let rows = st.query_map(params![root], |r| {
            Ok((
                r.get::<_, String>(0)?,
                FileIdentity {
                    dev: r.get::<_, i64>(1)? as u64,
                    ino: r.get::<_, i64>(2)? as u64,
                    size: r.get::<_, i64>(3)? as u64,
                    mtime_ns: r.get(4)?,
                    ctime_ns: r.get(5)?,
                },
                r.get::<_, String>(6)?,
            ))
        })?;
        let mut out = std::collections::HashMap::new();
        for row in rows {
            let (path, id, d) = row?;
            out.insert(path, (id, digest(d)?));
        }
        Ok(out)
    }

    /// Records content checksums (one transaction).
    pub fn put_checksums(
        &mut self,
        root: &str,
        sums: &[(String, FileIdentity, Digest)],
    ) -> Result<(), MetadataError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO file_checksums (root, path, dev, ino, size, mtime_ns, ctime_ns, digest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (path, f, d) in sums {
                st.execute(params![
                    root,
                    path,
                    f.dev as i64,
                    f.ino as i64,
                    f.size as i64,
                    f.mtime_ns,
                    f.ctime_ns,
                    d.as_str()
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The layer chain recorded for a build cache key, if every layer is still known.
    pub fn cached_result(
        &self,
        key: &Digest,
    ) -> Result<Option<Vec<Option<Digest>>>, MetadataError> {
        let s: Option<String> = self
            .conn
            .prepare_cached("SELECT layers FROM build_cache WHERE key = ?1")?
            .query_row([key.as_str()], |r| r.get(0))
            .optional()?;
        let Some(s) = s else { return Ok(None) };
        let v: Vec<Option<String>> =
            serde_json::from_str(&s).map_err(|e| MetadataError::Corrupt(e.to_string()))?;
        let mut out = Vec::with_capacity(v.len());
        for d in v {
            match d {
                None => out.push(None),
                Some(d) => {
                    let d = digest(d)?;
                    if self.layer(&d)?.is_none() {
                        return Ok(None); // its layer was pruned
                    }
                    out.push(Some(d));
                }
            }
        }
        Ok(Some(out))
    }

    /// When the result recorded under `key` was made (seconds since the epoch).
    pub fn cached_created(&self, key: &Digest) -> Result<Option<i64>, MetadataError> {
        Ok(self
            .conn
            .prepare_cached("SELECT created FROM build_cache WHERE key = ?1")?
            .query_row([key.as_str()], |r| r.get(0))
            .optional()?)
    }

    /// Records the result of a build step (its layers must have been recorded).
    pub fn put_cached_result(
        &mut self,
        key: &Digest,
        layers: &[Option<Digest>],
        now: i64,
    ) -> Result<(), MetadataError> {
        let v: Vec<Option<&str>> = layers
            .iter()
            .map(|d| d.as_ref().map(|d| d.as_str()))
            .collect();
        let s = serde_json::to_string(&v).map_err(|e| MetadataError::Corrupt(e.to_string()))?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO build_cache (key, layers, created, last_used) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT(key) DO UPDATE SET layers = excluded.layers, created = excluded.created, last_used = excluded.last_used",
            params![key.as_str(), s, now],
        )?;
        tx.execute("DELETE FROM evictions WHERE key = ?1", [key.as_str()])?;
        tx.commit()?;
        Ok(())
    }

    /// Marks cache entries as used now (for pruning by age).
    pub fn touch_cached(&mut self, keys: &[Digest], now: i64) -> Result<(), MetadataError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut st =
                tx.prepare_cached("UPDATE build_cache SET last_used = ?2 WHERE key = ?1")?;
            for k in keys {
                st.execute(params![k.as_str(), now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The compressed blob recorded for a layer in a compression and level.
    pub fn layer_blob(
        &self,
        diff_id: &Digest,
        compression: &str,
        level: i32,
    ) -> Result<Option<(Digest, u64)>, MetadataError> {
        let row: Option<(String, i64)> = self
            .conn
            .prepare_cached(
                "SELECT digest, size FROM layer_blobs WHERE diff_id = ?1 AND compression = ?2 AND level = ?3",
            )?
            .query_row(params![diff_id.as_str(), compression, level], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        row.map(|(d, n)| Ok((digest(d)?, n.max(0) as u64)))
            .transpose()
    }

    pub fn put_layer_blob(
        &mut self,
        diff_id: &Digest,
        compression: &str,
        level: i32,
        blob: &Digest,
        size: u64,
    ) -> Result<(), MetadataError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO layer_blobs (diff_id, compression, level, digest, size)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                diff_id.as_str(),
                compression,
                level,
                blob.as_str(),
                size as i64
            ],
        )?;
        Ok(())
    }

    /// Every compressed blob recorded for a layer.
    pub fn layer_blobs_of(&self, diff_id: &Digest) -> Result<Vec<Digest>, MetadataError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT digest FROM layer_blobs WHERE diff_id = ?1")?;
        let v: Vec<String> = st
            .query_map([diff_id.as_str()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        v.into_iter().map(digest).collect()
    }

    /// Records where a layer can be fetched from.
    pub fn put_layer_source(
        &mut self,
        diff_id: &Digest,
        s: &LayerSource,
    ) -> Result<(), MetadataError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO layer_sources (diff_id, host, repo, digest, media_type, size)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                diff_id.as_str(),
                s.host,
                s.repo,
                s.digest.as_str(),
                s.media_type,
                s.size as i64
            ],
        )?;
        Ok(())
    }

    /// Records `diff_id` as the latest layer made by the copy `key` names (the builder's digest
    /// of the copy's definition and context directory).
    pub fn put_copy_result(&mut self, key: &Digest, diff_id: &Digest) -> Result<(), MetadataError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO copy_results (copy_key, diff_id) VALUES (?1, ?2)",
            params![key.as_str(), diff_id.as_str()],
        )?;
        Ok(())
    }

    /// The latest layer made by the copy `key` names.
    pub fn copy_result(&self, key: &Digest) -> Result<Option<Digest>, MetadataError> {
        let row: Option<String> = self
            .conn
            .prepare_cached("SELECT diff_id FROM copy_results WHERE copy_key = ?1")?
            .query_row([key.as_str()], |r| r.get(0))
            .optional()?;
        row.map(digest).transpose()
    }

    /// Records the manifest an image was pulled or loaded with (the latest one wins).
    pub fn put_distributed_manifest(
        &mut self,
        image_id: &Digest,
        manifest: &Digest,
        media_type: &str,
    ) -> Result<(), MetadataError> {
        self.conn.execute(
            "INSERT INTO distributed_manifests (image_id, digest, media_type) VALUES (?1, ?2, ?3)
             ON CONFLICT(image_id) DO UPDATE SET digest = excluded.digest, media_type = excluded.media_type",
            params![image_id.as_str(), manifest.as_str(), media_type],
        )?;
        Ok(())
    }

    /// The manifest (digest, media type) an image was pulled or loaded with.
    pub fn distributed_manifest(
        &self,
        image_id: &Digest,
    ) -> Result<Option<(Digest, String)>, MetadataError> {
        let row: Option<(String, String)> = self
            .conn
            .prepare_cached(
                "SELECT digest, media_type FROM distributed_manifests WHERE image_id = ?1",
            )?
            .query_row([image_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        row.map(|(d, m)| Ok((digest(d)?, m))).transpose()
    }

    /// Where a layer can be fetched from, if it was pulled lazily.
    pub fn layer_source(&self, diff_id: &Digest) -> Result<Option<LayerSource>, MetadataError> {
        let row: Option<(String, String, String, String, i64)> = self
            .conn
            .prepare_cached(
                "SELECT host, repo, digest, media_type, size FROM layer_sources WHERE diff_id = ?1",
            )?
            .query_row([diff_id.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        row.map(|(host, repo, d, media_type, size)| {
            Ok(LayerSource {
                host,
                repo,
                digest: digest(d)?,
                media_type,
                size: size.max(0) as u64,
            })
        })
        .transpose()
    }

    /// Every build cache entry, least recently used first.
    pub fn cache_entries(&self) -> Result<Vec<CacheEntry>, MetadataError> {
        let mut st = self.conn.prepare(
            "SELECT key, layers, created, last_used FROM build_cache ORDER BY last_used, key",
        )?;
        let rows: Vec<(String, String, i64, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(k, l, c, u)| {
                let v: Vec<Option<String>> =
                    serde_json::from_str(&l).map_err(|e| MetadataError::Corrupt(e.to_string()))?;
                let layers = v
                    .into_iter()
                    .map(|d| d.map(digest).transpose())
                    .collect::<Result<_, _>>()?;
                Ok(CacheEntry {
                    key: digest(k)?,
                    layers,
                    created: c,
                    last_used: u,
                })
            })
            .collect()
    }

    /// Removes build cache entries.
    pub fn delete_cached(&mut self, keys: &[Digest]) -> Result<(), MetadataError> {
        self.evict(keys, 0, None)
    }

    /// Removes cache entries, recording (unless `why` is `None`) when and why, so that a
    /// later miss of those keys can say so. The most recent 100,000 evictions are kept.
    pub fn evict(
        &mut self,
        keys: &[Digest],
        now: i64,
        why: Option<&str>,
    ) -> Result<(), MetadataError> {
        if keys.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare_cached("DELETE FROM build_cache WHERE key = ?1")?;
            let mut ev = tx.prepare_cached(
                "INSERT INTO evictions (key, at, why) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET at = excluded.at, why = excluded.why",
            )?;
            for k in keys {
                st.execute([k.as_str()])?;
                if let Some(w) = why {
                    ev.execute(params![k.as_str(), now, w])?;
                }
            }
        }
        tx.execute(
            "DELETE FROM evictions WHERE key NOT IN
                (SELECT key FROM evictions ORDER BY at DESC LIMIT 100000)",
            [],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The bytes of every layer recorded (an upper bound of what the build cache alone keeps).
    pub fn total_layer_bytes(&self) -> Result<u64, MetadataError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COALESCE(SUM(size), 0) FROM layers", [], |r| {
                r.get(0)
            })?;
        Ok(n.max(0) as u64)
    }

    /// When and why the cache entry `key` was pruned, if it was (and was not made again).
    pub fn eviction(&self, key: &Digest) -> Result<Option<(i64, String)>, MetadataError> {
        Ok(self
            .conn
            .prepare_cached("SELECT at, why FROM evictions WHERE key = ?1")?
            .query_row([key.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Every layer record.
    pub fn layers(&self) -> Result<Vec<LayerRecord>, MetadataError> {
        let mut st = self.conn.prepare(
            "SELECT diff_id, blob_digest, media_type, size, snapshot FROM layers ORDER BY diff_id",
        )?;
        let rows: Vec<LayerRow> = st
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(d, b, m, size, snap)| {
                Ok(LayerRecord {
                    diff_id: digest(d)?,
                    blob_digest: b.map(digest).transpose()?,
                    media_type: m,
                    size: size.max(0) as u64,
                    snapshot: snap,
                })
            })
            .collect()
    }

    /// Removes a layer record unless an image uses it; returns whether it was removed.
    pub fn delete_unused_layer(&mut self, diff_id: &Digest) -> Result<bool, MetadataError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let used: i64 = tx.query_row(
            "SELECT COUNT(*) FROM image_layers WHERE diff_id = ?1",
            [diff_id.as_str()],
            |r| r.get(0),
        )?;
        if used > 0 {
            return Ok(false);
        }
        let n = tx.execute("DELETE FROM layers WHERE diff_id = ?1", [diff_id.as_str()])?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// How many images use a layer.
    pub fn layer_refcount(&self, diff_id: &Digest) -> Result<u64, MetadataError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(DISTINCT image_id) FROM image_layers WHERE diff_id = ?1",
            [diff_id.as_str()],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// Records an image with its layers (which must be recorded already) and tags. Each tag
    /// moves to this image, as `docker tag` does.
    pub fn put_image(&mut self, img: &ImageRecord, added_at: i64) -> Result<(), MetadataError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO images (id, config_digest, manifest_digest, created, size, added_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(id) DO UPDATE SET
                manifest_digest = COALESCE(excluded.manifest_digest, images.manifest_digest)",
            params![
                img.id.as_str(),
                img.config_digest.as_str(),
                img.manifest_digest.as_ref().map(Digest::as_str),
                img.created,
                img.size as i64,
                added_at
            ],
        )?;
        tx.execute(
            "DELETE FROM image_layers WHERE image_id = ?1",
            [img.id.as_str()],
        )?;
        for (i, l) in img.layers.iter().enumerate() {
            tx.execute(
                "INSERT INTO image_layers (image_id, position, diff_id) VALUES (?1, ?2, ?3)",
                params![img.id.as_str(), i as i64, l.as_str()],
            )?;
        }
        for t in &img.tags {
            tx.execute("DELETE FROM index_tags WHERE name = ?1", [t])?;
            tx.execute(
                "INSERT INTO tags (name, image_id) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
                params![t, img.id.as_str()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Points `tag` at `image_id`.
    pub fn tag(&mut self, tag: &str, image_id: &Digest) -> Result<(), MetadataError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: Option<String> = tx
            .query_row(
                "SELECT id FROM images WHERE id = ?1",
                [image_id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_none() {
            return Err(MetadataError::NoSuchImage(image_id.to_string()));
        }
        tx.execute("DELETE FROM index_tags WHERE name = ?1", [tag])?;
        tx.execute(
            "INSERT INTO tags (name, image_id) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
            params![tag, image_id.as_str()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Removes a tag; returns the image it named.
    pub fn untag(&mut self, tag: &str) -> Result<Option<Digest>, MetadataError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id: Option<String> = tx
            .query_row("SELECT image_id FROM tags WHERE name = ?1", [tag], |r| {
                r.get(0)
            })
            .optional()?;
        tx.execute("DELETE FROM tags WHERE name = ?1", [tag])?;
        tx.commit()?;
        id.map(digest).transpose()
    }

    /// Removes an image record and its layer references; returns the layers no image uses
    /// any more (for the caller to remove their blobs and snapshots).
    pub fn delete_image(&mut self, id: &Digest) -> Result<Vec<LayerRecord>, MetadataError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let layers: Vec<String> = {
            let mut st =
                tx.prepare("SELECT DISTINCT diff_id FROM image_layers WHERE image_id = ?1")?;
            st.query_map([id.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        tx.execute("DELETE FROM tags WHERE image_id = ?1", [id.as_str()])?;
        tx.execute(
            "DELETE FROM distributed_manifests WHERE image_id = ?1",
            [id.as_str()],
        )?;
        tx.execute(
            "DELETE FROM image_layers WHERE image_id = ?1",
            [id.as_str()],
        )?;
        let n = tx.execute("DELETE FROM images WHERE id = ?1", [id.as_str()])?;
        if n == 0 {
            return Err(MetadataError::NoSuchImage(id.to_string()));
        }
        let mut orphans = Vec::new();
        for d in layers {
            let used: i64 = tx.query_row(
                "SELECT COUNT(*) FROM image_layers WHERE diff_id = ?1",
                [&d],
                |r| r.get(0),
            )?;
            // Layers the build cache refers to stay (they are cache; `prune` frees them).
            let cached: i64 = tx.query_row(
                "SELECT COUNT(*) FROM build_cache WHERE instr(layers, ?1) > 0",
                [&d],
                |r| r.get(0),
            )?;
            if used == 0 && cached == 0 {
                let rec = tx.query_row(
                    "SELECT blob_digest, media_type, size, snapshot FROM layers WHERE diff_id = ?1",
                    [&d],
                    |r| {
                        Ok((
                            r.get::<_, Option<String>>(0)?,
                            r.get::<_, Option<String>>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, Option<String>>(3)?,
                        ))
                    },
                )?;
                tx.execute("DELETE FROM layers WHERE diff_id = ?1", [&d])?;
                orphans.push(LayerRecord {
                    diff_id: digest(d)?,
                    blob_digest: rec.0.map(digest).transpose()?,
                    media_type: rec.1,
                    size: rec.2.max(0) as u64,
                    snapshot: rec.3,
                });
            }
        }
        tx.commit()?;
        Ok(orphans)
    }

    fn image_row(&self, id: &str) -> Result<Option<ImageRecord>, MetadataError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, config_digest, manifest_digest, created, size FROM images WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                },
            )
            .optional()?;
        let Some((id, config, manifest, created, size)) = row else {
            return Ok(None);
        };
        let layers: Vec<String> = {
            let mut st = self.conn.prepare(
                "SELECT diff_id FROM image_layers WHERE image_id = ?1 ORDER BY position",
            )?;
            st.query_map([&id], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let tags: Vec<String> = {
            let mut st = self
                .conn
                .prepare("SELECT name FROM tags WHERE image_id = ?1 ORDER BY name")?;
            st.query_map([&id], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        Ok(Some(ImageRecord {
            id: digest(id)?,
            config_digest: digest(config)?,
            manifest_digest: manifest.map(digest).transpose()?,
            created,
            size: size.max(0) as u64,
            layers: layers.into_iter().map(digest).collect::<Result<_, _>>()?,
            tags,
        }))
    }

    /// Looks an image up by tag, full ID, or an unambiguous ID prefix (at least 4 hex digits),
    /// as `docker` does.
    pub fn resolve(&self, name: &str) -> Result<Option<ImageRecord>, MetadataError> {
        let by_tag: Option<String> = self
            .conn
            .query_row("SELECT image_id FROM tags WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(id) = by_tag {
            return self.image_row(&id);
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() < 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let mut st = self
            .conn
            .prepare("SELECT id FROM images WHERE id LIKE ?1 LIMIT 2")?;
        let ids: Vec<String> = st
            .query_map([format!("sha256:{}%", hex.to_ascii_lowercase())], |r| {
                r.get(0)
            })?
            .collect::<Result<_, _>>()?;
        match ids.as_slice() {
            [one] => self.image_row(one),
            _ => Ok(None),
        }
    }

    /// Records an index and its members (replacing what was known of it) and points its tags
    /// at it, taking them from any image they named.
    pub fn put_index(&mut self, idx: &IndexRecord, added_at: i64) -> Result<(), MetadataError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO indexes (digest, media_type, added_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(digest) DO NOTHING",
            params![idx.digest.as_str(), idx.media_type, added_at],
        )?;
        for (i, m) in idx.members.iter().enumerate() {
            // A member already in the store stays known when the index is recorded again.
            tx.execute(
                "INSERT INTO index_members (index_digest, position, platform, manifest_digest, image_id)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(index_digest, position) DO UPDATE SET
                    image_id = COALESCE(excluded.image_id, index_members.image_id)",
                params![
                    idx.digest.as_str(),
                    i as i64,
                    m.platform,
                    m.manifest_digest.as_str(),
                    m.image_id.as_ref().map(Digest::as_str)
                ],
            )?;
        }
        for t in &idx.tags {
            tx.execute("DELETE FROM tags WHERE name = ?1", [t])?;
            tx.execute(
                "INSERT INTO index_tags (name, index_digest) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET index_digest = excluded.index_digest",
                params![t, idx.digest.as_str()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records that member `position` of index `digest` is image `image_id`.
    pub fn set_index_member_image(
        &mut self,
        digest: &Digest,
        position: usize,
        image_id: &Digest,
    ) -> Result<(), MetadataError> {
        self.conn.execute(
            "UPDATE index_members SET image_id = ?3 WHERE index_digest = ?1 AND position = ?2",
            params![digest.as_str(), position as i64, image_id.as_str()],
        )?;
        Ok(())
    }

    fn index_row(&self, digest_s: &str) -> Result<Option<IndexRecord>, MetadataError> {
        let media_type: Option<String> = self
            .conn
            .query_row(
                "SELECT media_type FROM indexes WHERE digest = ?1",
                [digest_s],
                |r| r.get(0),
            )
            .optional()?;
        let Some(media_type) = media_type else {
            return Ok(None);
        };
        let rows: Vec<(String, String, Option<String>)> = self
            .conn
            .prepare_cached(
                "SELECT platform, manifest_digest, image_id FROM index_members
                 WHERE index_digest = ?1 ORDER BY position",
            )?
            .query_map([digest_s], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut members = Vec::new();
        for (platform, m, id) in rows {
            members.push(IndexMember {
                platform,
                manifest_digest: digest(m)?,
                image_id: id.map(digest).transpose()?,
            });
        }
        let tags: Vec<String> = self
            .conn
            .prepare_cached("SELECT name FROM index_tags WHERE index_digest = ?1 ORDER BY name")?
            .query_map([digest_s], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(Some(IndexRecord {
            digest: digest(digest_s.to_string())?,
            media_type,
            members,
            tags,
        }))
    }

    /// The index a tag names, or the index with that digest.
    pub fn resolve_index(&self, name: &str) -> Result<Option<IndexRecord>, MetadataError> {
        let by_tag: Option<String> = self
            .conn
            .query_row(
                "SELECT index_digest FROM index_tags WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        match by_tag {
            Some(d) => self.index_row(&d),
            None if name.starts_with("sha256:") => self.index_row(name),
            None => Ok(None),
        }
    }

    /// Every index, newest first.
    pub fn indexes(&self) -> Result<Vec<IndexRecord>, MetadataError> {
        let ds: Vec<String> = self
            .conn
            .prepare("SELECT digest FROM indexes ORDER BY added_at DESC, digest")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for d in ds {
            if let Some(r) = self.index_row(&d)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Removes a tag of an index; returns the index it named.
    pub fn untag_index(&mut self, name: &str) -> Result<Option<Digest>, MetadataError> {
        let d: Option<String> = self
            .conn
            .query_row(
                "SELECT index_digest FROM index_tags WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        self.conn
            .execute("DELETE FROM index_tags WHERE name = ?1", [name])?;
        d.map(digest).transpose()
    }

    /// Forgets an index (not its member images).
    pub fn delete_index(&mut self, d: &Digest) -> Result<(), MetadataError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM index_tags WHERE index_digest = ?1",
            [d.as_str()],
        )?;
        tx.execute(
            "DELETE FROM index_members WHERE index_digest = ?1",
            [d.as_str()],
        )?;
        tx.execute("DELETE FROM indexes WHERE digest = ?1", [d.as_str()])?;
        tx.commit()?;
        Ok(())
    }

    /// The images some index holds (kept as if tagged).
    pub fn images_in_indexes(&self) -> Result<BTreeSet<Digest>, MetadataError> {
        let ids: Vec<String> = self
            .conn
            .prepare("SELECT DISTINCT image_id FROM index_members WHERE image_id IS NOT NULL")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        ids.into_iter().map(digest).collect()
    }

    /// Records the steps of a build in `scope` (replacing each slot's last record).
    pub fn put_step_records(
        &mut self,
        scope: &str,
        records: &[StepRecord],
        now: i64,
    ) -> Result<(), MetadataError> {
        if records.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for r in records {
            tx.execute(
                "INSERT INTO step_records (scope, slot, instruction, key, inputs, built_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(scope, slot) DO UPDATE SET instruction = excluded.instruction,
                    key = excluded.key, inputs = excluded.inputs, built_at = excluded.built_at
                 WHERE step_records.key != excluded.key OR step_records.inputs != excluded.inputs",
                params![scope, r.slot, r.instruction, r.key.as_str(), r.inputs, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The key each slot of `scope` was last recorded with.
    pub fn step_keys(
        &self,
        scope: &str,
    ) -> Result<std::collections::HashMap<String, Digest>, MetadataError> {
        let rows: Vec<(String, String)> = self
            .conn
            .prepare_cached("SELECT slot, key FROM step_records WHERE scope = ?1")?
            .query_map([scope], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        rows.into_iter().map(|(s, k)| Ok((s, digest(k)?))).collect()
    }

    /// The last record of a step in `scope`: by its slot, else by its instruction's text.
    pub fn step_record(
        &self,
        scope: &str,
        slot: &str,
        instruction: &str,
    ) -> Result<Option<StepRecord>, MetadataError> {
        let row = |sql: &str,
                   v: &str|
         -> Result<Option<(String, String, String, String)>, MetadataError> {
            Ok(self
                .conn
                .prepare_cached(sql)?
                .query_row(params![scope, v], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?)
        };
        let found = match row(
            "SELECT slot, instruction, key, inputs FROM step_records WHERE scope = ?1 AND slot = ?2",
            slot,
        )? {
            Some(r) => Some(r),
            None => row(
                "SELECT slot, instruction, key, inputs FROM step_records
                 WHERE scope = ?1 AND instruction = ?2 ORDER BY built_at DESC LIMIT 1",
                instruction,
            )?,
        };
        found
            .map(|(slot, instruction, key, inputs)| {
                Ok(StepRecord {
                    slot,
                    instruction,
                    key: digest(key)?,
                    inputs,
                })
            })
            .transpose()
    }

    /// Records a build, then keeps only the `keep` newest.
    pub fn put_build(&mut self, b: &BuildRecord, keep: usize) -> Result<(), MetadataError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT OR REPLACE INTO builds (id, started, finished, status, context, dockerfile,
                target, platforms, executed, cached, image, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                b.id,
                b.started,
                b.finished,
                b.status,
                b.context,
                b.dockerfile,
                b.target,
                b.platforms,
                b.executed as i64,
                b.cached as i64,
                b.image,
                b.detail
            ],
        )?;
        tx.execute(
            "DELETE FROM builds WHERE id NOT IN
                (SELECT id FROM builds ORDER BY started DESC, id LIMIT ?1)",
            [keep as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The build records a query (`SELECT {BUILD_COLUMNS} …`) returns.
    fn build_rows(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<BuildRecord>, MetadataError> {
        let mut st = self.conn.prepare(sql)?;
        let rows = st.query_map(params, |r| {
            Ok(BuildRecord {
                id: r.get(0)?,
                started: r.get(1)?,
                finished: r.get(2)?,
                status: r.get(3)?,
                context: r.get(4)?,
                dockerfile: r.get(5)?,
                target: r.get(6)?,
                platforms: r.get(7)?,
                executed: r.get::<_, i64>(8)? as u64,
                cached: r.get::<_, i64>(9)? as u64,
                image: r.get(10)?,
                detail: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every recorded build, newest first.
    pub fn builds(&self) -> Result<Vec<BuildRecord>, MetadataError> {
        self.build_rows(
            &format!("SELECT {BUILD_COLUMNS} FROM builds ORDER BY started DESC, id"),
            [],
        )
    }

    /// The builds whose ID starts with `prefix`.
    pub fn builds_by_prefix(&self, prefix: &str) -> Result<Vec<BuildRecord>, MetadataError> {
        let like = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        self.build_rows(
            &format!(
                "SELECT {BUILD_COLUMNS} FROM builds WHERE id LIKE ?1 ESCAPE '\\'
                 ORDER BY started DESC, id"
            ),
            [&like],
        )
    }

    /// Forgets a build record; returns whether there was one.
    pub fn delete_build(&mut self, id: &str) -> Result<bool, MetadataError> {
        Ok(self
            .conn
            .execute("DELETE FROM builds WHERE id = ?1", [id])?
            > 0)
    }

    /// Every image, newest first.
    pub fn images(&self) -> Result<Vec<ImageRecord>, MetadataError> {
        let ids: Vec<String> = {
            let mut st = self
                .conn
                .prepare("SELECT id FROM images ORDER BY added_at DESC, id")?;
            st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for id in ids {
            if let Some(r) = self.image_row(&id)? {
                out.push(r);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(n: u8) -> LayerRecord {
        LayerRecord {
            diff_id: Digest::of(&[n]),
            blob_digest: None,
            media_type: None,
            size: 10 * n as u64,
            snapshot: Some(format!("snap{n}")),
        }
    }

    fn image(n: u8, layers: &[u8], tags: &[&str]) -> ImageRecord {
        let id = Digest::of(&[100 + n]);
        ImageRecord {
            config_digest: id.clone(),
            id,
            manifest_digest: None,
            created: None,
            size: 0,
            layers: layers.iter().map(|l| Digest::of(&[*l])).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn build_records_are_bounded_and_found_by_literal_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Metadata::open(dir.path()).unwrap();
        let rec = |id: &str, started: i64| BuildRecord {
            id: id.into(),
            started,
            finished: started + 1,
            status: "completed".into(),
            context: "/ctx".into(),
            dockerfile: "Dockerfile".into(),
            target: String::new(),
            platforms: "linux/amd64".into(),
            executed: 1,
            cached: 0,
            image: None,
            detail: "{}".into(),
        };
        for (i, id) in ["a_1", "ab1", "a%2", "b"].iter().enumerate() {
            m.put_build(&rec(id, i as i64), 3).unwrap();
        }
        let ids: Vec<String> = m.builds().unwrap().into_iter().map(|b| b.id).collect();
        assert_eq!(ids, ["b", "a%2", "ab1"], "the newest 3");
        // `_` and `%` in a prefix are themselves, not wildcards.
        assert_eq!(m.builds_by_prefix("a%").unwrap().len(), 1);
        assert!(m.builds_by_prefix("a_").unwrap().is_empty());
        assert!(m.delete_build("b").unwrap());
        assert!(!m.delete_build("b").unwrap());
    }

    #[test]
    fn images_tags_and_refcounts() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Metadata::open(dir.path()).unwrap();
        assert_eq!(m.schema_version().unwrap(), MIGRATIONS.len() as i64);
        for l in [1, 2, 3] {
            m.put_layer(&layer(l)).unwrap();
        }
        let a = image(1, &[1, 2], &["a:latest"]);
        let b = image(2, &[1, 3], &["b:latest", "b:v1"]);
        m.put_image(&a, 1).unwrap();
        m.put_image(&b, 2).unwrap();
        assert_eq!(m.layer_refcount(&Digest::of(&[1])).unwrap(), 2);
        assert_eq!(m.resolve("b:v1").unwrap().unwrap().id, b.id);
        assert_eq!(m.resolve(&a.id.hex()[..6]).unwrap().unwrap().id, a.id);
        assert_eq!(m.images().unwrap()[0].tags, vec!["b:latest", "b:v1"]);
        // Tags move; removing the last use of a layer reports it.
        m.tag("a:latest", &b.id).unwrap();
        assert!(
            m.resolve("a:latest")
                .unwrap()
                .unwrap()
                .tags
                .contains(&"a:latest".to_string())
        );
        let orphans = m.delete_image(&a.id).unwrap();
        assert_eq!(
            orphans
                .iter()
                .map(|l| l.diff_id.clone())
                .collect::<Vec<_>>(),
            vec![Digest::of(&[2])]
        );
        assert_eq!(m.layer_refcount(&Digest::of(&[1])).unwrap(), 1);
        assert!(matches!(
            m.tag("x", &a.id),
            Err(MetadataError::NoSuchImage(_))
        ));
        assert_eq!(m.untag("b:v1").unwrap(), Some(b.id.clone()));
        assert!(m.resolve("b:v1").unwrap().is_none());
    }

    #[test]
    fn a_copy_remembers_its_latest_layer() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Metadata::open(dir.path()).unwrap();
        let (key, other) = (Digest::of(b"copy"), Digest::of(b"another copy"));
        assert_eq!(m.copy_result(&key).unwrap(), None);
        m.put_copy_result(&key, &Digest::of(b"layer 1")).unwrap();
        m.put_copy_result(&key, &Digest::of(b"layer 2")).unwrap();
        assert_eq!(m.copy_result(&key).unwrap(), Some(Digest::of(b"layer 2")));
        assert_eq!(m.copy_result(&other).unwrap(), None);
    }

    #[test]
    fn reopening_keeps_everything_and_newer_schemas_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut m = Metadata::open(dir.path()).unwrap();
            m.put_layer(&layer(1)).unwrap();
            m.put_image(&image(1, &[1], &["x"]), 1).unwrap();
        }
        let m = Metadata::open(dir.path()).unwrap();
        assert!(m.resolve("x").unwrap().is_some());
        m.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(m);
        assert!(matches!(
            Metadata::open(dir.path()),
            Err(MetadataError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn two_connections_share_one_root() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Metadata::open(dir.path()).unwrap();
        let mut b = Metadata::open(dir.path()).unwrap();
        let handles: Vec<_> = (0..4u8)
            .map(|t| {
                let p = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    let mut m = Metadata::open(&p).unwrap();
                    for i in 0..25u8 {
                        let n = t * 25 + i;
                        m.put_layer(&layer(n)).unwrap();
                        m.put_image(&image(n, &[n], &[&format!("img:{n}")]), n as i64)
                            .unwrap();
                    }
                })
            })
            .collect();
        a.put_layer(&layer(200)).unwrap();
        b.put_layer(&layer(201)).unwrap();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(a.images().unwrap().len(), 100);
    }
}
