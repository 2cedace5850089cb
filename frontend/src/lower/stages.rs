//! Stages and targets: which stages a target needs, how each starts (scratch, another
//! stage, an image), its platform, and the FROM lints.

use super::*;

impl Lowerer<'_> {
    /// The platform of the result image: the target stage's image platform, replaced by the
    /// requested platform when `--platform` was given (BuildKit's `finalizeResultImage`).
    pub(super) fn result_platform(&self, image: &Platform) -> Platform {
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

    pub(super) fn stage_index(&self, name: &str) -> Option<usize> {
        let lower = name.to_lowercase();
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
    }

    pub(super) fn lint_from(&mut self, ins: &Instruction, f: &FromCmd) {
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

    pub(super) fn lint_stage_names(&mut self) {
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

    /// Lowers stage `i` (once) and returns its final state.
    /// The stages `target` needs through references that are known without lowering: FROM
    /// (global ARGs only), and `--from` / `from=` values without variables. Sorted, target
    /// excluded.
    pub(super) fn static_dependencies(&self, target: usize) -> Vec<usize> {
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

    pub(super) fn lower_stage(&mut self, i: usize) -> Option<State> {
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

    pub(super) fn stage_label(&self, i: usize) -> String {
        self.stages[i]
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{i}"))
    }

    pub(super) fn is_no_cache(&self, i: usize) -> bool {
        self.opts.no_cache
            || self.stages[i].name.as_ref().is_some_and(|n| {
                self.opts
                    .no_cache_filter
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(n))
            })
    }

    pub(super) fn step_name(&self, i: usize, step: usize, total: usize, text: &str) -> String {
        let mut prefix = String::new();
        if self.opts.platform_prefix
            && let Some(p) = self.stage_platforms.get(&i)
        {
            prefix = format!("{p}{} ", arrow_to(p, &self.target_platform));
        }
        if self.multi_stage {
            format!("[{prefix}{} {step}/{total}] {text}", self.stage_label(i))
        } else {
            format!("[{prefix}{step}/{total}] {text}")
        }
    }

    // Long: the three ways a stage starts (scratch, another stage, an image), each setting up the same state.
    pub(super) fn lower_stage_inner(&mut self, i: usize) -> Option<State> {
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

        self.stage_platforms.insert(i, platform.clone());
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

    pub(super) fn image_source(
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

    /// Resolves a `--from` / `from=` value: a stage (name or, for COPY, index) or an image.
    pub(super) fn resolve_from(
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
}

/// `->ARCH` (or `->OS/ARCH`) when a stage built on `stage` produces for another target, as
/// BuildKit's step names say it; empty when they are the same.
fn arrow_to(stage: &Platform, target: &Platform) -> String {
    let (s, t) = (stage.clone().normalized(), target.clone().normalized());
    if t.os != s.os {
        return format!("->{t}");
    }
    if t.architecture != s.architecture {
        return match &t.variant {
            Some(v) => format!("->{}/{v}", t.architecture),
            None => format!("->{}", t.architecture),
        };
    }
    String::new()
}
