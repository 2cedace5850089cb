//! Running one op of the build graph: RUN in a container, file operations in a private mount
//! namespace, merges by stacking layers. Each op's result is the layer chain of its filesystem,
//! recorded in the build cache under the op's key as soon as it exists.

use super::progress::Progress;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use strata_cache::Digest;
use strata_cache::images::ImageStore;
use strata_executor::fileop::{FileOpRequest, SourceFs, run_file_op};
use strata_executor::init::Runtime;
use strata_executor::spec::Network;
use strata_executor::{self as executor, ContainerDir, RunMount, RunRequest};
use strata_solver::graph::{
    BuildGraph, ExecOp, MountKind, NetworkMode, Op, OpId, OpKind, SecurityMode,
};
use strata_solver::scheduler::{Cancel, OpError, OpRunner};

/// The filesystem an op produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsResult {
    /// Layers, bottom first; `None` for a step that changed nothing.
    Layers(Vec<Option<Digest>>),
    /// The build context, read in place, with the `.dockerignore` patterns its source carries.
    Context { dir: PathBuf, ignore: Vec<String> },
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
    /// How many ops ran.
    pub executed: AtomicUsize,
    /// SOURCE_DATE_EPOCH: new layers' mtimes are clamped to it.
    pub epoch: Option<i64>,
    /// `--secret`: id → where the value comes from.
    pub secrets: BTreeMap<String, SecretSource>,
    /// `--ssh`: id → agent socket.
    pub ssh: BTreeMap<String, PathBuf>,
    /// `--allow security.insecure`.
    pub allow_insecure: bool,
    /// Files already fetched for ADD URL (to compute their keys): op → (file, what, name).
    pub prefetched:
        std::sync::Mutex<BTreeMap<OpId, (PathBuf, crate::registry::fetch::Fetched, String)>>,
    /// Commits the Git sources resolved to.
    pub git_commits: BTreeMap<OpId, String>,
    /// Why each step that runs missed the cache (shown when it starts).
    pub misses: BTreeMap<OpId, String>,
}

fn layers(r: &FsResult, what: &str) -> Result<Vec<Option<Digest>>, String> {
    match r {
        FsResult::Layers(l) => Ok(l.clone()),
        FsResult::Context { .. } => Err(format!("{what}: the build context is not a filesystem")),
    }
}

pub use crate::bounded::SecretSource;

/// What a step holds while it runs: cache-mount locks, secret files (on tmpfs, outside the
/// state root, removed when the step ends).
#[derive(Default)]
struct Held {
    locks: Vec<std::fs::File>,
    dirs: Vec<PathBuf>,
    secrets: Option<PathBuf>,
    /// Secret environment variables: name → value file.
    env: Vec<(String, PathBuf)>,
}

impl Drop for Held {
    fn drop(&mut self) {
        for d in self.dirs.iter().chain(&self.secrets) {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A private directory for secrets: on /dev/shm (memory) when there is one.
fn secret_dir() -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let d = base.join(format!("strata-secrets-{}", &executor::random_id()[..16]));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&d)
        .map_err(|e| format!("creating {}: {e}", d.display()))?;
    Ok(d)
}

/// Moves the directory at `rel` inside `root` (resolved by the kernel inside it, a symlink at
/// the end followed inside it) to `to`, a path strata chose. The directory itself moves, never
/// a symlink to it, renamed from the directory it was found in.
fn move_out_of(root: &Path, rel: &str, to: &Path) -> Result<(), String> {
    let r = strata_cache::inroot::Root::open(root).map_err(|e| e.to_string())?;
    let Some((dir, name)) = r.resolve_last(rel, true).map_err(|e| e.to_string())? else {
        // The root itself.
        return std::fs::rename(root, to).map_err(|e| e.to_string());
    };
    if dir.kind_of(&name) != Some(rustix::fs::FileType::Directory) {
        return Err("not a directory".into());
    }
    rustix::fs::renameat(dir.fd(), &name, rustix::fs::CWD, to).map_err(|e| e.to_string())
}

impl Runner {
    /// The executor's mounts for a step's `--mount`s.
    // Long: one arm per RUN --mount type (bind, cache, tmpfs, secret, ssh).
    fn mounts(
        &self,
        e: &ExecOp,
        inputs: &[FsResult],
        store: &ImageStore,
        held: &mut Held,
    ) -> Result<Vec<RunMount>, String> {
        use std::os::unix::fs::PermissionsExt;
        let mut out = Vec::new();
        for m in &e.mounts {
            let src_input = m.input.and_then(|i| inputs.get(i));
            match &m.kind {
                MountKind::Bind => match src_input {
                    Some(FsResult::Context { dir, .. }) => {
                        // Resolved inside the context by the shim when it mounts; checked here
                        // for the message.
                        let found = strata_cache::inroot::Root::open(dir)
                            .and_then(|r| r.resolve(&m.source, true));
                        if let Err(e) = found {
                            return Err(if e.is_not_found() {
                                format!(
                                    "RUN --mount source {} is not in the build context",
                                    m.source
                                )
                            } else {
                                format!("RUN --mount source {}: {e}", m.source)
                            });
                        }
                        // Writable: an overlay on the context, its writes thrown away.
                        out.push(RunMount::Layers {
                            lower: vec![dir.clone()],
                            subpath: m.source.clone(),
                            dest: m.target.clone(),
                            readonly: m.readonly,
                        });
                    }
                    Some(FsResult::Layers(chain)) => out.push(RunMount::Layers {
                        lower: self.dirs(store, chain),
                        subpath: m.source.clone(),
                        dest: m.target.clone(),
                        readonly: m.readonly,
                    }),
                    None => return Err("a bind mount without its source".into()),
                },
                MountKind::Cache {
                    id,
                    sharing,
                    mode,
                    uid,
                    gid,
                } => {
                    let base = self.root.join("cachemounts");
                    let name = Digest::of(id.as_bytes()).hex().to_string();
                    strata_cache::root::private_dir_all(&base).map_err(|e| e.to_string())?;
                    let lock = std::fs::File::create(base.join(format!("{name}.lock")))
                        .map_err(|e| e.to_string())?;
                    use rustix::fs::{FlockOperation, flock};
                    let dir = match sharing {
                        strata_solver::graph::CacheSharing::Shared => base.join(&name),
                        strata_solver::graph::CacheSharing::Locked => {
                            flock(&lock, FlockOperation::LockExclusive)
                                .map_err(|e| e.to_string())?;
                            held.locks.push(lock);
                            base.join(&name)
                        }
                        strata_solver::graph::CacheSharing::Private => {
                            if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok() {
                                held.locks.push(lock);
                                base.join(&name)
                            } else {
                                // In use: this step gets a fresh one of its own.
                                let d =
                                    base.join(format!("{name}-{}", &executor::random_id()[..12]));
                                held.dirs.push(d.clone());
                                d
                            }
                        }
                    };
                    if !dir.is_dir() {
                        // A new cache starts empty, or (`from=`) with that filesystem's `source`.
                        let seeded = match src_input {
                            Some(FsResult::Context { dir: ctx, .. }) => {
                                let p = strata_cache::inroot::Root::open(ctx)
                                    .and_then(|r| r.resolve(&m.source, true))
                                    .map_err(|e| format!("seeding the cache mount: {e}"))?;
                                strata_executor::native::materialize(
                                    &[p.path().to_path_buf()],
                                    &dir,
                                )
                                .map_err(|e| format!("seeding the cache mount: {e:#}"))?;
                                true
                            }
                            Some(FsResult::Layers(chain)) => {
                                let tmp =
                                    base.join(format!("seed-{}", &executor::random_id()[..12]));
                                let r = strata_executor::native::materialize(
                                    &self.dirs(store, chain),
                                    &tmp,
                                )
                                .map_err(|e| format!("seeding the cache mount: {e:#}"))
                                .and_then(|_| {
                                    move_out_of(&tmp, &m.source, &dir).map_err(|e| {
                                        format!("seeding the cache mount from {}: {e}", m.source)
                                    })
                                });
                                let _ = std::fs::remove_dir_all(&tmp);
                                r?;
                                true
                            }
                            None => false,
                        };
                        if !seeded {
                            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                            std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid))
                                .map_err(|e| e.to_string())?;
                            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(*mode))
                                .map_err(|e| e.to_string())?;
                        }
                    }
                    out.push(RunMount::Bind {
                        source: dir,
                        dest: m.target.clone(),
                        readonly: m.readonly,
                    });
                }
                MountKind::Tmpfs { size } => out.push(RunMount::Tmpfs {
                    dest: m.target.clone(),
                    size: *size,
                }),
                MountKind::Secret {
                    id,
                    env: as_env,
                    required,
                    mode,
                    uid,
                    gid,
                } => {
                    let value = match self.secrets.get(id) {
                        Some(source) => crate::bounded::read_secret(id, source)?,
                        None if *required => {
                            return Err(format!(
                                "secret {id} is required: pass it with --secret id={id},src=FILE or --secret id={id},env=VAR"
                            ));
                        }
                        None => continue,
                    };
                    if held.secrets.is_none() {
                        held.secrets = Some(secret_dir()?);
                    }
                    let dir = held.secrets.clone().unwrap_or_default();
                    let file = dir.join(Digest::of(id.as_bytes()).hex());
                    std::fs::write(&file, &value).map_err(|e| e.to_string())?;
                    std::os::unix::fs::chown(&file, Some(*uid), Some(*gid))
                        .map_err(|e| e.to_string())?;
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode))
                        .map_err(|e| e.to_string())?;
                    if let Some(var) = as_env {
                        if self.runtime != strata_executor::init::Runtime::Builtin {
                            return Err(format!(
                                "RUN --mount=type=secret,id={id},env={var}: secrets as environment variables need the built-in runtime (an external runtime would need them in config.json)"
                            ));
                        }
                        held.env.push((var.clone(), file.clone()));
                    }
                    if !m.target.is_empty() {
                        out.push(RunMount::Bind {
                            source: file,
                            dest: m.target.clone(),
                            readonly: true,
                        });
                    }
                }
                MountKind::Ssh { id, required, .. } => match self.ssh.get(id) {
                    Some(sock) => out.push(RunMount::Bind {
                        source: sock.clone(),
                        dest: m.target.clone(),
                        readonly: false,
                    }),
                    None if *required => {
                        return Err(format!(
                            "ssh agent {id} is required: pass it with --ssh {id}=$SSH_AUTH_SOCK"
                        ));
                    }
                    None => {}
                },
            }
        }
        Ok(out)
    }

    /// ADD URL: the fetched file as a one-file layer (mode 0600, mtime from Last-Modified).
    fn http(
        &self,
        id: OpId,
        url: &str,
        checksum: Option<&str>,
        filename: &str,
    ) -> Result<Vec<Option<Digest>>, String> {
        use std::os::unix::fs::PermissionsExt;
        let dir = ContainerDir::create(
            &self.root.join("containers"),
            &format!("url-{}", executor::random_id()),
        )
        .map_err(|e| format!("{e:#}"))?;
        let upper = dir.path().join("upper");
        std::fs::create_dir(&upper).map_err(|e| e.to_string())?;
        if filename.is_empty() || filename == "." || filename == ".." || filename.contains('/') {
            return Err(format!("ADD {url}: {filename:?} is not a file name"));
        }
        let file = upper.join(filename);
        let pre = self
            .prefetched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let fetched = match pre {
            Some((path, f, _)) => {
                std::fs::copy(&path, &file).map_err(|e| e.to_string())?;
                f
            }
            None => {
                crate::registry::fetch::fetch(url, checksum, &file).map_err(|e| format!("{e:#}"))?
            }
        };
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        if let Some(t) = fetched
            .last_modified
            .as_deref()
            .and_then(crate::timefmt::parse_http_date)
        {
            let ts = rustix::fs::Timespec {
                tv_sec: t,
                tv_nsec: 0,
            };
            let _ = rustix::fs::utimensat(
                rustix::fs::CWD,
                &file,
                &rustix::fs::Timestamps {
                    last_access: ts,
                    last_modification: ts,
                },
                rustix::fs::AtFlags::empty(),
            );
        }
        let mut store = self.store()?;
        let layer = store
            .commit_layer(&upper, self.epoch)
            .map_err(|e| format!("committing the fetched file: {e}"))?;
        Ok(vec![layer.map(|l| l.diff_id)])
    }

    /// ADD of a Git repository: the tree at the resolved commit (or its `subdir`) as a layer.
    fn git(
        &self,
        id: OpId,
        remote: &str,
        subdir: Option<&str>,
        keep_git_dir: bool,
    ) -> Result<Vec<Option<Digest>>, String> {
        let commit = self
            .git_commits
            .get(&id)
            .ok_or("a Git source that was not resolved")?;
        let dir = ContainerDir::create(
            &self.root.join("containers"),
            &format!("git-{}", executor::random_id()),
        )
        .map_err(|e| format!("{e:#}"))?;
        let work = dir.path().join("checkout");
        crate::registry::git::checkout(remote, commit, &work, keep_git_dir)
            .map_err(|e| format!("{e:#}"))?;
        let upper = match subdir.filter(|s| !s.is_empty() && *s != "/") {
            Some(s) => {
                let p = dir.path().join("subdir");
                move_out_of(&work, s, &p)
                    .map_err(|e| format!("{remote}: {s} is not a directory at {commit}: {e}"))?;
                p
            }
            None => work.clone(),
        };
        let mut store = self.store()?;
        let layer = store
            .commit_layer(&upper, self.epoch)
            .map_err(|e| format!("committing the checkout: {e}"))?;
        Ok(vec![layer.map(|l| l.diff_id)])
    }

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
                FsResult::Context { .. } => None,
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
    ) -> Result<Vec<Option<Digest>>, OpError> {
        let base = layers(
            inputs.first().ok_or("RUN without a root filesystem")?,
            "RUN",
        )?;
        if e.security == SecurityMode::Insecure && !self.allow_insecure {
            return Err(
                "RUN --security=insecure needs the security.insecure entitlement: build with --allow security.insecure"
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
        let mut held = Held::default();
        let mounts = self.mounts(e, inputs, &store, &mut held)?;
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
            privileged: e.security == SecurityMode::Insecure,
            init: false,
            copy_layers: false,
            mounts,
            secret_env: held.env.clone(),
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
            return Err(OpError::Cancelled);
        }
        if code != 0 {
            if let Some(why) = executor::init::setup_error(container.path()) {
                return Err(format!("the step's container could not start: {why}").into());
            }
            return Err(OpError::Failed(format!(
                "process \"{}\" did not complete successfully: exit code: {code}",
                e.args.join(" ")
            )));
        }
        let layer = executor::commit_upper(container.path(), &mut store, self.epoch)
            .map_err(|e| format!("committing the layer: {e:#}"))?;
        let mut out = base;
        out.push(layer.map(|l| l.diff_id));
        Ok(out)
    }

    fn file(
        &self,
        vertex: &str,
        definition: &Digest,
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
                    FsResult::Context { dir, ignore } => SourceFs::Context {
                        dir: dir.clone(),
                        ignore: ignore.clone(),
                    },
                })
            })
            .collect();
        // A lone copy from the context links the files that did not change from the layer it
        // made last time (if that layer is still here). It is found by the copy's definition
        // and the context's directory: the same copy of another directory is another copy.
        let reuse_key = match actions {
            [strata_solver::graph::FileAction::Copy { input, .. }] => match inputs.get(*input) {
                Some(FsResult::Context { dir, .. }) => Some(Digest::of(
                    format!("{definition}\n{}", dir.display()).as_bytes(),
                )),
                _ => None,
            },
            _ => None,
        };
        let reuse = reuse_key.as_ref().and_then(|key| {
            store
                .meta
                .copy_result(key)
                .ok()
                .flatten()
                .map(|d| store.snapshot_dir(&d))
                .filter(|p| p.is_dir())
        });
        let req = FileOpRequest {
            lower: self.dirs(&store, &chain),
            sources,
            actions: actions.to_vec(),
            reuse,
            clamp: self.epoch,
        };
        let dir = ContainerDir::create(
            &self.root.join("containers"),
            &format!("f-{}", executor::random_id()),
        )
        .map_err(|e| format!("{e:#}"))?;
        let report =
            run_file_op(&self.strata_exe, dir.path(), &req).map_err(|e| format!("{e:#}"))?;
        if !report.is_empty() {
            self.progress.log(vertex, report.as_bytes());
        }
        let layer = store
            .commit_layer(&dir.path().join("upper"), self.epoch)
            .map_err(|e| format!("committing the layer: {e}"))?;
        if let (Some(key), Some(l)) = (&reuse_key, &layer) {
            store
                .meta
                .put_copy_result(key, &l.diff_id)
                .map_err(|e| format!("recording the copy's result: {e}"))?;
        }
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
    ) -> Result<FsResult, OpError> {
        self.run_op(id, op, inputs, cancel)
    }
}

impl Runner {
    /// One op, its failure as the message the step's report shows.
    fn run_op(
        &self,
        id: OpId,
        op: &Op,
        inputs: Vec<FsResult>,
        cancel: &Cancel,
    ) -> Result<FsResult, OpError> {
        // Progress is keyed by definition digest, as BuildKit's vertexes are.
        let vertex = self.graph.digest(id).as_str().to_string();
        let inputs_v: Vec<String> = op
            .inputs
            .iter()
            .map(|i| self.graph.digest(*i).as_str().to_string())
            .collect();
        self.progress.start(&vertex, &op.name, &inputs_v);
        if let Some(why) = self.misses.get(&id) {
            self.progress.miss(&vertex, why);
        }
        // Another build on this root may be running the same step: the first to lock its key
        // runs it, the others wait and take its result from the cache.
        let _key_lock = match self.keys.get(&id) {
            Some(key) if !op.ignore_cache => {
                let lock = lock_key(&self.root, key)?;
                let store = self.store()?;
                if let Ok(Some(chain)) = store.cached_chain(key) {
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
            OpKind::File { base, actions } => self
                .file(&vertex, self.graph.digest(id), *base, actions, &inputs)
                .map_err(OpError::from),
            OpKind::Merge => inputs
                .iter()
                .map(|i| layers(i, "merge"))
                .collect::<Result<Vec<_>, _>>()
                .map(|chains| chains.concat())
                .map_err(OpError::from),
            OpKind::Source(strata_solver::graph::SourceOp::Http {
                url,
                checksum,
                filename,
            }) => self
                .http(id, url, checksum.as_deref(), filename)
                .map_err(OpError::from),
            OpKind::Source(strata_solver::graph::SourceOp::Git {
                remote,
                subdir,
                keep_git_dir,
                ..
            }) => self
                .git(id, remote, subdir.as_deref(), *keep_git_dir)
                .map_err(OpError::from),
            OpKind::Source(_) => Err(OpError::from("a source reached the runner")),
        };
        match result {
            Ok(chain) => {
                if let Some(key) = self.keys.get(&id) {
                    let now = crate::timefmt::now();
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
                match &e {
                    OpError::Failed(why) => self.progress.done(&vertex, Some(why)),
                    OpError::Cancelled => self.progress.done(&vertex, Some("CANCELED")),
                }
                Err(e)
            }
        }
    }
}

/// An exclusive `flock` on `<root>/locks/<key>`, waited for.
fn lock_key(root: &std::path::Path, key: &Digest) -> Result<std::fs::File, String> {
    let dir = root.join("locks");
    strata_cache::root::private_dir_all(&dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
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
