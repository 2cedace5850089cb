//! Running what is not done: the scheduler with the build's runner; a step's failure becomes
//! BuildKit's report (the step, its last output, its Dockerfile lines).

use super::progress::Progress;
use super::runner::{FsResult, Runner};
use super::sources::Fetched;
use super::{BuildError, BuildRequest, failure_report};
use std::collections::BTreeMap;
use std::sync::Arc;
use strata_cache::Digest;
use strata_solver::graph::{BuildGraph, OpId};
use strata_solver::scheduler::{Scheduler, SolveError};

/// A filesystem's layers, bottom first (`None`: a step that changed nothing).
pub type Chain = Vec<Option<Digest>>;

/// Runs the targets' steps not in `done` (what they share, once); returns each target's
/// layer chain and how many steps ran.
#[allow(clippy::too_many_arguments)]
pub fn run(
    req: &BuildRequest,
    graph: &Arc<BuildGraph>,
    targets: &[OpId],
    keys: &BTreeMap<OpId, Digest>,
    progress: &Arc<Progress>,
    epoch: Option<i64>,
    fetched: Fetched,
    done: BTreeMap<OpId, FsResult>,
    misses: &BTreeMap<OpId, super::explain::Miss>,
) -> Result<(Vec<Chain>, usize), BuildError> {
    // The fetched files' directories live until the steps that add them are done.
    let Fetched {
        prefetched,
        git_commits,
        guards,
        ..
    } = fetched;
    let runner = Arc::new(Runner {
        graph: graph.clone(),
        registry: req.registry.clone(),
        root: req.root.clone(),
        keys: keys.clone(),
        progress: progress.clone(),
        runtime: req.runtime.clone(),
        network: req.network,
        strata_exe: req.strata_exe.clone(),
        executed: Default::default(),
        epoch,
        secrets: req.secrets.clone(),
        ssh: req.ssh.clone(),
        allow_insecure: req.allow_insecure,
        prefetched: std::sync::Mutex::new(prefetched),
        git_commits,
        misses: misses
            .iter()
            .map(|(id, m)| (*id, m.reason.clone()))
            .collect(),
    });
    let scheduler = match req.max_parallelism {
        Some(n) => Scheduler::with_limit(n),
        None => Scheduler::default(),
    };
    let result = scheduler.run_all(graph.clone(), targets, runner.clone(), done);
    drop(guards);
    let outputs = match result {
        Ok(outputs) => outputs,
        Err(SolveError::Op { id, name, message }) => {
            let tail = progress.tail(graph.digest(id).as_str());
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
    let mut chains = Vec::new();
    for out in outputs {
        match out {
            FsResult::Layers(l) => chains.push(l),
            FsResult::Context { .. } => {
                return Err(anyhow::anyhow!("the target is the build context, not a stage").into());
            }
        }
    }
    let executed = runner.executed.load(std::sync::atomic::Ordering::SeqCst);
    Ok((chains, executed))
}
