//! Lowering: typed instructions → the build graph of the target stage (BuildKit's
//! `dockerfile2llb`).
//!
//! Stages are lowered on demand, starting from the target: a stage is lowered when the target
//! (or a stage it needs) names it in `FROM`, `COPY --from` or `RUN --mount=from=`. Stages
//! nothing needs are never in the graph. With [`BuildOptions::all_stages`] (used by
//! `strata check`) every stage is lowered so that every stage is checked, and the graph is
//! still pruned to what the target needs.
//!
//! Variable expansion follows BuildKit: global ARGs (before the first FROM) and the automatic
//! platform ARGs are visible in FROM lines; inside a stage, ARG and ENV values share one
//! environment in declaration order, which is what RUN sees and what later instructions are
//! expanded with; only ENV reaches the image config.

mod copy;
mod metadata;
mod run;
mod stages;
pub mod util;
mod vars;

use copy::split_chown;
use metadata::{check_description, normalize_empty_lists};
use vars::Layered;
pub use vars::{Args, Vars};

use crate::diagnostic::{Diagnostic, LineRange};
use crate::instructions::{
    self, ArgDef, CmdLine, Command, CopyCmd, FromCmd, Instruction, RunCmd,
    mount::{self, MountType, Sharing},
};
use crate::lint::{self, CheckConfig, Linter};
use crate::parser::{self, Heredoc, chomp_heredoc_content, parse_heredoc_word};
use crate::shell::{Env, Lexer};
use crate::suggest::did_you_mean;
use std::collections::{BTreeMap, BTreeSet};
use strata_solver::graph::{
    BuildGraph, CacheSharing, Chmod, Chown, ExecOp, FileAction, Mount, MountKind, Op, OpId, OpKind,
    Platform, SourceLocation, SourceOp,
};
use strata_solver::image::{Empty, HealthConfig, HistoryEntry, ImageConfig};
use strata_solver::reference::Reference;
use util::{ChmodValue, clean, dest_path, normalize};

/// The default PATH BuildKit gives images whose config has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How deeply stage lowering may recurse through references only known while lowering.
const MAX_STAGE_RECURSION: usize = 64;
/// The hostname RUN steps see.
pub const DEFAULT_HOSTNAME: &str = "buildkitsandbox";
/// History comment BuildKit writes.
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// ARGs that are never put into the environment.
const NON_ENV_ARGS: [&str; 2] = ["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// A base image's configuration, as the resolver found it.
#[derive(Clone, Debug, Default)]
pub struct ResolvedImage {
    pub config: ImageConfig,
    pub history: Vec<HistoryEntry>,
    /// The image's `author` (carried into images built on it, as BuildKit does).
    pub author: String,
    /// Manifest digest the reference resolved to.
    pub digest: Option<String>,
    pub platform: Option<Platform>,
}

/// Looks up base images. The frontend never touches the network or the store itself.
pub trait ImageResolver {
    /// `Ok(None)` means "not known": the stage starts from an empty config.
    fn resolve(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<Option<ResolvedImage>, ResolveError>;
}

/// Why a base image could not be looked up (not found is `Ok(None)`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ResolveError {
    pub reason: String,
}

impl ResolveError {
    pub fn new(reason: impl Into<String>) -> ResolveError {
        ResolveError {
            reason: reason.into(),
        }
    }
}

/// A resolver that knows no images: every base image has an empty config.
pub struct NoResolver;

impl ImageResolver for NoResolver {
    fn resolve(&self, _: &str, _: &Platform) -> Result<Option<ResolvedImage>, ResolveError> {
        Ok(None)
    }
}

/// What the user asked for.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The Dockerfile name, for messages.
    pub file_name: String,
    /// `--build-arg` values (a bare `--build-arg NAME` already resolved from the environment).
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    /// `--platform`; the build platform when `None`.
    pub platform: Option<Platform>,
    pub build_platform: Platform,
    /// `--label`: added to the final image.
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    /// `--no-cache-filter` stage names.
    pub no_cache_filter: Vec<String>,
    /// `.dockerignore` patterns of the main context.
    pub dockerignore: Vec<String>,
    /// Lower every stage, not only what the target needs (for checks).
    pub all_stages: bool,
    /// One build for several platforms: step names start with the stage's platform (and
    /// `->ARCH` when it is not the target's), as BuildKit names them.
    pub platform_prefix: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            file_name: "Dockerfile".into(),
            build_args: BTreeMap::new(),
            target: None,
            platform: None,
            build_platform: Platform::host(),
            labels: BTreeMap::new(),
            no_cache: false,
            no_cache_filter: vec![],
            dockerignore: vec![],
            all_stages: false,
            platform_prefix: false,
        }
    }
}

/// A stage as lowered.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StageInfo {
    pub index: usize,
    pub name: Option<String>,
    pub base: String,
    /// Whether the target needs this stage.
    pub needed: bool,
}

/// The result of lowering.
#[derive(Debug)]
pub struct Lowered {
    pub graph: BuildGraph,
    /// The op whose filesystem is the target stage's result.
    pub target: OpId,
    pub target_stage: StageInfo,
    pub config: ImageConfig,
    pub history: Vec<HistoryEntry>,
    pub author: String,
    pub platform: Platform,
    pub stages: Vec<StageInfo>,
    /// `SOURCE_DATE_EPOCH` (a build arg): new layers' mtimes are clamped to it and it is the
    /// image's creation time.
    pub epoch: Option<i64>,
}

struct StageDef {
    index: usize,
    name: Option<String>,
    from: FromCmd,
    from_range: LineRange,
    from_comments: Vec<String>,
    commands: Vec<Instruction>,
}

/// A stage's state while its instructions are dispatched.
#[derive(Clone)]
struct State {
    op: OpId,
    env: Vars,
    config: ImageConfig,
    history: Vec<HistoryEntry>,
    author: String,
    platform: Platform,
    /// The platform recorded in the image config (`os`, `architecture`, `variant`).
    image_platform: Platform,
    /// ENV values only: what the image config's Env becomes (materialized when the stage ends).
    config_env: Vars,
    /// Declared ARGs (in scope) with their values.
    args: Args,
    workdir_set: bool,
    cmd_set: bool,
    ignore_cache: bool,
}

struct Lowerer<'a> {
    opts: &'a BuildOptions,
    resolver: &'a dyn ImageResolver,
    lexer: Lexer,
    graph: BuildGraph,
    diags: Vec<Diagnostic>,
    linter: Linter,
    stages: Vec<StageDef>,
    done: Vec<Option<State>>,
    in_progress: Vec<bool>,
    attempted: Vec<bool>,
    /// How deeply `lower_stage` is nested (through `--from` references found while lowering).
    depth: usize,
    meta: Vars,
    /// Global ARG names declared before the first FROM (plus automatic ones).
    meta_declared: Args,
    used_build_args: BTreeSet<String>,
    target_platform: Platform,
    multi_stage: bool,
    /// Each stage's platform, once its FROM is read (for step names).
    stage_platforms: BTreeMap<usize, Platform>,
    /// Ops created for image sources, by (reference, platform), so each is resolved once.
    images: BTreeMap<(String, String), (OpId, Option<ResolvedImage>)>,
    ignore_matcher: Option<crate::dockerignore::PatternMatcher>,
}

fn loc(opts: &BuildOptions, r: LineRange) -> Option<SourceLocation> {
    Some(SourceLocation {
        file: opts.file_name.clone(),
        start_line: r.start,
        end_line: r.end,
    })
}

/// Parses, checks and lowers a Dockerfile. Returns the graph when there were no errors, and
/// every diagnostic (errors, parser warnings and build-check findings) in any case.
pub fn lower(
    src: &str,
    opts: &BuildOptions,
    resolver: &dyn ImageResolver,
) -> (Option<Lowered>, Vec<Diagnostic>) {
    let (ast, mut diags) = parser::parse(src);
    let mut check = CheckConfig::default();
    if let Some(d) = ast.directive("check")
        && let Err(e) = check.merge(&d.value)
    {
        diags.push(
            Diagnostic::error(LineRange::line(d.line), e.to_string())
                .with_hint("write # check=skip=RuleName;error=true"),
        );
    }
    if let Some(v) = opts.build_args.get("BUILDKIT_DOCKERFILE_CHECK")
        && let Err(e) = check.merge(v)
    {
        diags.push(Diagnostic::error(
            LineRange::default(),
            format!("BUILDKIT_DOCKERFILE_CHECK: {e}"),
        ));
    }
    if let Some(d) = ast.directive("syntax")
        && !is_dockerfile_frontend(&d.value)
    {
        diags.push(
            Diagnostic::warning(
                LineRange::line(d.line),
                format!(
                    "syntax directive names the frontend image {:?}: strata always uses its built-in Dockerfile frontend",
                    d.value
                ),
            )
            .with_hint("strata follows the current docker/dockerfile syntax; drop the directive or name docker/dockerfile"),
        );
    }
    let mut linter = Linter::new(check);
    let parse_warnings: Vec<Diagnostic> = diags.iter().filter(|d| !d.is_error()).cloned().collect();
    diags.retain(|d| d.is_error() || d.rule != Some(parser::NO_EMPTY_CONTINUATION));
    lint::lint_ast(&ast, &parse_warnings, &mut linter);

    let mut instrs = Vec::new();
    for node in &ast.children {
        match instructions::parse_instruction(node) {
            Ok(i) => instrs.push(i),
            Err(d) => diags.push(d),
        }
    }

    let mut l = Lowerer::new(opts, resolver, linter, ast.escape);
    let result = l.run(instrs);
    let mut all = diags;
    all.append(&mut l.diags);
    all.extend(l.linter.into_diagnostics());
    let has_errors = all.iter().any(Diagnostic::is_error);
    all.sort_by_key(|d| (d.range.start == 0, d.range.start));
    (if has_errors { None } else { result }, all)
}

impl<'a> Lowerer<'a> {
    fn new(
        opts: &'a BuildOptions,
        resolver: &'a dyn ImageResolver,
        linter: Linter,
        escape: char,
    ) -> Self {
        let target_platform = opts
            .platform
            .clone()
            .unwrap_or_else(|| opts.build_platform.clone());
        let ignore_matcher = if opts.dockerignore.is_empty() {
            None
        } else {
            crate::dockerignore::PatternMatcher::new(&opts.dockerignore).ok()
        };
        Lowerer {
            opts,
            resolver,
            lexer: Lexer::new(escape),
            graph: BuildGraph::new(),
            diags: vec![],
            linter,
            stages: vec![],
            done: vec![],
            in_progress: vec![],
            attempted: vec![],
            depth: 0,
            meta: Vars::default(),
            meta_declared: Args::default(),
            used_build_args: BTreeSet::new(),
            target_platform,
            multi_stage: false,
            stage_platforms: BTreeMap::new(),
            images: BTreeMap::new(),
            ignore_matcher,
        }
    }

    fn error(&mut self, range: LineRange, msg: impl Into<String>) {
        self.diags.push(Diagnostic::error(range, msg));
    }

    fn error_hint(&mut self, range: LineRange, msg: impl Into<String>, hint: impl Into<String>) {
        self.diags
            .push(Diagnostic::error(range, msg).with_hint(hint));
    }

    fn run(&mut self, instrs: Vec<Instruction>) -> Option<Lowered> {
        // Split into global ARGs and stages.
        let mut global_args: Vec<Instruction> = Vec::new();
        for ins in instrs {
            match &ins.command {
                Command::From(f) => {
                    let index = self.stages.len();
                    self.stages.push(StageDef {
                        index,
                        name: f.name.clone(),
                        from: f.clone(),
                        from_range: ins.range,
                        from_comments: ins.prev_comment.clone(),
                        commands: vec![],
                    });
                    self.lint_from(&ins, f);
                }
                Command::Arg { .. } if self.stages.is_empty() => global_args.push(ins),
                _ => match self.stages.last_mut() {
                    Some(s) => s.commands.push(ins),
                    None => {
                        let word = ins.word.to_uppercase();
                        self.error_hint(
                            ins.range,
                            format!("no build stage in current context: {word} must come after a FROM"),
                            "start the Dockerfile with FROM <image> (only ARG may come before the first FROM)",
                        );
                    }
                },
            }
        }
        if self.stages.is_empty() {
            if !self.diags.iter().any(Diagnostic::is_error) {
                self.error_hint(
                    LineRange::line(1),
                    "the Dockerfile has no FROM instruction",
                    "add FROM <image> to start a build stage",
                );
            }
            return None;
        }
        self.multi_stage = self.stages.len() > 1;
        self.done = vec![None; self.stages.len()];
        self.in_progress = vec![false; self.stages.len()];
        self.attempted = vec![false; self.stages.len()];
        let epoch = self.source_date_epoch()?;
        self.lint_stage_names();
        self.meta_args(&global_args);
        self.lint_from_args();

        let target_index = match &self.opts.target {
            None => self.stages.len() - 1,
            Some(t) => match self.stage_index(t) {
                Some(i) => i,
                None => {
                    let names: Vec<&str> = self
                        .stages
                        .iter()
                        .filter_map(|s| s.name.as_deref())
                        .collect();
                    let mut msg = format!("target stage {t:?} could not be found");
                    if let Some(s) = did_you_mean(t, &names) {
                        msg.push_str(&format!(" (did you mean {s}?)"));
                    }
                    self.error_hint(
                        LineRange::default(),
                        msg,
                        "--target names a stage by its AS name",
                    );
                    return None;
                }
            },
        };
        let target_name = self.stages[target_index]
            .name
            .clone()
            .unwrap_or_else(|| "default".into());
        self.meta.set(
            "TARGETSTAGE",
            self.opts
                .build_args
                .get("TARGETSTAGE")
                .map(String::as_str)
                .unwrap_or(&target_name),
        );

        // Lower what the target needs in file order (dependencies always come first), so that
        // long chains of stages need no recursion.
        for j in self.static_dependencies(target_index) {
            self.lower_stage(j);
        }
        let target_state = self.lower_stage(target_index);
        if self.opts.all_stages {
            for i in 0..self.stages.len() {
                self.lower_stage(i);
            }
        }
        self.warn_unused_build_args();
        let state = target_state?;

        // Prune the graph to what the target needs.
        let needed_ops: BTreeSet<OpId> = self.graph.ancestors(state.op).into_iter().collect();
        let (graph, target) = std::mem::take(&mut self.graph).into_subgraph(state.op);
        let stages: Vec<StageInfo> = self
            .stages
            .iter()
            .map(|s| StageInfo {
                index: s.index,
                name: s.name.clone(),
                base: s.from.base.clone(),
                needed: s.index == target_index
                    || self.done[s.index]
                        .as_ref()
                        .is_some_and(|st| needed_ops.contains(&st.op)),
            })
            .collect();
        let mut config = state.config.clone();
        normalize_empty_lists(&mut config);
        for (k, v) in &self.opts.labels {
            config.labels.insert(k.clone(), v.clone());
        }
        Some(Lowered {
            graph,
            target,
            target_stage: stages[target_index].clone(),
            config,
            history: state.history,
            author: state.author,
            platform: self.result_platform(&state.image_platform),
            stages,
            epoch,
        })
    }

    /// `SOURCE_DATE_EPOCH` from the build args: a whole number of seconds, or unset (empty).
    fn source_date_epoch(&mut self) -> Option<Option<i64>> {
        match self.opts.build_args.get("SOURCE_DATE_EPOCH") {
            Some(v) if !v.is_empty() => match v.parse::<i64>() {
                Ok(e) => Some(Some(e)),
                Err(_) => {
                    self.error_hint(
                        LineRange::default(),
                        format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds since 1970"),
                        "give it as whole seconds, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)",
                    );
                    None
                }
            },
            _ => Some(None),
        }
    }

    fn add_op(&mut self, op: Op, range: LineRange) -> Option<OpId> {
        match self.graph.add(op) {
            Ok(id) => Some(id),
            Err(e) => {
                self.error(range, e.to_string());
                None
            }
        }
    }

    fn context_source(
        &mut self,
        paths: Vec<String>,
        ins: &Instruction,
        stage: &str,
    ) -> Option<OpId> {
        let op = Op {
            kind: OpKind::Source(SourceOp::Local {
                name: "context".into(),
                follow_paths: paths,
                exclude_patterns: self.opts.dockerignore.clone(),
            }),
            inputs: vec![],
            name: "[internal] load build context".into(),
            stage: stage.to_string(),
            location: None,
            ignore_cache: false,
        };
        self.add_op(op, ins.range)
    }
}

/// Whether a `# syntax=` value names Docker's own Dockerfile frontend (any tag or digest),
/// which is what strata implements.
fn is_dockerfile_frontend(value: &str) -> bool {
    let image = value.split_whitespace().next().unwrap_or("");
    let name = image.split('@').next().unwrap_or("");
    let name = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    };
    matches!(
        name,
        "docker/dockerfile"
            | "docker.io/docker/dockerfile"
            | "docker/dockerfile-upstream"
            | "docker.io/docker/dockerfile-upstream"
    )
}

fn first_word(s: &str) -> String {
    s.split_whitespace().next().unwrap_or("").to_uppercase()
}

/// The instruction as progress output shows it: the original text, instruction word upper-cased.
fn display(ins: &Instruction) -> String {
    let text = ins.original.trim();
    match text.split_once(char::is_whitespace) {
        Some((w, rest)) => format!("{} {}", w.to_uppercase(), rest.trim_start()),
        None => text.to_uppercase(),
    }
}

#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod tests;
