//! Sources whose content decides their key, had before the keys are computed: files ADD
//! fetches by URL without a `--checksum` (fetched now; their digest is the key, and the step
//! uses the file), and Git refs (resolved to the commit that is the key and `--checksum`'s
//! check).

use super::progress::Progress;
use super::{BuildError, BuildRequest};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::PathBuf;
use strata_cache::Digest;
use strata_solver::graph::{BuildGraph, OpId, OpKind, SourceOp};

/// What was fetched or resolved.
pub struct Fetched {
    /// HTTP sources without a checksum: their content's digest.
    pub http_keys: BTreeMap<OpId, Digest>,
    /// … and the file, with its name, for the step that adds it.
    pub prefetched: BTreeMap<OpId, (PathBuf, crate::registry::fetch::Fetched, String)>,
    /// The directories holding those files (removed when dropped).
    pub guards: Vec<strata_executor::ContainerDir>,
    /// Git sources: the commit each ref names.
    pub git_commits: BTreeMap<OpId, String>,
}

/// Fetches and resolves the sources among `needed`.
pub fn prefetch(
    req: &BuildRequest,
    graph: &BuildGraph,
    needed: &[OpId],
    progress: &Progress,
) -> Result<Fetched, BuildError> {
    let mut out = Fetched {
        http_keys: BTreeMap::new(),
        prefetched: BTreeMap::new(),
        guards: Vec::new(),
        git_commits: BTreeMap::new(),
    };
    for id in needed {
        match &graph.op(*id).kind {
            OpKind::Source(SourceOp::Http {
                url,
                checksum: None,
                filename,
            }) => {
                let dir = strata_executor::ContainerDir::create(
                    &req.root.join("containers"),
                    &format!("url-{}", strata_executor::random_id()),
                )?;
                let file = dir.path().join("fetched");
                progress.start(url, url, &[]);
                let f = crate::registry::fetch::fetch(url, None, &file);
                progress.done(url, f.as_ref().err().map(|e| format!("{e:#}")).as_deref());
                let f = f.map_err(anyhow::Error::from)?;
                out.http_keys.insert(*id, f.digest.clone());
                out.prefetched.insert(*id, (file, f, filename.clone()));
                out.guards.push(dir);
            }
            OpKind::Source(SourceOp::Git {
                remote,
                reference,
                checksum,
                ..
            }) => {
                let commit = crate::registry::git::resolve(remote, reference)
                    .with_context(|| format!("ADD {remote}"))?;
                if let Some(c) = checksum
                    && !commit.starts_with(c.as_str())
                {
                    return Err(anyhow::anyhow!(
                        "ADD {remote}: checksum mismatch: --checksum says {c}, {} is {commit}",
                        if reference.is_empty() {
                            "HEAD"
                        } else {
                            reference
                        }
                    )
                    .into());
                }
                out.git_commits.insert(*id, commit);
            }
            _ => {}
        }
    }
    Ok(out)
}
