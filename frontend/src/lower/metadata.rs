//! The metadata instructions (ENV, LABEL, EXPOSE, VOLUME, WORKDIR, USER, CMD, ENTRYPOINT,
//! HEALTHCHECK, SHELL, STOPSIGNAL, ONBUILD, MAINTAINER) and the history they write.

use super::*;

/// `InvalidDefinitionDescription`: a comment right above `FROM … AS x` / `ARG x` must start
/// with the name it describes.
pub(super) fn check_description(linter: &mut Linter, ins: &Instruction, word: &str, keys: &[&str]) {
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

/// Empty Cmd, Entrypoint and Shell lists are left out of the config, as Go's `omitempty` does.
pub(super) fn normalize_empty_lists(config: &mut ImageConfig) {
    for list in [&mut config.cmd, &mut config.entrypoint, &mut config.shell] {
        if list.as_ref().is_some_and(Vec::is_empty) {
            *list = None;
        }
    }
}

/// Go's `time.Duration.String()` for a duration in nanoseconds.
pub(super) fn go_duration(ns: u64) -> String {
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
pub(super) fn go_healthcheck(h: &HealthConfig) -> String {
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
pub(super) fn go_q_list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|s| parser::dump::go_quote(s))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

impl Lowerer<'_> {
    pub(super) fn run_triggers(
        &mut self,
        i: usize,
        state: &mut State,
        triggers: &[String],
        range: LineRange,
    ) {
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
    pub(super) fn history(state: &mut State, created_by: String, layer: bool) {
        Self::commit_history(state, created_by, layer, false);
    }

    /// A history entry for an instruction that ran as a build step: RUN, COPY and ADD, whose
    /// `created_by` ends in ` # buildkit`.
    pub(super) fn step_history(state: &mut State, created_by: String) {
        Self::commit_history(state, created_by, true, true);
    }

    pub(super) fn commit_history(state: &mut State, created_by: String, layer: bool, step: bool) {
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
    pub(super) fn dispatch(
        &mut self,
        i: usize,
        state: &mut State,
        ins: &Instruction,
        name: String,
    ) {
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
}
