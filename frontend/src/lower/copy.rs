//! COPY and ADD: their flags and source forms (context, stage, image, URL, Git, heredoc) as
//! file ops.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn copy_action(
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

pub(super) fn split_chown(s: &str) -> Chown {
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

impl Lowerer<'_> {
    // Long: COPY and ADD's flags and source forms (context, stage, image, URL, Git, heredoc), in BuildKit's order.
    pub(super) fn dispatch_copy(
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
                        e.to_string(),
                        "use an octal mode like 0755 or a symbolic mode like u=rwX,go=rX",
                    );
                    return;
                }
            }
        };
        // Checked here, with the line, so a bad pattern never reaches the cache key or the copy.
        if let Err(e) = crate::dockerignore::PatternMatcher::new(&c.exclude) {
            self.error_hint(
                ins.range,
                format!("invalid --exclude pattern: {e}"),
                "--exclude takes .dockerignore-style patterns, like *.log or tests/**",
            );
            return;
        }
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
                self.error(ins.range, e.to_string());
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

    pub(super) fn lint_copy_ignored(&mut self, ins: &Instruction, word: &str, src: &str) {
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
