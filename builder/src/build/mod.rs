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
//! 5. the target's layers, config and history become an image ([`assemble`]);
//! 6. the build cache goes where `--cache-to` says ([`remote_cache`]).
//!
//! Each step is a module: [`sources`] (what ADD fetches and which commit a Git ref is, before
//! the keys), [`keys`], [`hits`] (what is done already, imported caches), [`solve`] (the
//! scheduler and the runner), [`assemble`], [`cache_export`].

pub mod assemble;
mod cache_export;
pub mod explain;
mod hits;
pub mod keys;
pub mod progress;
mod records;
pub mod remote_cache;
pub mod resolver;
pub mod runner;
mod solve;
mod sources;

use progress::Progress;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use strata_cache::Digest;
use strata_cache::images::ImageStore;
use strata_executor::init::Runtime;
use strata_frontend::lower::{BuildOptions, lower};
use strata_solver::graph::{NetworkMode, OpId, OpKind};

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
    /// Where base images the store lacks come from while the Dockerfile is lowered.
    pub bases: resolver::BaseImages,
    /// `--platform P1,P2,…`: one image per platform, and an index of them; empty: one image
    /// for `opts.platform` (the machine's when unset).
    pub platforms: Vec<strata_solver::graph::Platform>,
    /// Where binfmt_misc's handlers are listed (emulation of other platforms).
    pub binfmt_dir: PathBuf,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// The image ID; for several platforms, the index's digest.
    pub image_id: Digest,
    pub manifest_digest: Option<Digest>,
    /// For several platforms: each platform's image, in the order asked.
    pub platforms: Vec<(strata_solver::graph::Platform, Digest)>,
    /// Steps that ran, and steps answered by the cache.
    pub executed: usize,
    pub cached: usize,
    /// Why each step that ran missed the cache, in build order.
    pub misses: Vec<explain::Miss>,
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
    Exec(#[from] strata_executor::ExecError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

use crate::timefmt::now;

/// Runs one build; progress goes to `progress`, Dockerfile warnings to `warnings`.
pub fn build(
    req: &BuildRequest,
    progress: Arc<Progress>,
    warnings: &mut dyn std::io::Write,
) -> Result<BuildResult, BuildError> {
    let store = ImageStore::open(&req.root).map_err(anyhow::Error::from)?;
    // Held for the whole build: `prune` and `rmi` wait, so no layer goes while we use it.
    let _lock = strata_cache::lock::RootLock::shared(&req.root)
        .map_err(|e| anyhow::anyhow!("locking the state root: {e}"))?;
    strata_executor::clean_stale_containers(&req.root.join("containers"));
    store.content.clean_leftovers();
    // 1. Lower, once per target platform, into one graph: what the targets share is one op.
    let (graph, targets) = lower_targets(req, &store, warnings)?;
    let epoch = targets[0].lowered.epoch;
    let graph = Arc::new(graph);
    let ops: Vec<OpId> = targets.iter().map(|t| t.op).collect();
    let mut needed: Vec<OpId> = ops.iter().flat_map(|t| graph.ancestors(*t)).collect();
    needed.sort();
    needed.dedup();
    check_entitlements(req, &graph, &needed)?;
    check_emulation(req, &graph, &needed)?;
    // 2. Sources whose content is their key, then every needed op's key.
    let fetched = sources::prefetch(req, &graph, &needed, &progress)?;
    let mut meta =
        strata_cache::metadata::Metadata::open(&req.root).map_err(anyhow::Error::from)?;
    let mut contexts = keys::Contexts::new(&req.context);
    let mut inputs = BTreeMap::new();
    let keys = keys::compute(
        &graph,
        &needed,
        &mut keys::KeyEnv {
            store: &store,
            contexts: &mut contexts,
            meta: &mut meta,
            progress: &progress,
            epoch,
            http: &fetched.http_keys,
            git: &fetched.git_commits,
            inputs: &mut inputs,
        },
    )?;
    // 3. What is done already: sources, cache hits, then imported caches.
    let mut done = hits::done_already(req, &store, &graph, &needed, &keys)?;
    let imported = if req.cache_from.is_empty() {
        vec![]
    } else {
        hits::import_caches(req, &store, &graph, &ops, &keys, &meta, &mut done, warnings)?
    };
    let cached = hits::show(&graph, &ops, &done, &progress);
    // Why each step that will run missed, against its last record here.
    let scope = record_scope(req);
    let against = records::Against {
        meta: &meta,
        scope: &scope,
        no_cache_everywhere: req.opts.no_cache,
        imported: &imported,
        target: req.opts.target.as_deref().unwrap_or_default(),
        contexts: &contexts,
    };
    let misses = records::misses(&graph, &ops, &done, &inputs, &against);
    // 4. Run what is left.
    let (chains, executed) = solve::run(
        req, &graph, &ops, &keys, &progress, epoch, fetched, done, &misses,
    )?;
    records::record(
        &graph,
        &needed,
        &keys,
        &inputs,
        &mut meta,
        (&scope, &contexts),
    );
    // 5. The images (and, for several platforms, the index of them).
    let mut store = store;
    let single = targets.len() == 1;
    let mut images = Vec::new();
    for (t, chain) in targets.iter().zip(&chains) {
        // An image's creation time is when its last step's result was made, so a rebuild
        // that is all cache hits gives the same image ID (as BuildKit's does).
        let created = epoch.unwrap_or_else(|| {
            keys.get(&t.op)
                .and_then(|k| meta.cached_created(k).ok().flatten())
                .unwrap_or_else(now)
        });
        let tags = if single { req.tags.as_slice() } else { &[] };
        let (id, manifest) = assemble::put_image(&mut store, &t.lowered, chain, tags, created)?;
        images.push((t.lowered.platform.clone(), id, manifest));
    }
    let (image_id, manifest_digest, platforms) = if single {
        let (_, id, manifest) = images.remove(0);
        (id, manifest, vec![])
    } else {
        let members: Vec<_> = images
            .iter()
            .map(|(p, id, _)| (p.clone(), id.clone()))
            .collect();
        let index = store
            .put_index(&members, &req.tags, now())
            .map_err(anyhow::Error::from)?;
        (index.clone(), Some(index), members)
    };
    let used: Vec<Digest> = needed.iter().filter_map(|i| keys.get(i).cloned()).collect();
    let _ = meta.touch_cached(&used, now());
    // 6. The cache, where asked.
    for (loc, mode, with_mounts) in &req.cache_to {
        let n = cache_export::export(
            req,
            &mut store,
            &graph,
            &needed,
            &ops,
            &keys,
            &used,
            (loc, *mode, *with_mounts),
            &inputs,
        )?;
        let _ = writeln!(warnings, "exported {n} cache entries");
    }
    Ok(BuildResult {
        image_id,
        manifest_digest,
        platforms,
        executed,
        cached,
        misses: misses.into_values().collect(),
    })
}

/// The scope a build's step records belong to: the same Dockerfile, context and target.
fn record_scope(req: &BuildRequest) -> String {
    let text = format!(
        "{}\0{}\0{}",
        req.dockerfile_name,
        req.context.display(),
        req.opts.target.as_deref().unwrap_or_default()
    );
    Digest::of(text.as_bytes()).as_str().to_string()
}

/// One target of a build: a platform's lowering and its op in the shared graph.
struct Target {
    lowered: strata_frontend::lower::Lowered,
    op: OpId,
}

/// The Dockerfile lowered for each target platform, merged into one graph.
fn lower_targets(
    req: &BuildRequest,
    store: &ImageStore,
    warnings: &mut dyn std::io::Write,
) -> Result<(strata_solver::graph::BuildGraph, Vec<Target>), BuildError> {
    let platforms: Vec<Option<strata_solver::graph::Platform>> = if req.platforms.is_empty() {
        vec![req.opts.platform.clone()]
    } else {
        req.platforms.iter().cloned().map(Some).collect()
    };
    let mut graph = strata_solver::graph::BuildGraph::new();
    let mut targets = Vec::new();
    let mut said = std::collections::BTreeSet::new();
    for p in platforms {
        let opts = BuildOptions {
            platform: p,
            platform_prefix: req.platforms.len() > 1,
            ..req.opts.clone()
        };
        let lowered = lower_dockerfile(req, &opts, store, &mut said, warnings)?;
        let map = graph.merge(&lowered.graph);
        let op = map[lowered.target.0];
        targets.push(Target { lowered, op });
    }
    Ok((graph, targets))
}

/// Every RUN step for another platform than this machine's needs its emulator registered
/// (binfmt_misc with the fix-binary flag); checked before anything runs, naming the stage.
fn check_emulation(
    req: &BuildRequest,
    graph: &strata_solver::graph::BuildGraph,
    needed: &[OpId],
) -> Result<(), BuildError> {
    use strata_executor::binfmt;
    let mut handlers = None;
    for id in needed {
        let op = graph.op(*id);
        let OpKind::Exec(e) = &op.kind else { continue };
        let Some(p) = &e.platform else { continue };
        let handlers = handlers.get_or_insert_with(|| binfmt::handlers(&req.binfmt_dir));
        if let binfmt::Support::Missing(why) = binfmt::support(p, handlers) {
            return Err(BuildError::Step {
                report: failure_report(
                    &op.name,
                    op.location.as_ref(),
                    &req.dockerfile,
                    &[],
                    &format!(
                        "stage {} runs for {p}: {}",
                        if op.stage.is_empty() {
                            "default"
                        } else {
                            &op.stage
                        },
                        binfmt::missing_error(p, &why)
                    ),
                ),
            });
        }
    }
    Ok(())
}

/// The Dockerfile lowered with base images resolved in the store; warnings written out,
/// errors returned all together.
fn lower_dockerfile(
    req: &BuildRequest,
    opts: &BuildOptions,
    store: &ImageStore,
    said: &mut std::collections::BTreeSet<String>,
    warnings: &mut dyn std::io::Write,
) -> Result<strata_frontend::lower::Lowered, BuildError> {
    let resolver = resolver::StoreResolver::new(store, &req.bases);
    let (lowered, diags) = lower(&req.dockerfile, opts, &resolver);
    let mut errors = String::new();
    for d in &diags {
        let text = d.render(&req.dockerfile_name, &req.dockerfile);
        if d.is_error() {
            errors.push_str(&format!("{text}\n"));
        } else if said.insert(text.clone()) {
            // Once, though the Dockerfile is lowered once per platform.
            let _ = writeln!(warnings, "warning: {text}");
        }
    }
    match lowered {
        Some(l) if errors.is_empty() => Ok(l),
        _ => Err(BuildError::Dockerfile(errors.trim_end().to_string())),
    }
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
