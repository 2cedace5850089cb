//! `strata build`: the frontend's graph, run by the solver's scheduler with the executor and
//! file operations, cached by content, and assembled into an image in the local store.
//!
//! 1. the Dockerfile is lowered with base images resolved in the local store ([`resolver`]);
//! 2. every op the target needs gets a cache key ([`keys`]) before anything runs: the digest
//!    of its definition, its inputs' keys, and the checksums of the context files it copies;
//! 3. ops whose key is in the build cache are done already, and the scheduler never visits
//!    what only they needed (a hit on a stage's last step unpacks and runs nothing before it);
//! 4. the rest runs ([`runner`]): RUN in a container, COPY/ADD/WORKDIR as file operations, each
//!    leaving one layer (or none when nothing changed), recorded under its key;
//! 5. the target's layers, config and history become an image ([`assemble`]).

pub mod assemble;
pub mod keys;
pub mod progress;
pub mod remote_cache;
pub mod resolver;
pub mod runner;

use crate::executor::init::Runtime;
use anyhow::Context as _;
use progress::Progress;
use runner::{FsResult, Runner};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use strata_cache::Digest;
use strata_cache::images::ImageStore;
use strata_frontend::lower::{BuildOptions, lower};
use strata_solver::graph::{NetworkMode, OpId, OpKind, SourceOp};
use strata_solver::scheduler::{Scheduler, SolveError};

/// Everything one build needs.
pub struct BuildRequest {
    /// The state root.
    pub root: PathBuf,
    /// The build context, read in place.
    pub context: PathBuf,
    /// The Dockerfile's name (for messages) and text.
    pub dockerfile_name: String,
    pub dockerfile: String,
    pub opts: BuildOptions,
    /// Tags for the image (normalized).
    pub tags: Vec<String>,
    /// The network of RUN steps that do not choose (`--network`; host by default).
    pub network: NetworkMode,
    pub runtime: Runtime,
    /// `--max-parallelism`: at most this many steps at once; `None`: the scheduler's default
    /// (one file operation per CPU, four RUN steps per CPU).
    pub max_parallelism: Option<usize>,
    /// The strata binary (re-executed for containers and file operations).
    pub strata_exe: PathBuf,
    /// `--cache-from`: caches to take step results from.
    pub cache_from: Vec<remote_cache::Location>,
    /// `--cache-to`: where the build's cache goes.
    /// (where, which steps, with the RUN cache mounts — a strata extension).
    pub cache_to: Vec<(remote_cache::Location, remote_cache::Mode, bool)>,
    /// For layers pulled lazily: fetched when a step runs on them.
    pub registry: Option<Arc<crate::registry::Client>>,
    /// `--secret`: id → source.
    pub secrets: BTreeMap<String, runner::SecretSource>,
    /// `--ssh`: id → agent socket.
    pub ssh: BTreeMap<String, PathBuf>,
    /// `--allow security.insecure`.
    pub allow_insecure: bool,
    /// `--allow network.host` (or `--network host`): RUN --network=host may run.
    pub allow_network_host: bool,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildResult {
    pub image_id: Digest,
    pub manifest_digest: Option<Digest>,
    /// Steps that ran, and steps answered by the cache.
    pub executed: usize,
    pub cached: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile has errors (already rendered, one per diagnostic).
    #[error("{0}")]
    Dockerfile(String),
    /// A step failed: the report names the step, its Dockerfile line and its last output.
    #[error("{report}")]
    Step { report: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

use crate::timefmt::now;

/// Runs one build; progress goes to `progress`, Dockerfile warnings to `warnings`.
// Long: the build's steps in order (lock, lower, epoch, prefetch, keys, hits, remote cache, run, cache export) over shared state.
pub fn build(
    req: &BuildRequest,
    progress: Arc<Progress>,
    warnings: &mut dyn std::io::Write,
) -> Result<BuildResult, BuildError> {
    let store = ImageStore::open(&req.root).map_err(anyhow::Error::from)?;
    // Held for the whole build: `prune` and `rmi` wait, so no layer goes while we use it.
    let _lock = strata_cache::lock::RootLock::shared(&req.root)
        .map_err(|e| anyhow::anyhow!("locking the state root: {e}"))?;
    crate::executor::clean_stale_containers(&req.root.join("containers"));
    store.content.clean_leftovers();
    // 1. Lower.
    let resolver = resolver::StoreResolver::new(&store);
    let (lowered, diags) = lower(&req.dockerfile, &req.opts, &resolver);
    let mut errors = String::new();
    for d in &diags {
        let text = d.render(&req.dockerfile_name, &req.dockerfile);
        if d.is_error() {
            errors.push_str(&format!("{text}\n"));
        } else {
            let _ = writeln!(warnings, "warning: {text}");
        }
    }
    let lowered = match lowered {
        Some(l) if errors.is_empty() => l,
        _ => return Err(BuildError::Dockerfile(errors.trim_end().to_string())),
    };
    // SOURCE_DATE_EPOCH (a build arg, or the environment through the CLI): new layers' mtimes
    // are clamped to it and it is the image's creation time.
    let epoch = match req.opts.build_args.get("SOURCE_DATE_EPOCH") {
        Some(v) if !v.is_empty() => Some(v.parse::<i64>().map_err(|_| {
            anyhow::anyhow!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds since 1970")
        })?),
        _ => None,
    };
    let target = lowered.target;
    let graph = Arc::new(lowered.graph.clone());
    let needed = graph.ancestors(target);
    check_entitlements(req, &graph, &needed)?;
    // 2. Keys.
    let mut meta =
        strata_cache::metadata::Metadata::open(&req.root).map_err(anyhow::Error::from)?;
    let mut contexts = keys::Contexts::new(&req.context, &req.opts.dockerignore);
    // Files ADD fetches by URL without a --checksum: fetched now, their content is the key.
    let mut http_keys = BTreeMap::new();
    let mut prefetched = BTreeMap::new();
    let mut guards = Vec::new();
    let mut git_commits: BTreeMap<OpId, String> = BTreeMap::new();
    for id in &needed {
        let op = graph.op(*id);
        if let OpKind::Source(SourceOp::Http {
            url,
            checksum: None,
            filename,
        }) = &op.kind
        {
            let dir = crate::executor::ContainerDir::create(
                &req.root.join("containers"),
                &format!("url-{}", crate::executor::random_id()),
            )?;
            let file = dir.path().join("fetched");
            progress.start(url, url, &[]);
            let f = crate::registry::fetch::fetch(url, None, &file);
            progress.done(url, f.as_ref().err().map(|e| format!("{e:#}")).as_deref());
            let f = f.map_err(anyhow::Error::from)?;
            http_keys.insert(*id, f.digest.clone());
            prefetched.insert(*id, (file, f, filename.clone()));
            guards.push(dir);
        }
        // Git sources: the ref resolved to a commit, which is the key (and --checksum's check).
        if let OpKind::Source(SourceOp::Git {
            remote,
            reference,
            checksum,
            ..
        }) = &op.kind
        {
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
            git_commits.insert(*id, commit);
        }
    }
    let keys = keys::compute(
        &graph,
        &needed,
        &mut keys::KeyEnv {
            store: &store,
            contexts: &mut contexts,
            meta: &mut meta,
            progress: &progress,
            epoch,
            http: &http_keys,
            git: &git_commits,
        },
    )?;
    // 3. What is done already: sources, and cache hits.
    let mut done: BTreeMap<OpId, FsResult> = BTreeMap::new();
    for id in &needed {
        let op = graph.op(*id);
        match &op.kind {
            OpKind::Source(SourceOp::Scratch) => {
                done.insert(*id, FsResult::Layers(vec![]));
            }
            OpKind::Source(SourceOp::Image { .. }) => {
                let img = resolver::find_image(&store, op)?;
                let layers = img.record.layers.iter().cloned().map(Some).collect();
                done.insert(*id, FsResult::Layers(layers));
            }
            OpKind::Source(SourceOp::Local { .. }) => {
                done.insert(*id, FsResult::Context(req.context.clone()));
            }
            // Fetched (or made from what was fetched for its key) when a step needs it.
            OpKind::Source(SourceOp::Http { .. }) => {}
            // Checked out when a step needs it.
            OpKind::Source(SourceOp::Git { .. }) => {}
            _ if op.ignore_cache => {}
            _ => {
                let key = &keys[id];
                if let Some(layers) = store.cached_chain(key).map_err(anyhow::Error::from)? {
                    done.insert(*id, FsResult::Layers(layers));
                }
            }
        }
    }
    // Imported caches: walking down from the target as the scheduler will, the first step
    // an imported cache has becomes local (only its layers are fetched) and ends the walk.
    if !req.cache_from.is_empty() {
        let mut imported = Vec::new();
        for loc in &req.cache_from {
            match remote_cache::import(loc) {
                Ok(i) => {
                    if let Err(e) = i.seed_cache_mounts(&store, &req.root) {
                        let _ = writeln!(warnings, "warning: seeding cache mounts failed: {e:#}");
                    }
                    imported.push(i)
                }
                Err(e) => {
                    let _ = writeln!(warnings, "warning: importing a cache failed: {e:#}");
                }
            }
        }
        let mut store_w = ImageStore::open(&req.root).map_err(anyhow::Error::from)?;
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![target];
        while let Some(id) = stack.pop() {
            if !seen.insert(id) || done.contains_key(&id) {
                continue;
            }
            let op = graph.op(id);
            if matches!(op.kind, OpKind::Source(_)) {
                continue;
            }
            if !op.ignore_cache {
                let key = &keys[&id];
                for imp in &imported {
                    if imp
                        .materialize(&mut store_w, key, now())
                        .with_context(|| format!("fetching the cached result of {}", op.name))?
                        && let Some(chain) = meta.cached_result(key).map_err(anyhow::Error::from)?
                    {
                        done.insert(id, FsResult::Layers(chain));
                        break;
                    }
                }
            }
            if !done.contains_key(&id) {
                stack.extend(op.inputs.iter().copied());
            }
        }
    }
    // What the build shows as cached: the hits the scheduler will stop at.
    let mut cached = 0;
    let mut seen = std::collections::BTreeSet::new();
    let mut stack = vec![target];
    let mut shown = Vec::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let op = graph.op(id);
        if done.contains_key(&id) {
            shown.push(id);
            continue;
        }
        stack.extend(op.inputs.iter().copied());
    }
    shown.sort();
    let digest_of = |id: OpId| graph.digest(id).as_str().to_string();
    for id in &shown {
        let op = graph.op(*id);
        let inputs: Vec<String> = op.inputs.iter().map(|i| digest_of(*i)).collect();
        match &op.kind {
            OpKind::Source(SourceOp::Local { .. }) => {}
            OpKind::Source(_) => {
                progress.start(&digest_of(*id), &op.name, &inputs);
                progress.done(&digest_of(*id), None);
            }
            _ => {
                cached += 1;
                progress.cached(&digest_of(*id), &op.name, &inputs);
            }
        }
    }
    // 4. Run what is left.
    let runner = Arc::new(Runner {
        graph: graph.clone(),
        registry: req.registry.clone(),
        root: req.root.clone(),
        keys: keys.clone(),
        progress: progress.clone(),
        runtime: req.runtime.clone(),
        network: req.network,
        strata_exe: req.strata_exe.clone(),
        ignore: req.opts.dockerignore.clone(),
        executed: Default::default(),
        epoch,
        secrets: req.secrets.clone(),
        ssh: req.ssh.clone(),
        allow_insecure: req.allow_insecure,
        prefetched: std::sync::Mutex::new(prefetched),
        git_commits: git_commits.clone(),
    });
    let scheduler = match req.max_parallelism {
        Some(n) => Scheduler::with_limit(n),
        None => Scheduler::default(),
    };
    let result = scheduler.run_from(graph.clone(), target, runner.clone(), done);
    let layers = match result {
        Ok(FsResult::Layers(l)) => l,
        Ok(FsResult::Context(_)) => {
            return Err(anyhow::anyhow!("the target is the build context, not a stage").into());
        }
        Err(SolveError::Op { id, name, message }) => {
            let digest = digest_of(id);
            let tail = progress.tail(&digest);
            return Err(BuildError::Step {
                report: failure_report(
                    &name,
                    graph.op(id).location.as_ref(),
                    &req.dockerfile,
                    &tail,
                    &message,
                ),
            });
        }
        Err(e) => return Err(anyhow::Error::from(e).into()),
    };
    // 5. The image.
    // The image's creation time is when its last step's result was made, so a rebuild that
    // is all cache hits gives the same image ID (as BuildKit's does).
    let created = epoch.unwrap_or_else(|| {
        keys.get(&target)
            .and_then(|k| meta.cached_created(k).ok().flatten())
            .unwrap_or_else(now)
    });
    let mut store = store;
    let (image_id, manifest_digest) =
        assemble::put_image(&mut store, &lowered, &layers, &req.tags, created)?;
    let used: Vec<Digest> = needed.iter().filter_map(|i| keys.get(i).cloned()).collect();
    let _ = meta.touch_cached(&used, now());
    for (loc, mode, with_mounts) in &req.cache_to {
        // The cache mounts the build's steps used, when asked.
        let mounts: Vec<(String, PathBuf)> = if *with_mounts {
            let mut v: Vec<(String, PathBuf)> = needed
                .iter()
                .filter_map(|i| match &graph.op(*i).kind {
                    OpKind::Exec(e) => Some(e.mounts.iter().filter_map(|m| {
                        match &m.kind {
                            strata_solver::graph::MountKind::Cache { id, .. } => Some((
                                id.clone(),
                                req.root
                                    .join("cachemounts")
                                    .join(Digest::of(id.as_bytes()).hex()),
                            )),
                            _ => None,
                        }
                    })),
                    _ => None,
                })
                .flatten()
                .collect();
            v.sort();
            v.dedup();
            v
        } else {
            vec![]
        };
        let keys_out: Vec<Digest> = match mode {
            remote_cache::Mode::Max => used.clone(),
            remote_cache::Mode::Min => {
                // The final image's lineage: each step's root filesystem input, down to the base.
                let mut v = Vec::new();
                let mut id = target;
                loop {
                    let op = graph.op(id);
                    match &op.kind {
                        OpKind::Exec(_) | OpKind::File { base: true, .. } => {
                            v.extend(keys.get(&id).cloned());
                            match op.inputs.first() {
                                Some(i) => id = *i,
                                None => break,
                            }
                        }
                        _ => break,
                    }
                }
                v
            }
        };
        let n = remote_cache::export(&mut store, &keys_out, loc, &mounts)
            .context("exporting the cache")?;
        let _ = writeln!(warnings, "exported {n} cache entries");
    }
    let executed = runner.executed.load(std::sync::atomic::Ordering::SeqCst);
    Ok(BuildResult {
        image_id,
        manifest_digest,
        executed,
        cached,
    })
}

/// Every step the target needs, cached or not, may only ask for the entitlements the build
/// was given (BuildKit checks them when it loads the graph, before anything runs).
fn check_entitlements(
    req: &BuildRequest,
    graph: &strata_solver::graph::BuildGraph,
    needed: &[OpId],
) -> Result<(), BuildError> {
    use strata_solver::graph::SecurityMode;
    for id in needed {
        let op = graph.op(*id);
        let OpKind::Exec(e) = &op.kind else {
            continue;
        };
        let missing = if e.network == NetworkMode::Host && !req.allow_network_host {
            Some(("network.host", "RUN --network=host"))
        } else if e.security == SecurityMode::Insecure && !req.allow_insecure {
            Some(("security.insecure", "RUN --security=insecure"))
        } else {
            None
        };
        if let Some((entitlement, what)) = missing {
            return Err(BuildError::Step {
                report: failure_report(
                    &op.name,
                    op.location.as_ref(),
                    &req.dockerfile,
                    &[],
                    &format!(
                        "{entitlement} is not allowed: {what} needs the {entitlement} entitlement; build with --allow {entitlement}"
                    ),
                ),
            });
        }
    }
    Ok(())
}

/// BuildKit's failure report: the step and its last output, then the Dockerfile lines around
/// it with the failing ones marked, then the error.
pub fn failure_report(
    name: &str,
    loc: Option<&strata_solver::graph::SourceLocation>,
    dockerfile: &str,
    tail: &[String],
    message: &str,
) -> String {
    let mut r = String::new();
    r.push_str("------\n");
    r.push_str(&format!(" > {name}:\n"));
    for l in tail {
        r.push_str(&format!("{l}\n"));
    }
    r.push_str("------\n");
    if let Some(loc) = loc {
        let lines: Vec<&str> = dockerfile.lines().collect();
        r.push_str(&format!("{}:{}\n", loc.file, loc.start_line));
        r.push_str("--------------------\n");
        let from = loc.start_line.saturating_sub(2).max(1);
        let to = (loc.end_line + 1).min(lines.len());
        for n in from..=to {
            let text = lines.get(n - 1).copied().unwrap_or("");
            if (loc.start_line..=loc.end_line).contains(&n) {
                r.push_str(&format!(" {n:>3} | >>> {text}\n"));
            } else {
                r.push_str(&format!(" {n:>3} |     {text}\n"));
            }
        }
        r.push_str("--------------------\n");
    }
    r.push_str(&format!("failed to solve: {message}"));
    r
}
