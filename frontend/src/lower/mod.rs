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

pub mod util;

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
    BuildGraph, CacheSharing, Chmod, Chown, ExecOp, FileAction, Mount, MountKind, NetworkMode, Op,
    OpId, OpKind, Platform, SecurityMode, SourceLocation, SourceOp,
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
    ) -> Result<Option<ResolvedImage>, String>;
}

/// A resolver that knows no images: every base image has an empty config.
pub struct NoResolver;

impl ImageResolver for NoResolver {
    fn resolve(&self, _: &str, _: &Platform) -> Result<Option<ResolvedImage>, String> {
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
}

/// An ordered variable list: setting an existing name replaces its value in place.
/// Lookups and updates are O(1), so long Dockerfiles stay linear.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    items: Vec<(String, String)>,
    index: std::collections::HashMap<String, usize>,
}

impl Vars {
    pub fn from_env_list(list: &[String]) -> Vars {
        let mut v = Vars::default();
        for e in list {
            let (k, val) = e.split_once('=').unwrap_or((e.as_str(), ""));
            v.set(k, val);
        }
        v
    }
    pub fn set(&mut self, k: &str, v: &str) {
        match self.index.get(k) {
            Some(&i) => self.items[i].1 = v.to_string(),
            None => {
                self.index.insert(k.to_string(), self.items.len());
                self.items.push((k.to_string(), v.to_string()));
            }
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|(k, _)| k.as_str())
    }
    pub fn to_env_list(&self) -> Vec<String> {
        self.items.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

impl Env for Vars {
    fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.items[i].1.as_str())
    }
}

/// Declared ARG names in declaration order, with their values. Re-declaring keeps the first
/// position and updates the value (as BuildKit's history does).
#[derive(Clone, Debug, Default)]
pub struct Args {
    items: Vec<(String, Option<String>)>,
    index: std::collections::HashMap<String, usize>,
}

impl Args {
    pub fn set(&mut self, k: &str, v: Option<String>) {
        match self.index.get(k) {
            Some(&i) => self.items[i].1 = v,
            None => {
                self.index.insert(k.to_string(), self.items.len());
                self.items.push((k.to_string(), v));
            }
        }
    }
    pub fn contains(&self, k: &str) -> bool {
        self.index.contains_key(k)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.items.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|(k, _)| k.as_str())
    }
}

/// Two environments, the first shadowing the second.
struct Layered<'a>(&'a Vars, &'a Vars);
impl Env for Layered<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).or_else(|| self.1.get(name))
    }
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

fn platform_args(prefix: &str, p: &Platform) -> Vec<(String, String)> {
    vec![
        (format!("{prefix}PLATFORM"), p.to_string()),
        (format!("{prefix}OS"), p.os.clone()),
        (format!("{prefix}ARCH"), p.architecture.clone()),
        (
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        ),
    ]
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
            Diagnostic::error(LineRange::line(d.line), e)
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

    /// Expands one word; unset variables are reported by `UndefinedVar` unless declared.
    fn expand(
        &mut self,
        word: &str,
        env: &dyn Env,
        declared: &Args,
        ins: &Instruction,
    ) -> Option<String> {
        match self.lexer.process_word(word, env) {
            Ok(e) => {
                for name in &e.unmatched {
                    self.report_undefined(name, env, declared, ins);
                }
                Some(e.result)
            }
            Err(err) => {
                self.error_hint(
                    ins.range,
                    format!("{}: {err}", first_word(&ins.original)),
                    "check the ${...} syntax, quotes and escapes in this instruction",
                );
                None
            }
        }
    }

    fn report_undefined(&mut self, name: &str, _env: &dyn Env, declared: &Args, ins: &Instruction) {
        if declared.contains(name) || PROXY_ARGS.contains(&name) {
            return;
        }
        let known: Vec<&str> = declared.names().take(64).collect();
        let mut msg = format!("Usage of undefined variable '${name}'");
        if let Some(s) = did_you_mean(name, &known) {
            msg.push_str(&format!(" (did you mean ${s}?)"));
        }
        self.linter
            .report(&lint::UNDEFINED_VAR, ins.range, &ins.prev_comment, msg);
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
        })
    }

    /// The platform of the result image: the target stage's image platform, replaced by the
    /// requested platform when `--platform` was given (BuildKit's `finalizeResultImage`).
    fn result_platform(&self, image: &Platform) -> Platform {
        let mut p = image.clone();
        if let Some(target) = &self.opts.platform {
            let same_os_arch = target.os == p.os && target.architecture == p.architecture;
            p.os = target.os.clone();
            p.architecture = target.architecture.clone();
            if target.variant.is_some() || !same_os_arch {
                p.variant = target.variant.clone();
            }
        }
        Platform::parse(&p.to_string()).unwrap_or(p)
    }

    fn stage_index(&self, name: &str) -> Option<usize> {
        let lower = name.to_lowercase();
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
    }

    fn lint_from(&mut self, ins: &Instruction, f: &FromCmd) {
        if let Some(written) = &f.name_as_written
            && written != &written.to_lowercase()
        {
            self.linter.report(
                &lint::STAGE_NAME_CASING,
                ins.range,
                &ins.prev_comment,
                format!("Stage name '{written}' should be lowercase"),
            );
        }
        if let Some(as_word) = &f.as_word {
            let from_lower = ins.word == ins.word.to_lowercase();
            let from_upper = ins.word == ins.word.to_uppercase();
            let mismatch = (from_lower && as_word != &as_word.to_lowercase())
                || (from_upper && as_word != &as_word.to_uppercase());
            if (from_lower || from_upper) && mismatch {
                self.linter.report(
                    &lint::FROM_AS_CASING,
                    ins.range,
                    &ins.prev_comment,
                    format!(
                        "'{as_word}' and '{}' keywords' casing do not match",
                        ins.word
                    ),
                );
            }
        }
        if let Some(name) = &f.name {
            check_description(&mut self.linter, ins, "FROM", &[name.as_str()]);
        }
    }

    fn lint_stage_names(&mut self) {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let items: Vec<(String, LineRange, Vec<String>)> = self
            .stages
            .iter()
            .filter_map(|s| {
                s.name
                    .clone()
                    .map(|n| (n, s.from_range, s.from_comments.clone()))
            })
            .collect();
        for (name, range, comments) in items {
            if name == "scratch" || name == "context" {
                self.linter.report(
                    &lint::RESERVED_STAGE_NAME,
                    range,
                    &comments,
                    format!("Stage name should not use the same name as reserved stage {name:?}"),
                );
            }
            if !seen.insert(name.clone()) {
                self.linter.report(
                    &lint::DUPLICATE_STAGE_NAME,
                    range,
                    &comments,
                    format!("Duplicate stage name {name:?}, stage names should be unique"),
                );
            }
        }
    }

    /// Global ARGs and the automatic platform ARGs.
    fn meta_args(&mut self, global: &[Instruction]) {
        let mut automatic = platform_args("BUILD", &self.opts.build_platform);
        automatic.extend(platform_args("TARGET", &self.target_platform));
        for (k, v) in automatic {
            let v = self.opts.build_args.get(&k).cloned().unwrap_or(v);
            self.meta.set(&k, &v);
            self.meta_declared.set(&k, None);
        }
        self.meta_declared.set("TARGETSTAGE", None);
        for ins in global {
            let Command::Arg { args } = &ins.command else {
                continue;
            };
            for ArgDef { key, value } in args {
                if lint::looks_secret(key) {
                    self.linter.report(
                        &lint::SECRETS_USED_IN_ARG_OR_ENV,
                        ins.range,
                        &ins.prev_comment,
                        format!(
                            "Do not use ARG or ENV instructions for sensitive data (ARG {key:?})"
                        ),
                    );
                }
                self.meta_declared.set(key, None);
                if let Some(v) = self.opts.build_args.get(key) {
                    self.used_build_args.insert(key.clone());
                    let v = v.clone();
                    self.meta.set(key, &v);
                } else if let Some(def) = value {
                    let declared = std::mem::take(&mut self.meta_declared);
                    let meta = std::mem::take(&mut self.meta);
                    let expanded = self.expand(def, &meta, &declared, ins);
                    self.meta = meta;
                    self.meta_declared = declared;
                    if let Some(v) = expanded {
                        self.meta.set(key, &v);
                    }
                }
            }
            let keys: Vec<&str> = args.iter().map(|a| a.key.as_str()).collect();
            check_description(&mut self.linter, ins, "ARG", &keys);
        }
    }

    fn warn_unused_build_args(&mut self) {
        for k in self.opts.build_args.keys() {
            if self.used_build_args.contains(k)
                || PROXY_ARGS.contains(&k.as_str())
                || k.starts_with("BUILDKIT_")
                || k == "SOURCE_DATE_EPOCH"
                || k.starts_with("BUILD")
                || k.starts_with("TARGET")
            {
                continue;
            }
            self.diags.push(
                Diagnostic::warning(LineRange::default(), format!("build argument {k:?} was given but no stage that was built declares it with ARG"))
                .with_hint(format!("declare it with ARG {k} in the stage that uses it, or drop --build-arg {k}")),
            );
        }
    }

    /// Lowers stage `i` (once) and returns its final state.
    /// The stages `target` needs through references that are known without lowering: FROM
    /// (global ARGs only), and `--from` / `from=` values without variables. Sorted, target
    /// excluded.
    fn static_dependencies(&self, target: usize) -> Vec<usize> {
        let mut seen = vec![false; self.stages.len()];
        let mut stack = vec![target];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            let stage = &self.stages[i];
            let mut refs: Vec<String> = Vec::new();
            if let Ok(e) = self.lexer.process_word(&stage.from.base, &self.meta) {
                refs.push(e.result);
            }
            for ins in &stage.commands {
                match &ins.command {
                    Command::Copy(c) | Command::Add(c) if !c.from.is_empty() => {
                        refs.push(c.from.clone())
                    }
                    Command::Run(r) => {
                        for m in &r.mounts {
                            if let Ok(m) = mount::parse_mount(m, None)
                                && !m.from.is_empty()
                            {
                                refs.push(m.from);
                            }
                        }
                    }
                    _ => {}
                }
            }
            for r in refs.iter().filter(|r| !r.contains('$')) {
                let j = self
                    .stage_index(r)
                    .or_else(|| r.parse::<usize>().ok().filter(|n| *n < self.stages.len()));
                if let Some(j) = j.filter(|j| *j < i) {
                    stack.push(j);
                }
            }
        }
        (0..self.stages.len())
            .filter(|j| seen[*j] && *j != target)
            .collect()
    }

    fn lower_stage(&mut self, i: usize) -> Option<State> {
        if let Some(s) = &self.done[i] {
            return Some(s.clone());
        }
        if self.depth >= MAX_STAGE_RECURSION {
            let r = self.stages[i].from_range;
            self.error_hint(
                r,
                format!("stage {} is reached through more than {MAX_STAGE_RECURSION} nested --from references with variables", self.stage_label(i)),
                "name the stages in --from directly, or with global ARGs",
            );
            return None;
        }
        if std::mem::replace(&mut self.attempted[i], true) && !self.in_progress[i] {
            // Lowered before and failed: its errors are already reported.
            return None;
        }
        if self.in_progress[i] {
            let r = self.stages[i].from_range;
            self.error(
                r,
                format!(
                    "circular dependency detected on stage: {}",
                    self.stage_label(i)
                ),
            );
            return None;
        }
        self.in_progress[i] = true;
        self.depth += 1;
        let state = self.lower_stage_inner(i);
        self.depth -= 1;
        self.in_progress[i] = false;
        self.done[i] = state.clone();
        state
    }

    fn stage_label(&self, i: usize) -> String {
        self.stages[i]
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{i}"))
    }

    fn is_no_cache(&self, i: usize) -> bool {
        self.opts.no_cache
            || self.stages[i].name.as_ref().is_some_and(|n| {
                self.opts
                    .no_cache_filter
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(n))
            })
    }

    fn step_name(&self, i: usize, step: usize, total: usize, text: &str) -> String {
        if self.multi_stage {
            format!("[{} {step}/{total}] {text}", self.stage_label(i))
        } else {
            format!("[{step}/{total}] {text}")
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

    // Long: the three ways a stage starts (scratch, another stage, an image), each setting up the same state.
    fn lower_stage_inner(&mut self, i: usize) -> Option<State> {
        let from = self.stages[i].from.clone();
        let from_range = self.stages[i].from_range;
        let total = self.stages[i].commands.len() + 1;
        let ignore_cache = self.is_no_cache(i);
        let stage_name = self.stage_label(i);
        let from_ins = Instruction {
            command: Command::From(from.clone()),
            word: "FROM".into(),
            range: from_range,
            original: String::new(),
            prev_comment: self.stages[i].from_comments.clone(),
            flags_used: vec![],
        };
        // FROM: global args only.
        let base = match self.lexer.process_word(&from.base, &self.meta) {
            Ok(e) => e.result,
            Err(err) => {
                self.error(from_range, format!("FROM: {err}"));
                return None;
            }
        };
        if base.is_empty() {
            self.error_hint(
                from_range,
                "base name (FROM) should not be blank",
                format!(
                    "{} expands to an empty string: give the ARG a default or pass --build-arg",
                    from.base
                ),
            );
            return None;
        }
        let mut platform = self.target_platform.clone();
        if !from.platform.is_empty() {
            let p = match self.lexer.process_word(&from.platform, &self.meta) {
                Ok(e) => e.result,
                Err(err) => {
                    self.error(from_range, format!("FROM --platform: {err}"));
                    return None;
                }
            };
            if from.platform.contains("TARGETPLATFORM")
                && from.platform.trim_matches(['$', '{', '}']) == "TARGETPLATFORM"
            {
                self.linter.report(&lint::REDUNDANT_TARGET_PLATFORM, from_range, &from_ins.prev_comment, format!("Setting platform to predefined {} in FROM is redundant as this is the default behavior", from.platform));
            } else if !from.platform.contains('$') {
                let mentions = self.stages[i].name.as_ref().is_some_and(|n| {
                    let pl = from.platform.to_lowercase();
                    pl.split('/').any(|part| n.contains(part))
                });
                if !mentions {
                    self.linter.report(
                        &lint::FROM_PLATFORM_FLAG_CONST_DISALLOWED,
                        from_range,
                        &from_ins.prev_comment,
                        format!(
                            "FROM --platform flag should not use constant value {:?}",
                            from.platform
                        ),
                    );
                }
            }
            if p.is_empty() {
                self.error(from_range, "FROM --platform expands to an empty value");
                return None;
            }
            match Platform::parse(&p) {
                Ok(pl) => platform = pl,
                Err(e) => {
                    self.error(from_range, e.to_string());
                    return None;
                }
            }
        }

        // The base: an earlier stage, scratch, or an image.
        let mut state = if let Some(j) = self.stage_index(&base).filter(|j| *j < i) {
            let mut s = self.lower_stage(j)?;
            s.ignore_cache = ignore_cache;
            s.cmd_set = false;
            let triggers = std::mem::take(&mut s.config.on_build);
            self.run_triggers(i, &mut s, &triggers, from_range);
            s
        } else if self.stage_index(&base) == Some(i) {
            self.error(
                from_range,
                format!("circular dependency detected on stage: {base}"),
            );
            return None;
        } else if base.eq_ignore_ascii_case("scratch") {
            let op = Op {
                kind: OpKind::Source(SourceOp::Scratch),
                inputs: vec![],
                name: self.step_name(i, 1, total, "FROM scratch"),
                stage: stage_name.clone(),
                location: loc(self.opts, from_range),
                ignore_cache: false,
            };
            let op = self.add_op(op, from_range)?;
            let image_platform = self.target_platform.clone();
            let config = ImageConfig {
                working_dir: "/".into(),
                ..ImageConfig::default()
            };
            let path = if image_platform.os == "windows" {
                Vars::default()
            } else {
                Vars::from_env_list(&[format!("PATH={DEFAULT_PATH}")])
            };
            State {
                env: path.clone(),
                config_env: path,
                op,
                config,
                history: vec![],
                author: String::new(),
                platform: platform.clone(),
                image_platform,
                args: Args::default(),
                workdir_set: false,
                cmd_set: false,
                ignore_cache,
            }
        } else {
            let reference = match Reference::parse(&base) {
                Ok(r) => r.to_string(),
                Err(e) => {
                    self.error_hint(
                        from_range,
                        format!("FROM {base}: {e}"),
                        "an image reference looks like name[:tag][@digest], e.g. busybox:1.36",
                    );
                    return None;
                }
            };
            let (op, resolved) = self.image_source(
                &reference,
                &platform,
                self.step_name(i, 1, total, &format!("FROM {reference}")),
                &stage_name,
                from_range,
            )?;
            let resolved = resolved.unwrap_or_default();
            let image_platform = resolved
                .platform
                .clone()
                .filter(|p| !p.os.is_empty() && !p.architecture.is_empty())
                .unwrap_or_else(|| platform.clone());
            let mut config = resolved.config.clone();
            let triggers = std::mem::take(&mut config.on_build);
            if config.env_get("PATH").is_none() && platform.os != "windows" {
                config.env_set("PATH", DEFAULT_PATH);
            }
            let env = Vars::from_env_list(&config.env);
            let mut s = State {
                op,
                config_env: env.clone(),
                env,
                config,
                history: resolved.history.clone(),
                author: resolved.author.clone(),
                platform: platform.clone(),
                image_platform,
                args: Args::default(),
                workdir_set: false,
                cmd_set: false,
                ignore_cache,
            };
            self.run_triggers(i, &mut s, &triggers, from_range);
            s
        };

        let commands = self.stages[i].commands.clone();
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (n, ins) in commands.iter().enumerate() {
            let kind = match &ins.command {
                Command::Cmd(_) => Some("CMD"),
                Command::Entrypoint(_) => Some("ENTRYPOINT"),
                Command::Healthcheck(_) => Some("HEALTHCHECK"),
                _ => None,
            };
            if let Some(k) = kind {
                let c = counts.entry(k).or_default();
                *c += 1;
                if *c > 1 {
                    self.linter.report(&lint::MULTIPLE_INSTRUCTIONS_DISALLOWED, ins.range, &ins.prev_comment, format!("Multiple {k} instructions should not be used in the same stage because only the last one will be used"));
                }
            }
            let name = self.step_name(i, n + 2, total, &display(ins));
            self.dispatch(i, &mut state, ins, name);
        }
        state.config.env = state.config_env.to_env_list();
        Some(state)
    }

    /// FROM lines of every stage (built or not) may only use global ARGs.
    fn lint_from_args(&mut self) {
        let froms: Vec<(FromCmd, LineRange, Vec<String>)> = self
            .stages
            .iter()
            .map(|s| (s.from.clone(), s.from_range, s.from_comments.clone()))
            .collect();
        for (from, range, comments) in froms {
            let Ok(e) = self.lexer.process_word(&from.base, &self.meta) else {
                continue;
            };
            for name in &e.unmatched {
                if self.meta_declared.contains(name) {
                    continue;
                }
                let names: Vec<&str> = self.meta_declared.names().collect();
                let mut msg = format!("FROM argument '{name}' is not declared");
                if let Some(s) = did_you_mean(name, &names) {
                    msg.push_str(&format!(" (did you mean {s}?)"));
                }
                self.linter
                    .report(&lint::UNDEFINED_ARG_IN_FROM, range, &comments, msg);
            }
            self.lint_default_arg_in_from(&from, range, &comments);
        }
    }

    fn lint_default_arg_in_from(&mut self, from: &FromCmd, range: LineRange, comments: &[String]) {
        if !from.base.contains('$') {
            return;
        }
        // Expand with defaults only (no --build-arg values).
        let mut defaults = Vars::default();
        for (k, v) in self.meta.iter() {
            if !self.opts.build_args.contains_key(k)
                || k.starts_with("TARGET")
                || k.starts_with("BUILD")
            {
                defaults.set(k, v);
            }
        }
        let mut lex = self.lexer.clone();
        lex.skip_unset_env = false;
        let ok = match lex.process_word(&from.base, &defaults) {
            Ok(e) => {
                !e.result.is_empty()
                    && (e.result.eq_ignore_ascii_case("scratch")
                        || Reference::parse(&e.result).is_ok()
                        || self.stage_index(&e.result).is_some())
            }
            Err(_) => false,
        };
        if !ok {
            self.linter.report(
                &lint::INVALID_DEFAULT_ARG_IN_FROM,
                range,
                comments,
                format!(
                    "Default value for ARG {} results in empty or invalid base image name",
                    from.base
                ),
            );
        }
    }

    fn image_source(
        &mut self,
        reference: &str,
        platform: &Platform,
        name: String,
        stage: &str,
        range: LineRange,
    ) -> Option<(OpId, Option<ResolvedImage>)> {
        let key = (reference.to_string(), platform.to_string());
        if let Some((op, r)) = self.images.get(&key) {
            return Some((*op, r.clone()));
        }
        let resolved = match self.resolver.resolve(reference, platform) {
            Ok(r) => r,
            Err(e) => {
                self.error(range, format!("failed to resolve image {reference}: {e}"));
                return None;
            }
        };
        let op = Op {
            kind: OpKind::Source(SourceOp::Image {
                reference: reference.to_string(),
                platform: platform.clone(),
                resolved_digest: resolved.as_ref().and_then(|r| r.digest.clone()),
            }),
            inputs: vec![],
            name,
            stage: stage.to_string(),
            location: loc(self.opts, range),
            ignore_cache: false,
        };
        let op = self.add_op(op, range)?;
        self.images.insert(key, (op, resolved.clone()));
        Some((op, resolved))
    }

    fn run_triggers(&mut self, i: usize, state: &mut State, triggers: &[String], range: LineRange) {
        for t in triggers {
            let (ast, diags) = parser::parse(t);
            for d in diags.into_iter().filter(Diagnostic::is_error) {
                self.error(range, format!("ONBUILD trigger {t:?}: {}", d.message));
            }
            for node in &ast.children {
                match instructions::parse_instruction(node) {
                    Ok(mut ins) => {
                        if matches!(
                            ins.command,
                            Command::From(_) | Command::Onbuild { .. } | Command::Maintainer { .. }
                        ) {
                            self.error(
                                range,
                                format!(
                                    "{} isn't allowed as an ONBUILD trigger",
                                    ins.word.to_uppercase()
                                ),
                            );
                            continue;
                        }
                        ins.range = range;
                        let name = format!(
                            "{} ONBUILD {}",
                            if self.multi_stage {
                                format!("[{}]", self.stage_label(i))
                            } else {
                                String::new()
                            },
                            display(&ins)
                        )
                        .trim()
                        .to_string();
                        self.dispatch(i, state, &ins, name);
                    }
                    Err(d) => self.error(range, format!("ONBUILD trigger {t:?}: {}", d.message)),
                }
            }
        }
    }

    /// A history entry for a metadata instruction (no layer).
    fn history(state: &mut State, created_by: String, layer: bool) {
        Self::commit_history(state, created_by, layer, false);
    }

    /// A history entry for an instruction that ran as a build step: RUN, COPY and ADD, whose
    /// `created_by` ends in ` # buildkit`.
    fn step_history(state: &mut State, created_by: String) {
        Self::commit_history(state, created_by, true, true);
    }

    fn commit_history(state: &mut State, created_by: String, layer: bool, step: bool) {
        state.history.push(HistoryEntry {
            created_by: if step {
                format!("{created_by} # buildkit")
            } else {
                created_by
            },
            comment: HISTORY_COMMENT.into(),
            empty_layer: !layer,
            ..HistoryEntry::default()
        });
    }

    // Long: one match arm per instruction that is not RUN or COPY/ADD, each a few lines.
    fn dispatch(&mut self, i: usize, state: &mut State, ins: &Instruction, name: String) {
        match &ins.command {
            Command::From(_) => {}
            Command::Env { pairs, legacy } => {
                if *legacy {
                    self.linter.report(&lint::LEGACY_KEY_VALUE_FORMAT, ins.range, &ins.prev_comment, "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format".into());
                }
                let mut msg = String::from("ENV");
                let mut expanded = Vec::with_capacity(pairs.len());
                for kv in pairs {
                    let Some(k) = self.expand(&kv.key, &state.env, &state.args, ins) else {
                        return;
                    };
                    let Some(v) = self.expand(&kv.value, &state.env, &state.args, ins) else {
                        return;
                    };
                    expanded.push((k, v));
                }
                for (k, v) in expanded {
                    if lint::looks_secret(&k) {
                        self.linter.report(
                            &lint::SECRETS_USED_IN_ARG_OR_ENV,
                            ins.range,
                            &ins.prev_comment,
                            format!(
                                "Do not use ARG or ENV instructions for sensitive data (ENV {k:?})"
                            ),
                        );
                    }
                    msg.push_str(&format!(" {k}={v}"));
                    state.env.set(&k, &v);
                    state.config_env.set(&k, &v);
                }
                Self::history(state, msg, false);
            }
            Command::Label { pairs, legacy } => {
                if *legacy {
                    self.linter.report(&lint::LEGACY_KEY_VALUE_FORMAT, ins.range, &ins.prev_comment, "\"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format".into());
                }
                let mut msg = String::from("LABEL");
                for kv in pairs {
                    let Some(k) = self.expand(&kv.key, &state.env, &state.args, ins) else {
                        return;
                    };
                    let Some(v) = self.expand(&kv.value, &state.env, &state.args, ins) else {
                        return;
                    };
                    msg.push_str(&format!(" {k}={v}"));
                    state.config.labels.insert(k, v);
                }
                Self::history(state, msg, false);
            }
            Command::Arg { args } => self.dispatch_arg(state, ins, args),
            Command::Run(run) => self.dispatch_run(i, state, ins, run, name),
            Command::Copy(c) | Command::Add(c) => self.dispatch_copy(i, state, ins, c, name),
            Command::Workdir { path } => {
                let Some(p) = self.expand(path, &state.env, &state.args, ins) else {
                    return;
                };
                if !state.workdir_set && !p.starts_with('/') {
                    self.linter.report(&lint::WORKDIR_RELATIVE_PATH, ins.range, &ins.prev_comment, format!("Relative workdir {p:?} can have unexpected results if the base image changes"));
                }
                state.workdir_set = true;
                let base = if state.config.working_dir.is_empty() {
                    "/"
                } else {
                    state.config.working_dir.as_str()
                };
                let wd = clean(&normalize(base, &p, false));
                state.config.working_dir = wd.clone();
                let layer = wd != "/";
                if layer {
                    let chown =
                        (!state.config.user.is_empty()).then(|| split_chown(&state.config.user));
                    let op = Op {
                        kind: OpKind::File {
                            base: true,
                            actions: vec![FileAction::Mkdir {
                                path: wd.clone(),
                                mode: 0o755,
                                make_parents: true,
                                chown,
                            }],
                        },
                        inputs: vec![state.op],
                        name,
                        stage: self.stage_label(i),
                        location: loc(self.opts, ins.range),
                        ignore_cache: state.ignore_cache,
                    };
                    let Some(id) = self.add_op(op, ins.range) else {
                        return;
                    };
                    state.op = id;
                }
                Self::history(state, format!("WORKDIR {wd}"), layer);
            }
            Command::User { user } => {
                let Some(u) = self.expand(user, &state.env, &state.args, ins) else {
                    return;
                };
                state.config.user = u.clone();
                Self::history(state, format!("USER {u}"), false);
            }
            Command::Expose { ports } => {
                let mut all = Vec::new();
                let mut exposed = Vec::new();
                for p in ports {
                    match self.lexer.process_words(p, &state.env) {
                        Ok(words) => all.extend(words),
                        Err(e) => {
                            self.error(ins.range, format!("EXPOSE: {e}"));
                            return;
                        }
                    }
                }
                for p in &all {
                    if let Some((_, proto)) = p.rsplit_once('/')
                        && proto != proto.to_lowercase()
                    {
                        self.linter.report(
                            &lint::EXPOSE_PROTO_CASING,
                            ins.range,
                            &ins.prev_comment,
                            format!(
                                "Defined protocol '{p}' in EXPOSE instruction should be lowercase"
                            ),
                        );
                    }
                    match util::parse_expose(p) {
                        Ok((keys, had_host)) => {
                            if had_host {
                                self.linter.report(&lint::EXPOSE_INVALID_FORMAT, ins.range, &ins.prev_comment, format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{p}'"));
                            }
                            for k in keys {
                                state.config.exposed_ports.insert(k.clone(), Empty {});
                                exposed.push(k);
                            }
                        }
                        Err(e) => {
                            self.error_hint(
                                ins.range,
                                format!("EXPOSE {p}: {e}"),
                                "write EXPOSE <port>[/tcp|udp|sctp] or a range like 8000-8010/tcp",
                            );
                            return;
                        }
                    }
                }
                Self::history(state, format!("EXPOSE [{}]", exposed.join(" ")), false);
            }
            Command::Volume { volumes } => {
                let mut vs = Vec::new();
                for v in volumes {
                    let Some(e) = self.expand(v, &state.env, &state.args, ins) else {
                        return;
                    };
                    if e.is_empty() {
                        self.error(ins.range, "VOLUME specified can not be an empty string");
                        return;
                    }
                    state.config.volumes.insert(e.clone(), Empty {});
                    vs.push(e);
                }
                Self::history(state, format!("VOLUME [{}]", vs.join(" ")), false);
            }
            Command::Stopsignal { signal } => {
                let Some(s) = self.expand(signal, &state.env, &state.args, ins) else {
                    return;
                };
                if !util::valid_signal(&s) {
                    self.error_hint(
                        ins.range,
                        format!("STOPSIGNAL: invalid signal {s:?}"),
                        "use a signal name such as SIGTERM or a number",
                    );
                    return;
                }
                state.config.stop_signal = s.clone();
                Self::history(state, format!("STOPSIGNAL {s}"), false);
            }
            Command::Cmd(c) => {
                self.json_args_lint(state, ins, c, "CMD");
                let args = self.with_shell(state, c);
                state.config.cmd = Some(args.clone());
                state.config.args_escaped = true;
                state.cmd_set = true;
                Self::history(state, format!("CMD {}", go_q_list(&args)), false);
            }
            Command::Entrypoint(c) => {
                self.json_args_lint(state, ins, c, "ENTRYPOINT");
                let args = if c.args.is_empty() && !c.prepend_shell {
                    vec![]
                } else {
                    self.with_shell(state, c)
                };
                state.config.entrypoint = if args.is_empty() {
                    None
                } else {
                    Some(args.clone())
                };
                if !state.cmd_set {
                    state.config.cmd = None;
                }
                Self::history(state, format!("ENTRYPOINT {}", go_q_list(&args)), false);
            }
            Command::Shell { shell } => {
                state.config.shell = Some(shell.clone());
                Self::history(state, format!("SHELL [{}]", shell.join(" ")), false);
            }
            Command::Healthcheck(h) => {
                let hc = HealthConfig {
                    test: h.test.clone(),
                    interval: h.interval,
                    timeout: h.timeout,
                    start_period: h.start_period,
                    start_interval: h.start_interval,
                    retries: h.retries,
                };
                let msg = format!("HEALTHCHECK {}", go_healthcheck(&hc));
                state.config.healthcheck = Some(hc);
                Self::history(state, msg, false);
            }
            Command::Onbuild { expression } => {
                state.config.on_build.push(expression.clone());
            }
            Command::Maintainer { maintainer } => {
                self.linter.report(
                    &lint::MAINTAINER_DEPRECATED,
                    ins.range,
                    &ins.prev_comment,
                    "Maintainer instruction is deprecated in favor of using label".into(),
                );
                state.author = maintainer.clone();
                Self::history(state, format!("MAINTAINER {maintainer}"), false);
            }
        }
    }

    fn json_args_lint(&mut self, state: &State, ins: &Instruction, c: &CmdLine, name: &str) {
        if c.prepend_shell && state.config.shell.is_none() && !c.args.is_empty() {
            self.linter.report(&lint::JSON_ARGS_RECOMMENDED, ins.range, &ins.prev_comment, format!("JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"));
        }
    }

    fn shell_of(state: &State) -> Vec<String> {
        state
            .config
            .shell
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| default_shell(&state.image_platform.os))
    }

    fn with_shell(&self, state: &State, c: &CmdLine) -> Vec<String> {
        if c.prepend_shell {
            let mut s = Self::shell_of(state);
            s.push(c.args.join(" "));
            s
        } else {
            c.args.clone()
        }
    }

    fn dispatch_arg(&mut self, state: &mut State, ins: &Instruction, args: &[ArgDef]) {
        let mut parts = Vec::new();
        for ArgDef { key, value } in args {
            if lint::looks_secret(key) {
                self.linter.report(
                    &lint::SECRETS_USED_IN_ARG_OR_ENV,
                    ins.range,
                    &ins.prev_comment,
                    format!("Do not use ARG or ENV instructions for sensitive data (ARG {key:?})"),
                );
            }
            let from_cli = self.opts.build_args.get(key).cloned();
            if from_cli.is_some() {
                self.used_build_args.insert(key.clone());
            }
            let v = if let Some(v) = from_cli {
                Some(v)
            } else if let Some(def) = value {
                let env = &state.env;
                let declared = &state.args;
                let Some(e) = self.expand(def, env, declared, ins) else {
                    return;
                };
                Some(e)
            } else {
                self.meta
                    .get(key)
                    .map(str::to_string)
                    .filter(|_| self.meta_declared.contains(key))
            };
            if let Some(v) = &v
                && !NON_ENV_ARGS.contains(&key.as_str())
            {
                state.env.set(key, v);
            }
            parts.push(match &v {
                Some(v) => format!("{key}={v}"),
                None => key.clone(),
            });
            state.args.set(key, v);
        }
        let keys: Vec<&str> = args.iter().map(|a| a.key.as_str()).collect();
        check_description(&mut self.linter, ins, "ARG", &keys);
        Self::history(state, format!("ARG {}", parts.join(" ")), false);
    }

    /// Resolves a `--from` / `from=` value: a stage (name or, for COPY, index) or an image.
    fn resolve_from(
        &mut self,
        i: usize,
        state: &State,
        raw: &str,
        allow_index: bool,
        ins: &Instruction,
    ) -> Option<OpId> {
        let env = Layered(&state.env, &self.meta);

        let value = if raw.contains('$') {
            match self.lexer.process_word(raw, &env) {
                Ok(e) => {
                    for n in &e.unmatched {
                        if !state.args.contains(n) && !self.meta_declared.contains(n) {
                            self.linter.report(
                                &lint::UNDEFINED_VAR,
                                ins.range,
                                &ins.prev_comment,
                                format!("Usage of undefined variable '${n}'"),
                            );
                        }
                    }
                    e.result
                }
                Err(e) => {
                    self.error(ins.range, format!("--from: {e}"));
                    return None;
                }
            }
        } else {
            raw.to_string()
        };
        if value.is_empty() {
            self.error_hint(
                ins.range,
                format!("--from={raw} expands to an empty value"),
                "pass the stage or image name, e.g. with --build-arg",
            );
            return None;
        }
        let stage = self.stage_index(&value).or_else(|| {
            if allow_index {
                value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n < self.stages.len())
            } else {
                None
            }
        });
        if let Some(j) = stage {
            if j >= i {
                let msg = if j == i {
                    format!(
                        "circular dependency detected on stage: {}",
                        self.stage_label(i)
                    )
                } else {
                    format!(
                        "cannot copy from stage {value:?}, it needs to be defined before current stage {:?}",
                        self.stage_label(i)
                    )
                };
                self.error_hint(
                    ins.range,
                    msg,
                    "move the stage you copy from above this one",
                );
                return None;
            }
            return self.lower_stage(j).map(|s| s.op);
        }
        if value.parse::<usize>().is_ok() && allow_index {
            self.error(
                ins.range,
                format!(
                    "invalid stage index {value}: the Dockerfile has {} stages",
                    self.stages.len()
                ),
            );
            return None;
        }
        let reference = match Reference::parse(&value) {
            Ok(r) => r.to_string(),
            Err(e) => {
                self.error_hint(ins.range, format!("--from={value}: not a stage of this Dockerfile and not a valid image reference: {e}"), "name an earlier stage (AS name) or an image");
                return None;
            }
        };
        let platform = state.platform.clone();
        let name = format!("FROM {reference}");
        let stage = self.stage_label(i);
        self.image_source(&reference, &platform, name, &stage, ins.range)
            .map(|(op, _)| op)
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

    /// A heredoc as a file of its own (in an empty filesystem), for RUN scripts and COPY.
    fn inline_document(
        &mut self,
        name: &str,
        mode: u32,
        data: String,
        stage: &str,
        ins: &Instruction,
    ) -> Option<OpId> {
        let op = Op {
            kind: OpKind::File {
                base: false,
                actions: vec![FileAction::Mkfile {
                    path: format!("/{name}"),
                    mode,
                    data,
                    chown: None,
                }],
            },
            inputs: vec![],
            name: "preparing inline document".into(),
            stage: stage.to_string(),
            location: None,
            ignore_cache: false,
        };
        self.add_op(op, ins.range)
    }

    // Long: RUN's flags, heredocs, mounts, network and security, in the order BuildKit applies them.
    fn dispatch_run(
        &mut self,
        i: usize,
        state: &mut State,
        ins: &Instruction,
        run: &RunCmd,
        name: String,
    ) {
        let stage = self.stage_label(i);
        let mut inputs = vec![state.op];
        let mut mounts: Vec<Mount> = Vec::new();
        let mut args = run.cmd.args.clone();
        let mut name = name;

        // Heredocs (BuildKit's three cases).
        if !run.cmd.files.is_empty() {
            if args.len() != 1 || !run.cmd.prepend_shell {
                self.error(
                    ins.range,
                    format!("parsing produced an invalid run command: {args:?}"),
                );
                return;
            }
            let only_heredoc = matches!(parse_heredoc_word(&args[0]), Ok(Some(_)));
            if only_heredoc {
                let f: &Heredoc = &run.cmd.files[0];
                let data = if f.chomp {
                    chomp_heredoc_content(&f.content)
                } else {
                    f.content.clone()
                };
                if state.image_platform.os != "windows" && data.starts_with("#!") {
                    let Some(fid) = self.inline_document(&f.name, 0o755, data, &stage, ins) else {
                        return;
                    };
                    inputs.push(fid);
                    mounts.push(Mount {
                        target: "/dev/pipes/".into(),
                        input: Some(inputs.len() - 1),
                        source: "/".into(),
                        readonly: true,
                        kind: MountKind::Bind,
                    });
                    args = vec![format!("/dev/pipes/{}", f.name)];
                } else {
                    args = vec![data];
                }
                name = format!("{name} ({})", summarize_heredoc(&f.content));
            } else {
                let mut s = args[0].clone();
                for f in &run.cmd.files {
                    s.push('\n');
                    s.push_str(&f.content);
                    s.push_str(&f.name);
                }
                args = vec![s];
            }
        }
        let argv = if run.cmd.prepend_shell {
            let mut s = Self::shell_of(state);
            s.push(args.join(" "));
            s
        } else {
            args.clone()
        };
        if argv.is_empty() {
            self.error_hint(ins.range, "RUN requires a command", "write RUN <command>");
            return;
        }

        // Mounts.
        let env = &state.env;
        let declared = &state.args;
        for raw in &run.mounts {
            let lexer = self.lexer.clone();
            let unmatched = std::cell::RefCell::new(BTreeSet::new());
            let expand = |w: &str| -> Result<String, String> {
                lexer
                    .process_word(w, env)
                    .map(|e| {
                        unmatched.borrow_mut().extend(e.unmatched);
                        e.result
                    })
                    .map_err(|e| e.to_string())
            };
            let m = match mount::parse_mount(raw, Some(&expand)) {
                Ok(m) => m,
                Err(e) => {
                    self.error_hint(ins.range, format!("RUN --mount={raw}: {e}"), "see the RUN --mount reference: type=bind|cache|tmpfs|secret|ssh with target=...");
                    return;
                }
            };
            for n in unmatched.into_inner() {
                self.report_undefined(&n, env, declared, ins);
            }
            let workdir = if state.config.working_dir.is_empty() {
                "/".to_string()
            } else {
                state.config.working_dir.clone()
            };
            // A relative (or empty) target is joined with the working directory, as in
            // BuildKit; secrets and ssh sockets have their own defaults when it is empty.
            let target =
                if m.target.is_empty() && matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    String::new()
                } else {
                    clean(&normalize(&workdir, &m.target, false))
                };
            if target == "/" {
                self.error_hint(
                    ins.range,
                    format!("RUN --mount={raw}: invalid mount target \"/\""),
                    "give the mount a target directory, e.g. target=/mnt",
                );
                return;
            }
            let from_input = if m.from.is_empty() {
                None
            } else {
                let Some(op) = self.resolve_from(i, state, &m.from, false, ins) else {
                    return;
                };
                inputs.push(op);
                Some(inputs.len() - 1)
            };
            let (kind, target) = match m.kind {
                MountType::Bind => {
                    let input = match from_input {
                        Some(x) => x,
                        None => {
                            let src = clean(&format!("/{}", m.source));
                            let Some(ctx) = self.context_source(
                                vec![src.trim_start_matches('/').to_string()],
                                ins,
                                &stage,
                            ) else {
                                return;
                            };
                            inputs.push(ctx);
                            inputs.len() - 1
                        }
                    };
                    mounts.push(Mount {
                        target,
                        input: Some(input),
                        source: clean(&format!("/{}", m.source)),
                        readonly: m.readonly,
                        kind: MountKind::Bind,
                    });
                    continue;
                }
                MountType::Cache => {
                    let id = if m.id.is_empty() {
                        clean(&m.target)
                    } else {
                        m.id.clone()
                    };
                    let id = match self.opts.build_args.get("BUILDKIT_CACHE_MOUNT_NS") {
                        Some(ns) if !ns.is_empty() => format!("{ns}/{id}"),
                        _ => id,
                    };
                    (
                        MountKind::Cache {
                            id,
                            sharing: match m.sharing {
                                Some(Sharing::Private) => CacheSharing::Private,
                                Some(Sharing::Locked) => CacheSharing::Locked,
                                _ => CacheSharing::Shared,
                            },
                            mode: m.mode.unwrap_or(0o755),
                            uid: m.uid.unwrap_or(0),
                            gid: m.gid.unwrap_or(0),
                        },
                        target,
                    )
                }
                MountType::Tmpfs => (MountKind::Tmpfs { size: m.size_limit }, target),
                MountType::Secret => {
                    let id = if !m.id.is_empty() {
                        m.id.clone()
                    } else if !m.source.is_empty() {
                        m.source.clone()
                    } else {
                        target.rsplit('/').next().unwrap_or_default().to_string()
                    };
                    let target = if target.is_empty() && m.env.is_none() {
                        format!("/run/secrets/{}", mount::secret_base_name(&id))
                    } else {
                        target
                    };
                    (
                        MountKind::Secret {
                            id,
                            env: m.env.clone(),
                            required: m.required,
                            mode: m.mode.unwrap_or(0o400),
                            uid: m.uid.unwrap_or(0),
                            gid: m.gid.unwrap_or(0),
                        },
                        target,
                    )
                }
                MountType::Ssh => {
                    if !m.source.is_empty() {
                        self.error(
                            ins.range,
                            format!("RUN --mount={raw}: source can't be set for ssh mounts"),
                        );
                        return;
                    }
                    let n = mounts
                        .iter()
                        .filter(|x| matches!(x.kind, MountKind::Ssh { .. }))
                        .count();
                    let target = if target.is_empty() {
                        format!("/run/buildkit/ssh_agent.{n}")
                    } else {
                        target
                    };
                    (
                        MountKind::Ssh {
                            id: if m.id.is_empty() {
                                "default".into()
                            } else {
                                m.id.clone()
                            },
                            required: m.required,
                            mode: m.mode.unwrap_or(0o600),
                            uid: m.uid.unwrap_or(0),
                            gid: m.gid.unwrap_or(0),
                        },
                        target,
                    )
                }
            };
            mounts.push(Mount {
                target,
                input: from_input,
                source: if from_input.is_some() {
                    clean(&format!("/{}", m.source))
                } else {
                    String::new()
                },
                readonly: m.readonly,
                kind,
            });
        }
        if !run.devices.is_empty() {
            self.error_hint(
                ins.range,
                "RUN --device (CDI devices) is not supported by strata",
                "remove --device; strata builds run without host devices",
            );
            return;
        }
        // SSH_AUTH_SOCK for the first ssh mount.
        let mut env_list = state.env.to_env_list();
        if let Some(first_ssh) = mounts
            .iter()
            .find(|m| matches!(m.kind, MountKind::Ssh { .. }))
            && state.env.get("SSH_AUTH_SOCK").is_none()
        {
            env_list.push(format!("SSH_AUTH_SOCK={}", first_ssh.target));
        }
        let proxy_env: Vec<String> = PROXY_ARGS
            .iter()
            .filter(|k| state.env.get(k).is_none())
            .filter_map(|k| self.opts.build_args.get(*k).map(|v| format!("{k}={v}")))
            .collect();
        let exec = ExecOp {
            args: argv.clone(),
            env: env_list,
            cwd: if state.config.working_dir.is_empty() {
                "/".into()
            } else {
                state.config.working_dir.clone()
            },
            user: state.config.user.clone(),
            hostname: self
                .opts
                .build_args
                .get("BUILDKIT_SANDBOX_HOSTNAME")
                .cloned()
                .unwrap_or_else(|| DEFAULT_HOSTNAME.into()),
            network: match run.network.as_str() {
                "none" => NetworkMode::None,
                "host" => NetworkMode::Host,
                _ => NetworkMode::Default,
            },
            security: if run.security == "insecure" {
                SecurityMode::Insecure
            } else {
                SecurityMode::Sandbox
            },
            mounts,
            proxy_env,
        };
        let op = Op {
            kind: OpKind::Exec(exec),
            inputs,
            name,
            stage,
            location: loc(self.opts, ins.range),
            ignore_cache: state.ignore_cache,
        };
        let Some(id) = self.add_op(op, ins.range) else {
            return;
        };
        state.op = id;
        // History: `RUN |N K=V ... argv`.
        let build_env: Vec<String> = state
            .args
            .iter()
            .map(|(k, v)| format!("{k}={}", state.env.get(k).or(v).unwrap_or_default()))
            .collect();
        let mut words = Vec::new();
        if !build_env.is_empty() {
            words.push(format!("|{}", build_env.len()));
            words.extend(build_env);
        }
        words.extend(argv);
        Self::step_history(state, format!("RUN {}", words.join(" ")));
    }

    // Long: COPY and ADD's flags and source forms (context, stage, image, URL, Git, heredoc), in BuildKit's order.
    fn dispatch_copy(
        &mut self,
        i: usize,
        state: &mut State,
        ins: &Instruction,
        c: &CopyCmd,
        name: String,
    ) {
        let stage = self.stage_label(i);
        let word = if c.is_add { "ADD" } else { "COPY" };
        let env = &state.env;
        let declared = &state.args;
        let exp = |l: &mut Self, w: &str| l.expand(w, env, declared, ins);
        let Some(dest_raw) = exp(self, &c.dest) else {
            return;
        };
        let workdir = if state.config.working_dir.is_empty() {
            "/".to_string()
        } else {
            state.config.working_dir.clone()
        };
        let dest = dest_path(&workdir, &dest_raw);
        let chown = if c.chown.is_empty() {
            None
        } else {
            let Some(v) = exp(self, &c.chown) else { return };
            (!v.is_empty()).then(|| split_chown(&v))
        };
        let chmod = if c.chmod.is_empty() {
            None
        } else {
            let Some(v) = exp(self, &c.chmod) else { return };
            match util::parse_chmod(&v) {
                Ok(ChmodValue::Octal(m)) => Some(Chmod::Octal(m)),
                Ok(ChmodValue::Symbolic(s)) => Some(Chmod::Symbolic(s)),
                Err(e) => {
                    self.error_hint(
                        ins.range,
                        e,
                        "use an octal mode like 0755 or a symbolic mode like u=rwX,go=rX",
                    );
                    return;
                }
            }
        };
        let checksum = if c.checksum.is_empty() {
            None
        } else {
            let Some(v) = exp(self, &c.checksum) else {
                return;
            };
            Some(v)
        };
        let mut sources = Vec::new();
        for s in &c.sources {
            let Some(v) = exp(self, s) else { return };
            sources.push(v);
        }
        if checksum.is_some() {
            if sources.len() != 1 {
                self.error(
                    ins.range,
                    "checksum can't be specified for multiple sources",
                );
                return;
            }
            if !util::is_http_source(&sources[0])
                && !matches!(util::parse_git_ref(&sources[0]), Ok(Some(_)))
            {
                self.error_hint(
                    ins.range,
                    "checksum requires HTTP(S) or Git sources",
                    "drop --checksum for local files: their content is checksummed anyway",
                );
                return;
            }
        }
        if sources.len() + c.contents.len() > 1 && !dest_raw.ends_with('/') && !dest.ends_with('/')
        {
            self.error_hint(ins.range, format!("When using {word} with more than one source file, the destination must be a directory and end with a /"), format!("write the destination as {dest_raw}/"));
            return;
        }

        let mut inputs: Vec<OpId> = Vec::new();
        let base_input = if c.link { None } else { Some(state.op) };
        if let Some(b) = base_input {
            inputs.push(b);
        }
        let mut actions = Vec::new();
        let from_op = if c.from.is_empty() {
            None
        } else {
            let Some(op) = self.resolve_from(i, state, &c.from, true, ins) else {
                return;
            };
            Some(op)
        };
        let mut context_paths = Vec::new();
        let mut local_srcs = Vec::new();
        for src in &sources {
            if let Ok(Some(g)) = util::parse_git_ref(src) {
                if !c.is_add {
                    self.error_hint(
                        ins.range,
                        "source can't be a git ref for COPY",
                        "use ADD for Git sources",
                    );
                    return;
                }
                if let (Some(a), Some(b)) = (c.keep_git_dir, g.keep_git_dir)
                    && a != b
                {
                    self.error(ins.range, "inconsistent keep-git-dir configuration");
                    return;
                }
                let op = Op {
                    kind: OpKind::Source(SourceOp::Git {
                        remote: g.remote.clone(),
                        reference: g.reference.clone(),
                        subdir: g.subdir.clone(),
                        keep_git_dir: c.keep_git_dir.or(g.keep_git_dir).unwrap_or(false),
                        checksum: checksum.clone().or(g.checksum.clone()),
                    }),
                    inputs: vec![],
                    name: name.clone(),
                    stage: stage.clone(),
                    location: loc(self.opts, ins.range),
                    ignore_cache: false,
                };
                let Some(id) = self.add_op(op, ins.range) else {
                    return;
                };
                inputs.push(id);
                actions.push(copy_action(
                    inputs.len() - 1,
                    "/".into(),
                    dest.clone(),
                    chown.clone(),
                    chmod.clone(),
                    false,
                    false,
                    c.exclude.clone(),
                ));
            } else if let Err(e) = util::parse_git_ref(src) {
                self.error(ins.range, e);
                return;
            } else if util::is_http_source(src) {
                if !c.is_add {
                    self.error_hint(
                        ins.range,
                        "source can't be a URL for COPY",
                        "use ADD for URLs",
                    );
                    return;
                }
                let base = src.split(['?', '#']).next().unwrap_or(src);
                let after_scheme = base.split_once("://").map(|x| x.1).unwrap_or(base);
                let file = after_scheme.split_once('/').map(|x| x.1).unwrap_or("");
                let file = file
                    .rsplit('/')
                    .find(|s| !s.is_empty())
                    .filter(|s| *s != "." && *s != "..")
                    .unwrap_or("__unnamed__")
                    .to_string();
                let op = Op {
                    kind: OpKind::Source(SourceOp::Http {
                        url: src.clone(),
                        checksum: checksum.clone(),
                        filename: file.clone(),
                    }),
                    inputs: vec![],
                    name: name.clone(),
                    stage: stage.clone(),
                    location: loc(self.opts, ins.range),
                    ignore_cache: false,
                };
                let Some(id) = self.add_op(op, ins.range) else {
                    return;
                };
                inputs.push(id);
                let mut a = copy_action(
                    inputs.len() - 1,
                    format!("/{file}"),
                    dest.clone(),
                    chown.clone(),
                    chmod.clone(),
                    c.unpack.unwrap_or(false),
                    false,
                    c.exclude.clone(),
                );
                if let FileAction::Copy {
                    allow_wildcard,
                    dir_contents_only,
                    follow_symlinks,
                    ..
                } = &mut a
                {
                    *allow_wildcard = false;
                    *dir_contents_only = false;
                    *follow_symlinks = false;
                }
                actions.push(a);
            } else {
                local_srcs.push(src.clone());
                if from_op.is_none() {
                    let p = clean(&format!("/{}", src.split("/./").next().unwrap_or(src)));
                    context_paths.push(p.trim_start_matches('/').to_string());
                    self.lint_copy_ignored(ins, word, src);
                }
            }
        }
        if !local_srcs.is_empty() {
            let src_op = match from_op {
                Some(op) => op,
                None => {
                    let paths = if context_paths.iter().any(|p| p.is_empty()) {
                        vec![]
                    } else {
                        context_paths.clone()
                    };
                    let Some(op) = self.context_source(paths, ins, &stage) else {
                        return;
                    };
                    op
                }
            };
            inputs.push(src_op);
            let idx = inputs.len() - 1;
            for src in local_srcs {
                let src = if c.parents {
                    src
                } else {
                    clean(&format!("/{src}"))
                };
                let unpack = c.is_add && c.unpack.unwrap_or(true);
                actions.push(copy_action(
                    idx,
                    src,
                    dest.clone(),
                    chown.clone(),
                    chmod.clone(),
                    unpack,
                    c.parents,
                    c.exclude.clone(),
                ));
            }
        }
        for content in &c.contents {
            let data = if content.expand {
                let mut lex = Lexer::new('\\');
                lex.skip_process_quotes = true;
                match lex.process_word(&content.data, env) {
                    Ok(e) => e.result,
                    Err(e) => {
                        self.error(ins.range, format!("{word} heredoc {}: {e}", content.path));
                        return;
                    }
                }
            } else {
                content.data.clone()
            };
            let Some(fid) = self.inline_document(&content.path, 0o644, data, &stage, ins) else {
                return;
            };
            inputs.push(fid);
            let mut a = copy_action(
                inputs.len() - 1,
                format!("/{}", content.path),
                dest.clone(),
                chown.clone(),
                chmod.clone(),
                false,
                false,
                vec![],
            );
            if let FileAction::Copy {
                allow_wildcard,
                dir_contents_only,
                ..
            } = &mut a
            {
                *allow_wildcard = false;
                *dir_contents_only = false;
            }
            actions.push(a);
        }
        let file_op = Op {
            kind: OpKind::File {
                base: base_input.is_some(),
                actions,
            },
            inputs,
            name: name.clone(),
            stage: stage.clone(),
            location: loc(self.opts, ins.range),
            ignore_cache: state.ignore_cache,
        };
        let Some(mut id) = self.add_op(file_op, ins.range) else {
            return;
        };
        if c.link {
            let merge = Op {
                kind: OpKind::Merge,
                inputs: vec![state.op, id],
                name,
                stage,
                location: loc(self.opts, ins.range),
                ignore_cache: state.ignore_cache,
            };
            let Some(m) = self.add_op(merge, ins.range) else {
                return;
            };
            id = m;
        }
        state.op = id;
        let mut msg = String::from(word);
        if c.parents {
            msg.push_str(" --parents");
        }
        if !c.chown.is_empty() {
            msg.push_str(&format!(" --chown={}", c.chown));
        }
        if !c.chmod.is_empty() {
            msg.push_str(&format!(" --chmod={}", c.chmod));
        }
        for s in &sources {
            msg.push_str(&format!(" {s}"));
        }
        for h in &c.contents {
            msg.push_str(&format!(" <<{}", h.path));
        }
        msg.push_str(&format!(" {dest_raw}"));
        Self::step_history(state, msg);
    }

    fn lint_copy_ignored(&mut self, ins: &Instruction, word: &str, src: &str) {
        let Some(m) = &self.ignore_matcher else {
            return;
        };
        if m.exclusions() {
            return;
        }
        let p = clean(src.trim_start_matches('/'));
        if p == "." || crate::dockerignore::contains_wildcards(&p) {
            return;
        }
        if m.matches(&p).unwrap_or(false) {
            self.linter.report(
                &lint::COPY_IGNORED_FILE,
                ins.range,
                &ins.prev_comment,
                format!("Attempting to {word} file {src:?} that is excluded by .dockerignore"),
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn copy_action(
    input: usize,
    src: String,
    dest: String,
    chown: Option<Chown>,
    chmod: Option<Chmod>,
    unpack: bool,
    parents: bool,
    exclude: Vec<String>,
) -> FileAction {
    FileAction::Copy {
        input,
        src,
        dest,
        chown,
        chmod,
        follow_symlinks: true,
        dir_contents_only: true,
        allow_wildcard: true,
        allow_empty_wildcard: true,
        create_dest_path: true,
        unpack,
        parents,
        exclude,
    }
}

fn split_chown(s: &str) -> Chown {
    match s.split_once(':') {
        Some((u, g)) => Chown {
            user: u.to_string(),
            group: Some(g.to_string()),
        },
        None => Chown {
            user: s.to_string(),
            group: None,
        },
    }
}

/// `InvalidDefinitionDescription`: a comment right above `FROM … AS x` / `ARG x` must start
/// with the name it describes.
fn check_description(linter: &mut Linter, ins: &Instruction, word: &str, keys: &[&str]) {
    let Some(last) = ins.prev_comment.last() else {
        return;
    };
    if keys.is_empty() || last.trim_start().starts_with("check=") {
        return;
    }
    let first = last.split(' ').next().unwrap_or("");
    if keys.contains(&first) {
        return;
    }
    let example = if keys.len() > 1 { "<arg_key>" } else { keys[0] };
    linter.report(
        &lint::INVALID_DEFINITION_DESCRIPTION,
        ins.range,
        &ins.prev_comment,
        format!("Comment for {word} should follow the format: `# {example} <description>`"),
    );
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

fn summarize_heredoc(doc: &str) -> String {
    let doc = doc.trim_start();
    let mut lines = doc.lines();
    let first = lines.next().unwrap_or("");
    if lines.next().is_some() {
        format!("{first}...")
    } else {
        first.to_string()
    }
}

/// The shell that shell forms run with when no SHELL is set.
fn default_shell(os: &str) -> Vec<String> {
    if os == "windows" {
        vec!["cmd".into(), "/S".into(), "/C".into()]
    } else {
        vec!["/bin/sh".into(), "-c".into()]
    }
}

/// Empty Cmd, Entrypoint and Shell lists are left out of the config, as Go's `omitempty` does.
fn normalize_empty_lists(config: &mut ImageConfig) {
    for list in [&mut config.cmd, &mut config.entrypoint, &mut config.shell] {
        if list.as_ref().is_some_and(Vec::is_empty) {
            *list = None;
        }
    }
}

/// Go's `time.Duration.String()` for a duration in nanoseconds.
fn go_duration(ns: u64) -> String {
    fn frac(v: u64, prec: u32) -> (String, u64) {
        let mut digits = String::new();
        let mut v = v;
        let mut printed = false;
        for _ in 0..prec {
            let d = v % 10;
            printed = printed || d != 0;
            if printed {
                digits.insert(0, char::from(b'0' + d as u8));
            }
            v /= 10;
        }
        if printed {
            digits.insert(0, '.');
        }
        (digits, v)
    }
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (unit, prec) = if ns < 1_000 {
            ("ns", 0)
        } else if ns < 1_000_000 {
            ("µs", 3)
        } else {
            ("ms", 6)
        };
        let (f, whole) = frac(ns, prec);
        return format!("{whole}{f}{unit}");
    }
    let (f, secs) = frac(ns, 9);
    let mut out = format!("{}{f}s", secs % 60);
    let mins = secs / 60;
    if mins > 0 {
        out = format!("{}m{out}", mins % 60);
        let hours = mins / 60;
        if hours > 0 {
            out = format!("{hours}h{out}");
        }
    }
    out
}

/// Go's `fmt.Sprintf("%+v", HealthcheckConfig)`, which BuildKit's HEALTHCHECK history uses.
fn go_healthcheck(h: &HealthConfig) -> String {
    format!(
        "{{Test:[{}] Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
        h.test.join(" "),
        go_duration(h.interval),
        go_duration(h.timeout),
        go_duration(h.start_period),
        go_duration(h.start_interval),
        h.retries
    )
}

/// Go's `fmt.Sprintf("%q", []string)`.
fn go_q_list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|s| parser::dump::go_quote(s))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod tests;
