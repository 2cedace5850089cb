//! Running a build graph: every op whose inputs are done runs, up to concurrency limits, on
//! tokio's blocking pool (ops run processes and copy files). An op shared by several stages is
//! one node of the graph (same digest), so it runs once. The first failure cancels the others:
//! no new op starts, running ones see [`Cancel::is_cancelled`], and the error names the op.

use crate::graph::{BuildGraph, Op, OpId, OpKind};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared cancellation flag of one solve.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
}

/// Why an op gave no output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// The solve was cancelled (another op failed) before or while it ran.
    #[error("cancelled")]
    Cancelled,
    /// It failed; the message says why (for the user: the step's report).
    #[error("{0}")]
    Failed(String),
}

impl From<String> for OpError {
    fn from(message: String) -> OpError {
        OpError::Failed(message)
    }
}

impl From<&str> for OpError {
    fn from(message: &str) -> OpError {
        OpError::Failed(message.to_string())
    }
}

/// What runs one op. `inputs` are the outputs of the op's inputs, in order.
pub trait OpRunner: Send + Sync + 'static {
    type Output: Clone + Send + Sync + 'static;
    fn run(
        &self,
        id: OpId,
        op: &Op,
        inputs: Vec<Self::Output>,
        cancel: &Cancel,
    ) -> Result<Self::Output, OpError>;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SolveError {
    #[error("{name}: {message}")]
    Op {
        id: OpId,
        name: String,
        message: String,
    },
    #[error("op {0:?} is not in the graph")]
    UnknownTarget(OpId),
    #[error("the scheduler could not start: {0}")]
    Runtime(String),
}

/// How many ops run at once.
///
/// Two kinds of op are limited apart by default: the ops strata works on itself (file
/// operations, sources: they copy, hash and compress on this machine's CPUs) at most one per
/// CPU, and RUN steps (exec ops) at most four per CPU, because a container mostly waits (on
/// its processes, the network, the disk) and the kernel shares the CPUs among those that do
/// not; BuildKit sets no limit at all. An explicit limit ([`Scheduler::with_limit`],
/// `--max-parallelism N`) bounds all ops together.
#[derive(Debug, Clone)]
pub struct Scheduler {
    /// File operations and sources at once.
    pub max_parallelism: usize,
    /// RUN steps at once.
    pub max_exec: usize,
    /// Whether the two limits are one shared limit.
    pub shared: bool,
}

impl Default for Scheduler {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Scheduler {
            max_parallelism: cpus,
            max_exec: cpus * 4,
            shared: false,
        }
    }
}

impl Scheduler {
    /// At most `n` ops at once, of any kind.
    pub fn with_limit(n: usize) -> Self {
        Scheduler {
            max_parallelism: n.max(1),
            max_exec: n.max(1),
            shared: true,
        }
    }

    fn threads(&self) -> usize {
        if self.shared {
            self.max_parallelism.max(1)
        } else {
            self.max_parallelism.max(1) + self.max_exec.max(1)
        }
    }

    /// Runs `target` and everything it needs; returns the target's output.
    pub fn run<R: OpRunner>(
        &self,
        graph: Arc<BuildGraph>,
        target: OpId,
        runner: Arc<R>,
    ) -> Result<R::Output, SolveError> {
        self.run_from(graph, target, runner, BTreeMap::new())
    }

    /// Like [`Scheduler::run`], with the outputs of some ops already known (cache hits): they
    /// do not run, and neither does anything only they needed.
    pub fn run_from<R: OpRunner>(
        &self,
        graph: Arc<BuildGraph>,
        target: OpId,
        runner: Arc<R>,
        done: BTreeMap<OpId, R::Output>,
    ) -> Result<R::Output, SolveError> {
        self.run_all(graph, &[target], runner, done)?
            .pop()
            .ok_or(SolveError::UnknownTarget(target))
    }

    /// Runs several targets (a build for several platforms) in one solve: an op they share
    /// runs once. Returns their outputs in the order of `targets`.
    pub fn run_all<R: OpRunner>(
        &self,
        graph: Arc<BuildGraph>,
        targets: &[OpId],
        runner: Arc<R>,
        done: BTreeMap<OpId, R::Output>,
    ) -> Result<Vec<R::Output>, SolveError> {
        if let Some(t) = targets.iter().find(|t| t.0 >= graph.len()) {
            return Err(SolveError::UnknownTarget(*t));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(self.threads())
            .build()
            .map_err(|e| SolveError::Runtime(e.to_string()))?;
        let work = Arc::new(tokio::sync::Semaphore::new(self.max_parallelism.max(1)));
        let exec = if self.shared {
            work.clone()
        } else {
            Arc::new(tokio::sync::Semaphore::new(self.max_exec.max(1)))
        };
        rt.block_on(solve(graph, targets, runner, Limits { work, exec }, done))
    }
}

/// The semaphores ops take a permit from: `exec` for RUN steps, `work` for the rest (the
/// same semaphore when one limit is shared).
struct Limits {
    work: Arc<tokio::sync::Semaphore>,
    exec: Arc<tokio::sync::Semaphore>,
}

async fn solve<R: OpRunner>(
    graph: Arc<BuildGraph>,
    targets: &[OpId],
    runner: Arc<R>,
    limits: Limits,
    mut results: BTreeMap<OpId, R::Output>,
) -> Result<Vec<R::Output>, SolveError> {
    // What must run: the targets and, through inputs, everything not already done.
    let needed: BTreeSet<OpId> = targets
        .iter()
        .flat_map(|t| graph.reachable(*t, |id| results.contains_key(&id)))
        .filter(|id| !results.contains_key(id))
        .collect();
    // Remaining unfinished inputs per op, and who waits for whom.
    let mut waiting: BTreeMap<OpId, usize> = BTreeMap::new();
    let mut users: BTreeMap<OpId, Vec<OpId>> = BTreeMap::new();
    for id in &needed {
        let inputs: BTreeSet<OpId> = graph
            .op(*id)
            .inputs
            .iter()
            .copied()
            .filter(|i| !results.contains_key(i))
            .collect();
        waiting.insert(*id, inputs.len());
        for i in inputs {
            users.entry(i).or_default().push(*id);
        }
    }
    let cancel = Cancel::default();
    let mut running = tokio::task::JoinSet::new();
    let mut ready: Vec<OpId> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| *id)
        .collect();
    let mut failure: Option<SolveError> = None;
    loop {
        if failure.is_none() {
            for id in ready.drain(..) {
                let inputs: Vec<R::Output> = graph
                    .op(id)
                    .inputs
                    .iter()
                    .filter_map(|i| results.get(i).cloned())
                    .collect();
                let s = match graph.op(id).kind {
                    OpKind::Exec(_) => limits.exec.clone(),
                    _ => limits.work.clone(),
                };
                let (g, r, c) = (graph.clone(), runner.clone(), cancel.clone());
                running.spawn(async move {
                    let permit = s.acquire_owned().await;
                    let out = tokio::task::spawn_blocking(move || {
                        if c.is_cancelled() {
                            return Err(OpError::Cancelled);
                        }
                        r.run(id, g.op(id), inputs, &c)
                    })
                    .await
                    .unwrap_or_else(|e| Err(OpError::Failed(format!("the op panicked: {e}"))));
                    drop(permit);
                    (id, out)
                });
            }
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (id, out) = joined.map_err(|e| SolveError::Runtime(e.to_string()))?;
        match out {
            Ok(v) => {
                results.insert(id, v);
                for u in users.get(&id).into_iter().flatten() {
                    if let Some(n) = waiting.get_mut(u) {
                        *n -= 1;
                        if *n == 0 {
                            ready.push(*u);
                        }
                    }
                }
            }
            Err(e) => {
                if failure.is_none() {
                    cancel.cancel();
                    failure = Some(SolveError::Op {
                        id,
                        name: graph.op(id).name.clone(),
                        message: e.to_string(),
                    });
                }
            }
        }
    }
    if let Some(f) = failure {
        return Err(f);
    }
    targets
        .iter()
        .map(|t| results.get(t).cloned().ok_or(SolveError::UnknownTarget(*t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ExecOp, Platform, SourceOp};
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    fn src(name: &str) -> Op {
        Op {
            kind: OpKind::Source(SourceOp::Image {
                reference: name.into(),
                platform: Platform::new("linux", "amd64", None),
                resolved_digest: None,
            }),
            inputs: vec![],
            name: name.into(),
            stage: String::new(),
            location: None,
            ignore_cache: false,
        }
    }

    fn exec(inputs: Vec<OpId>, cmd: &str) -> Op {
        Op {
            kind: OpKind::Exec(ExecOp {
                args: vec![cmd.into()],
                ..ExecOp::default()
            }),
            inputs,
            name: cmd.into(),
            stage: String::new(),
            location: None,
            ignore_cache: false,
        }
    }

    /// Concatenates input outputs with the op's name; counts runs and concurrency.
    #[derive(Default)]
    struct Recorder {
        runs: Mutex<Vec<String>>,
        active: AtomicUsize,
        max_active: AtomicUsize,
        /// Ops that wait until another op is active too (to observe parallelism).
        rendezvous: bool,
        fail: Option<String>,
    }

    impl OpRunner for Recorder {
        type Output = String;
        fn run(
            &self,
            _: OpId,
            op: &Op,
            inputs: Vec<String>,
            cancel: &Cancel,
        ) -> Result<String, OpError> {
            let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_active.fetch_max(now, Ordering::SeqCst);
            if let Ok(mut r) = self.runs.lock() {
                r.push(op.name.clone());
            }
            if self.fail.as_deref() == Some(op.name.as_str()) {
                self.active.fetch_sub(1, Ordering::SeqCst);
                return Err(OpError::Failed("exit code 1".into()));
            }
            if op.name.starts_with("slow") {
                // Runs until cancelled (bounded).
                for _ in 0..500 {
                    if cancel.is_cancelled() {
                        self.active.fetch_sub(1, Ordering::SeqCst);
                        return Err(OpError::Cancelled);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            if self.rendezvous && op.name.starts_with("par") {
                for _ in 0..250 {
                    if self.max_active.load(Ordering::SeqCst) >= 2 {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            self.active.fetch_sub(1, Ordering::SeqCst);
            Ok(format!("{}({})", op.name, inputs.join(",")))
        }
    }

    fn diamond() -> (BuildGraph, OpId) {
        let mut g = BuildGraph::new();
        let base = g.add(src("base")).unwrap();
        let a = g.add(exec(vec![base], "par-a")).unwrap();
        let b = g.add(exec(vec![base], "par-b")).unwrap();
        let top = g.add(exec(vec![a, b], "top")).unwrap();
        // An op nothing needs.
        g.add(exec(vec![base], "unused")).unwrap();
        (g, top)
    }

    #[test]
    fn runs_what_the_target_needs_once_with_inputs_in_order() {
        let (g, top) = diamond();
        let r = Arc::new(Recorder::default());
        let out = Scheduler::with_limit(4)
            .run(Arc::new(g), top, r.clone())
            .unwrap();
        assert_eq!(out, "top(par-a(base()),par-b(base()))");
        let runs = r.runs.lock().unwrap().clone();
        assert_eq!(runs.iter().filter(|n| *n == "base").count(), 1);
        assert!(!runs.contains(&"unused".to_string()));
        assert_eq!(runs.len(), 4);
    }

    #[test]
    fn known_outputs_skip_the_op_and_what_only_it_needs() {
        let (g, top) = diamond();
        let r = Arc::new(Recorder::default());
        // par-a is a cache hit: base still runs (par-b needs it), par-a does not.
        let done = BTreeMap::from([(OpId(1), "hit".to_string())]);
        let out = Scheduler::with_limit(2)
            .run_from(Arc::new(g.clone()), top, r.clone(), done)
            .unwrap();
        assert_eq!(out, "top(hit,par-b(base()))");
        assert_eq!(*r.runs.lock().unwrap(), vec!["base", "par-b", "top"]);
        // Both branches hit: base is not even started.
        let r = Arc::new(Recorder::default());
        let done = BTreeMap::from([(OpId(1), "a".to_string()), (OpId(2), "b".to_string())]);
        let out = Scheduler::default()
            .run_from(Arc::new(g), top, r.clone(), done)
            .unwrap();
        assert_eq!(out, "top(a,b)");
        assert_eq!(*r.runs.lock().unwrap(), vec!["top"]);
    }

    #[test]
    fn independent_ops_run_at_the_same_time_up_to_the_limit() {
        let (g, top) = diamond();
        let g = Arc::new(g);
        let r = Arc::new(Recorder {
            rendezvous: true,
            ..Recorder::default()
        });
        Scheduler::with_limit(2)
            .run(g.clone(), top, r.clone())
            .unwrap();
        assert_eq!(r.max_active.load(Ordering::SeqCst), 2);
        let r = Arc::new(Recorder {
            rendezvous: true,
            ..Recorder::default()
        });
        Scheduler::with_limit(1).run(g, top, r.clone()).unwrap();
        assert_eq!(r.max_active.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn run_steps_have_their_own_limit_unless_one_is_given() {
        let limits = Scheduler {
            max_parallelism: 1,
            max_exec: 2,
            shared: false,
        };
        // The two RUN steps run together although only one other op may.
        let (g, top) = diamond();
        let g = Arc::new(g);
        let r = Arc::new(Recorder {
            rendezvous: true,
            ..Recorder::default()
        });
        limits.run(g.clone(), top, r.clone()).unwrap();
        assert_eq!(r.max_active.load(Ordering::SeqCst), 2);
        // Two sources: one at a time.
        let mut g2 = BuildGraph::new();
        let a = g2.add(src("par-x")).unwrap();
        let b = g2.add(src("par-y")).unwrap();
        let top2 = g2.add(exec(vec![a, b], "top")).unwrap();
        let r = Arc::new(Recorder {
            rendezvous: true,
            ..Recorder::default()
        });
        limits.run(Arc::new(g2), top2, r.clone()).unwrap();
        assert_eq!(r.max_active.load(Ordering::SeqCst), 1);
        // One explicit limit of 1 bounds the RUN steps too.
        let r = Arc::new(Recorder {
            rendezvous: true,
            ..Recorder::default()
        });
        Scheduler::with_limit(1).run(g, top, r.clone()).unwrap();
        assert_eq!(r.max_active.load(Ordering::SeqCst), 1);
        let d = Scheduler::default();
        assert!(!d.shared && d.max_exec == 4 * d.max_parallelism);
    }

    #[test]
    fn the_first_failure_cancels_the_rest() {
        let mut g = BuildGraph::new();
        let base = g.add(src("base")).unwrap();
        let slow = g.add(exec(vec![base], "slow")).unwrap();
        let bad = g.add(exec(vec![base], "bad")).unwrap();
        let after = g.add(exec(vec![bad], "after-bad")).unwrap();
        let top = g.add(exec(vec![slow, after], "top")).unwrap();
        let r = Arc::new(Recorder {
            fail: Some("bad".into()),
            ..Recorder::default()
        });
        let err = Scheduler::with_limit(4)
            .run(Arc::new(g), top, r.clone())
            .unwrap_err();
        assert_eq!(
            err,
            SolveError::Op {
                id: bad,
                name: "bad".into(),
                message: "exit code 1".into()
            }
        );
        let runs = r.runs.lock().unwrap().clone();
        assert!(!runs.contains(&"after-bad".to_string()));
        assert!(!runs.contains(&"top".to_string()));
    }
}
