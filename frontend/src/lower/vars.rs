//! Build arguments and variables: ARG (global and per stage), ENV scoping, expansion of
//! words against both, and the build-arg lints.

use super::*;

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
pub(super) struct Layered<'a>(pub(super) &'a Vars, pub(super) &'a Vars);

impl Env for Layered<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).or_else(|| self.1.get(name))
    }
}

pub(super) fn platform_args(prefix: &str, p: &Platform) -> Vec<(String, String)> {
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

impl Lowerer<'_> {
    /// Expands one word; unset variables are reported by `UndefinedVar` unless declared.
    pub(super) fn expand(
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

    pub(super) fn report_undefined(
        &mut self,
        name: &str,
        _env: &dyn Env,
        declared: &Args,
        ins: &Instruction,
    ) {
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

    /// Global ARGs and the automatic platform ARGs.
    pub(super) fn meta_args(&mut self, global: &[Instruction]) {
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

    pub(super) fn warn_unused_build_args(&mut self) {
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

    /// FROM lines of every stage (built or not) may only use global ARGs.
    pub(super) fn lint_from_args(&mut self) {
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

    pub(super) fn lint_default_arg_in_from(
        &mut self,
        from: &FromCmd,
        range: LineRange,
        comments: &[String],
    ) {
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

    pub(super) fn dispatch_arg(&mut self, state: &mut State, ins: &Instruction, args: &[ArgDef]) {
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
}
