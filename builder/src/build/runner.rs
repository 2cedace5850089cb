//! Running one op of the build graph: RUN in a container, file operations in a private mount
//! namespace, merges by stacking layers. Each op's result is the layer chain of its filesystem,
//! recorded in the build cache under the op's key as soon as it exists.

use super::progress::Progress;
use crate::executor::fileop::{FileOpRequest, SourceFs, run_file_op};
use crate::executor::init::Runtime;
use crate::executor::spec::Network;
use crate::executor::{self, ContainerDir, RunRequest};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use strata_cache::Digest;
use strata_cache::images::ImageStore;
use strata_solver::graph::{
    BuildGraph, ExecOp, MountKind, NetworkMode, Op, OpId, OpKind, SecurityMode,
};
use strata_solver::scheduler::{Cancel, OpRunner};

/// The filesystem an op produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsResult {
    /// Layers, bottom first; `None` for a step that changed nothing.
    Layers(Vec<Option<Digest>>),
    /// The build context, read in place.
    Context(PathBuf),
}

pub struct Runner {
    pub graph: Arc<BuildGraph>,
    /// Fetches layers pulled lazily, when a step needs them.
    pub registry: Option<Arc<crate::registry::Client>>,
    pub root: PathBuf,
    pub keys: BTreeMap<OpId, Digest>,
    pub progress: Arc<Progress>,
    pub runtime: Runtime,
    /// The network of RUN steps that do not choose.
    pub network: NetworkMode,
    pub strata_exe: PathBuf,
    /// `.dockerignore` patterns of the context.
    pub ignore: Vec<String>,
    /// How many ops ran.
    pub executed: AtomicUsize,
    /// SOURCE_DATE_EPOCH: new layers' mtimes are clamped to it.
    pub epoch: Option<i64>,
}

fn layers(r: &FsResult, what: &str) -> Result<Vec<Option<Digest>>, String> {
    match r {
        FsResult::Layers(l) => Ok(l.clone()),
        FsResult::Context(_) => Err(format!("{what}: the build context is not a filesystem")),
    }
}

impl Runner {
    fn store(&self) -> Result<ImageStore, String> {
        ImageStore::open(&self.root).map_err(|e| format!("opening the store: {e}"))
    }

    /// Makes every layer of the inputs' chains local (layers pulled lazily are fetched now:
    /// a step is about to run on them).
    fn ensure_local(&self, store: &mut ImageStore, inputs: &[FsResult]) -> Result<(), String> {
        let ids: Vec<Digest> = inputs
            .iter()
            .filter_map(|r| match r {
                FsResult::Layers(l) => Some(l.iter().flatten().cloned()),
                FsResult::Context(_) => None,
            })
            .flatten()
            .filter(|d| !store.snapshot_dir(d).is_dir())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let client = self
            .registry
            .as_ref()
            .ok_or("layers pulled lazily need the registry client")?;
        crate::registry::ensure_layers(client, store, &ids, &mut |_| {})
            .map(|_| ())
            .map_err(|e| format!("fetching base layers: {e:#}"))
    }

    /// Snapshot directories of a chain, top first (as overlayfs wants them).
    fn dirs(&self, store: &ImageStore, chain: &[Option<Digest>]) -> Vec<PathBuf> {
        chain
            .iter()
            .rev()
            .flatten()
            .map(|d| store.snapshot_dir(d))
            .collect()
    }

    fn exec(
        &self,
        vertex: &str,
        e: &ExecOp,
        inputs: &[FsResult],
        cancel: &Cancel,
    ) -> Result<Vec<Option<Digest>>, String> {
        let base = layers(
            inputs.first().ok_or("RUN without a root filesystem")?,
            "RUN",
        )?;
        if let Some(m) = e.mounts.first() {
            let kind = match &m.kind {
                MountKind::Bind => "bind",
                MountKind::Cache { .. } => "cache",
                MountKind::Tmpfs { .. } => "tmpfs",
                MountKind::Secret { .. } => "secret",
                MountKind::Ssh { .. } => "ssh",
            };
            return Err(format!(
                "RUN --mount=type={kind} is not supported yet by strata (remove the mount or build with BuildKit)"
            ));
        }
        if e.security == SecurityMode::Insecure {
            return Err(
                "RUN --security=insecure needs the security.insecure entitlement, which strata does not grant yet"
                    .into(),
            );
        }
        let mut store = self.store()?;
        self.ensure_local(&mut store, inputs)?;
        let network = match (e.network, self.network) {
            (NetworkMode::None, _) | (NetworkMode::Default, NetworkMode::None) => Network::None,
            _ => Network::Host,
        };
        let mut env = e.env.clone();
        env.extend(e.proxy_env.iter().cloned());
        let req = RunRequest {
            lower: self.dirs(&store, &base),
            args: e.args.clone(),
            env,
            cwd: e.cwd.clone(),
            user: e.user.clone(),
            hostname: if e.hostname.is_empty() {
                "buildkitsandbox".into()
            } else {
                e.hostname.clone()
            },
            network,
            terminal: false,
            privileged: false,
            copy_layers: false,
        };
        let id = executor::random_id();
        let container = ContainerDir::create(&self.root.join("containers"), &id)
            .map_err(|e| format!("{e:#}"))?;
        executor::prepare_bundle(container.path(), &req).map_err(|e| format!("{e:#}"))?;
        let code = executor::run_bundle_logged(
            &self.strata_exe,
            container.path(),
            &id,
            &self.runtime,
            &mut |b| self.progress.log(vertex, b),
            &|| cancel.is_cancelled(),
        )
        .map_err(|e| format!("{e:#}"))?;
        if cancel.is_cancelled() {
            return Err("cancelled".into());
        }
        if code != 0 {
            return Err(format!(
                "process \"{}\" did not complete successfully: exit code: {code}",
                e.args.join(" ")
            ));
        }
        let layer = executor::commit_upper(container.path(), &mut store, self.epoch)
            .map_err(|e| format!("committing the layer: {e:#}"))?;
        let mut out = base;
        out.push(layer.map(|l| l.diff_id));
        Ok(out)
    }

    fn file(
        &self,
        base: bool,
        actions: &[strata_solver::graph::FileAction],
        inputs: &[FsResult],
    ) -> Result<Vec<Option<Digest>>, String> {
        let mut store = self.store()?;
        self.ensure_local(&mut store, inputs)?;
        let chain = if base {
            layers(
                inputs.first().ok_or("a file operation without its base")?,
                "COPY",
            )?
        } else {
            vec![]
        };
        let sources = inputs
            .iter()
            .map(|r| {
                Some(match r {
                    FsResult::Layers(l) => SourceFs::Layers(self.dirs(&store, l)),
                    FsResult::Context(p) => SourceFs::Context {
                        dir: p.clone(),
                        ignore: self.ignore.clone(),
                    },
                })
            })
            .collect();
        let req = FileOpRequest {
            lower: self.dirs(&store, &chain),
            sources,
            actions: actions.to_vec(),
        };
        let dir = ContainerDir::create(
            &self.root.join("containers"),
            &format!("f-{}", executor::random_id()),
        )
        .map_err(|e| format!("{e:#}"))?;
        run_file_op(&self.strata_exe, dir.path(), &req).map_err(|e| format!("{e:#}"))?;
        let layer = store
            .commit_layer(&dir.path().join("upper"), self.epoch)
            .map_err(|e| format!("committing the layer: {e}"))?;
        let mut out = chain;
        out.push(layer.map(|l| l.diff_id));
        Ok(out)
    }
}

impl OpRunner for Runner {
    type Output = FsResult;

    fn run(
        &self,
        id: OpId,
        op: &Op,
        inputs: Vec<FsResult>,
        cancel: &Cancel,
    ) -> Result<FsResult, String> {
        // Progress is keyed by definition digest, as BuildKit's vertexes are.
        let vertex = self.graph.digest(id).as_str().to_string();
        let inputs_v: Vec<String> = op
            .inputs
            .iter()
            .map(|i| self.graph.digest(*i).as_str().to_string())
            .collect();
        self.progress.start(&vertex, &op.name, &inputs_v);
        // Another build on this root may be running the same step: the first to lock its key
        // runs it, the others wait and take its result from the cache.
        let _key_lock = match self.keys.get(&id) {
            Some(key) if !op.ignore_cache => {
                let lock = lock_key(&self.root, key)?;
                let store = self.store()?;
                if let Ok(Some(chain)) = store.meta.cached_result(key)
                    && chain.iter().flatten().all(|d| store.layer_available(d))
                {
                    self.progress
                        .log(&vertex, b"done by another build on this root: reusing it\n");
                    self.progress.done(&vertex, None);
                    return Ok(FsResult::Layers(chain));
                }
                Some(lock)
            }
            _ => None,
        };
        let result = match &op.kind {
            OpKind::Exec(e) => self.exec(&vertex, e, &inputs, cancel),
            OpKind::File { base, actions } => self.file(*base, actions, &inputs),
            OpKind::Merge => {
                let mut out = Vec::new();
                for i in &inputs {
                    out.extend(layers(i, "merge")?);
                }
                Ok(out)
            }
            OpKind::Source(_) => Err("a source reached the runner".into()),
        };
        match result {
            Ok(chain) => {
                if let Some(key) = self.keys.get(&id) {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(0);
                    let mut store = self.store()?;
                    store
                        .meta
                        .put_cached_result(key, &chain, now)
                        .map_err(|e| format!("recording the cache entry: {e}"))?;
                }
                self.executed.fetch_add(1, Ordering::SeqCst);
                self.progress.done(&vertex, None);
                Ok(FsResult::Layers(chain))
            }
            Err(e) => {
                if e != "cancelled" {
                    self.progress.done(&vertex, Some(&e));
                } else {
                    self.progress.done(&vertex, Some("CANCELED"));
                }
                Err(e)
            }
        }
    }
}

/// An exclusive `flock` on `<root>/locks/<key>`, waited for.
fn lock_key(root: &std::path::Path, key: &Digest) -> Result<std::fs::File, String> {
    let dir = root.join("locks");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let p = dir.join(key.hex());
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| format!("opening {}: {e}", p.display()))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| format!("locking {}: {e}", p.display()))?;
    Ok(f)
}
