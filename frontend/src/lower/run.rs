//! RUN: its shell or exec form, heredocs, mounts, network and security, as exec ops.

use super::*;
use crate::shell::ExpandError;

pub(super) fn summarize_heredoc(doc: &str) -> String {
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
pub(super) fn default_shell(os: &str) -> Vec<String> {
    if os == "windows" {
        vec!["cmd".into(), "/S".into(), "/C".into()]
    } else {
        vec!["/bin/sh".into(), "-c".into()]
    }
}

impl Lowerer<'_> {
    pub(super) fn json_args_lint(
        &mut self,
        state: &State,
        ins: &Instruction,
        c: &CmdLine,
        name: &str,
    ) {
        if c.prepend_shell && state.config.shell.is_none() && !c.args.is_empty() {
            self.linter.report(&lint::JSON_ARGS_RECOMMENDED, ins.range, &ins.prev_comment, format!("JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"));
        }
    }

    pub(super) fn shell_of(state: &State) -> Vec<String> {
        state
            .config
            .shell
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| default_shell(&state.image_platform.os))
    }

    pub(super) fn with_shell(&self, state: &State, c: &CmdLine) -> Vec<String> {
        if c.prepend_shell {
            let mut s = Self::shell_of(state);
            s.push(c.args.join(" "));
            s
        } else {
            c.args.clone()
        }
    }

    /// A heredoc as a file of its own (in an empty filesystem), for RUN scripts and COPY.
    pub(super) fn inline_document(
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
    pub(super) fn dispatch_run(
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
            let expand = |w: &str| -> Result<String, ExpandError> {
                lexer.process_word(w, env).map(|e| {
                    unmatched.borrow_mut().extend(e.unmatched);
                    e.result
                })
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
            network: run.network,
            security: run.security,
            mounts,
            platform: Some(state.platform.clone()),
            arg_names: state
                .args
                .names()
                .filter(|n| state.config_env.get(n).is_none())
                .map(str::to_string)
                .collect(),
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
}
