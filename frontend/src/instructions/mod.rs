//! Layer 2 of the frontend: parser nodes → typed instructions.
//!
//! Each node's flags are checked against what its instruction accepts and its arguments against
//! the instruction's shape (BuildKit's `instructions` package). Values stay unexpanded here:
//! variables are expanded while lowering, when ARG and ENV values are known.

pub mod flags;
pub mod mount;

use crate::diagnostic::{Diagnostic, LineRange};
use crate::parser::{Heredoc, Node, chomp_heredoc_content, parse_heredoc_word};
use crate::suggest::did_you_mean;
use flags::{FlagError, Flags};
use mount::MountError;
use serde::Serialize;
use strata_solver::graph::{NetworkMode, SecurityMode};

/// A command line for RUN / CMD / ENTRYPOINT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CmdLine {
    /// Exec form: the argv. Shell form: one string.
    pub args: Vec<String>,
    /// Heredocs attached to the instruction.
    pub files: Vec<Heredoc>,
    /// Shell form (wrapped in SHELL when run).
    pub prepend_shell: bool,
}

/// A key/value pair of ENV or LABEL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// One name of an ARG instruction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArgDef {
    pub key: String,
    pub value: Option<String>,
}

/// A heredoc used as a COPY/ADD source: a file created with this content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceContent {
    pub path: String,
    pub data: String,
    pub expand: bool,
}

/// COPY and ADD share this shape; ADD-only fields are unset for COPY.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CopyCmd {
    pub is_add: bool,
    pub sources: Vec<String>,
    pub contents: Vec<SourceContent>,
    pub dest: String,
    pub from: String,
    pub chown: String,
    pub chmod: String,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    pub keep_git_dir: Option<bool>,
    pub checksum: String,
    pub unpack: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunCmd {
    pub cmd: CmdLine,
    /// Raw `--mount` values (expanded and fully validated while lowering).
    pub mounts: Vec<String>,
    pub network: NetworkMode,
    pub security: SecurityMode,
    pub devices: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FromCmd {
    pub base: String,
    /// Lower-cased stage name.
    pub name: Option<String>,
    pub platform: String,
    /// The `AS` word as written and the name as written, for casing checks.
    pub as_word: Option<String>,
    pub name_as_written: Option<String>,
}

/// HEALTHCHECK, durations in nanoseconds (0 = not set).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: u64,
    pub timeout: u64,
    pub start_period: u64,
    pub start_interval: u64,
    pub retries: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "instruction", rename_all = "UPPERCASE")]
pub enum Command {
    From(FromCmd),
    Run(RunCmd),
    Cmd(CmdLine),
    Entrypoint(CmdLine),
    Shell { shell: Vec<String> },
    Env { pairs: Vec<KeyValue>, legacy: bool },
    Label { pairs: Vec<KeyValue>, legacy: bool },
    Arg { args: Vec<ArgDef> },
    Copy(CopyCmd),
    Add(CopyCmd),
    Expose { ports: Vec<String> },
    Volume { volumes: Vec<String> },
    User { user: String },
    Workdir { path: String },
    Onbuild { expression: String },
    Stopsignal { signal: String },
    Healthcheck(Healthcheck),
    Maintainer { maintainer: String },
}

/// A typed instruction with its position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Instruction {
    pub command: Command,
    /// The instruction word as written.
    pub word: String,
    pub range: LineRange,
    /// The instruction's text, continuation lines joined.
    pub original: String,
    pub prev_comment: Vec<String>,
    pub flags_used: Vec<String>,
}

/// Every instruction name, for suggestions.
pub const ALL: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

fn err(msg: impl Into<String>) -> Diag {
    Diag {
        message: msg.into(),
        hint: None,
    }
}

/// An error before it has a location.
pub struct Diag {
    message: String,
    hint: Option<String>,
}

impl Diag {
    fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }
}

impl From<FlagError> for Diag {
    fn from(e: FlagError) -> Self {
        err(e.to_string())
    }
}

impl From<MountError> for Diag {
    fn from(e: MountError) -> Self {
        err(e.to_string())
    }
}

/// Why [`parse_duration`] refused its input, worded as Go's `time.ParseDuration`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("time: invalid duration {input:?}")]
    Invalid { input: String },
    #[error("time: missing unit in duration {input:?}")]
    MissingUnit { input: String },
    #[error("time: unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit { unit: String, input: String },
    #[error("{input}: durations cannot be negative")]
    Negative { input: String },
}

/// Go's `time.ParseDuration`, in nanoseconds.
pub fn parse_duration(s: &str) -> Result<u64, DurationError> {
    let input = || s.to_string();
    let bad = || DurationError::Invalid { input: input() };
    let mut rest = s;
    let neg = rest.starts_with('-');
    rest = rest.trim_start_matches(['-', '+']);
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(DurationError::MissingUnit { input: input() }),
            other => {
                return Err(DurationError::UnknownUnit {
                    unit: other.to_string(),
                    input: input(),
                });
            }
        };
        rest = &rest[u..];
        total += value * unit;
    }
    if neg && total > 0.0 {
        return Err(DurationError::Negative { input: input() });
    }
    if total > 9.2e18 {
        return Err(bad());
    }
    Ok(total as u64)
}

fn interval(flags: &Flags, name: &str) -> Result<u64, Diag> {
    let v = flags.get_string(name);
    if v.is_empty() {
        return Ok(0);
    }
    let d = parse_duration(&v)
        .map_err(|e| err(e.to_string()).hint("use a duration such as 30s or 1m30s"))?;
    if d != 0 && d < 1_000_000 {
        return Err(err(format!("Interval \"{name}\" cannot be less than 1ms"))
            .hint("use 0 (the default) or a duration of at least 1ms, e.g. 30s"));
    }
    Ok(d)
}

fn args_of(node: &Node) -> &[String] {
    &node.next
}

fn cmdline(node: &Node) -> CmdLine {
    let args = if node.json {
        node.next.clone()
    } else if node.next.is_empty() {
        vec![]
    } else {
        vec![node.next.join(" ")]
    };
    CmdLine {
        args,
        files: node.heredocs.clone(),
        prepend_shell: !node.json,
    }
}

fn kvps(node: &Node, name: &str) -> Result<Vec<KeyValue>, Diag> {
    let a = args_of(node);
    if a.is_empty() {
        return Err(err(format!("{name} requires at least one argument"))
            .hint(format!("write {name} NAME=VALUE")));
    }
    let mut out = Vec::new();
    for c in a.chunks(3) {
        let [k, v, _] = c else {
            return Err(err(format!("Bad input to {name}, too many arguments")));
        };
        if k.is_empty() {
            return Err(err(format!("{name} names can not be blank"))
                .hint(format!("write {name} NAME=VALUE")));
        }
        out.push(KeyValue {
            key: k.clone(),
            value: v.clone(),
        });
    }
    Ok(out)
}

fn sources_and_dest(
    node: &Node,
    name: &str,
) -> Result<(Vec<String>, Vec<SourceContent>, String), Diag> {
    let a = args_of(node);
    if a.len() < 2 {
        return Err(err(format!(
            "{name} requires at least two arguments, but only one was provided. Destination could not be determined"
        ))
        .hint(format!("write {name} <src>... <dest>")));
    }
    let (srcs, dest) = a.split_at(a.len() - 1);
    let dest = dest[0].clone();
    if matches!(parse_heredoc_word(&dest), Ok(Some(_))) {
        return Err(err(format!(
            "{name} cannot accept a heredoc as a destination"
        )));
    }
    let mut paths = Vec::new();
    let mut contents = Vec::new();
    for s in srcs {
        match parse_heredoc_word(s) {
            Ok(Some(h)) => {
                let body = node
                    .heredocs
                    .iter()
                    .find(|d| d.name == h.name)
                    .map(|d| d.content.clone())
                    .unwrap_or_default();
                let data = if h.chomp {
                    chomp_heredoc_content(&body)
                } else {
                    body
                };
                contents.push(SourceContent {
                    path: h.name,
                    data,
                    expand: h.expand,
                });
            }
            _ => paths.push(s.clone()),
        }
    }
    Ok((paths, contents, dest))
}

fn exactly_one(node: &Node, name: &str) -> Result<String, Diag> {
    match args_of(node) {
        [one] => Ok(one.clone()),
        _ => Err(err(format!("{name} requires exactly one argument"))),
    }
}

fn valid_stage_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|ch| {
            ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '-' | '_' | '.')
        })
}

// Long: one match arm per Dockerfile instruction, each a few lines; split, the table would be harder to read against BuildKit's.
fn parse_command(node: &Node) -> Result<(Command, Vec<String>), Diag> {
    let cmd = node.command();
    let a = args_of(node);
    let plain = |n: &Node| Flags::new().parse(&n.flags);
    let (command, flags) = match cmd.as_str() {
        "from" => {
            let f = Flags::new().string("platform").parse(&node.flags)?;
            let (name, as_word, written) = match a {
                [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
                    let lower = name.to_lowercase();
                    if !valid_stage_name(&lower) {
                        return Err(err(format!(
                            "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                        ))
                        .hint("stage names start with a letter and use letters, digits, '-', '_' and '.'"));
                    }
                    (Some(lower), Some(as_word.clone()), Some(name.clone()))
                }
                [_] => (None, None, None),
                _ => {
                    return Err(err("FROM requires either one or three arguments")
                        .hint("write FROM <image> [AS <name>]"));
                }
            };
            (
                Command::From(FromCmd {
                    base: a[0].clone(),
                    name,
                    platform: f.get_string("platform"),
                    as_word,
                    name_as_written: written,
                }),
                f,
            )
        }
        "run" => {
            let f = Flags::new()
                .strings("mount")
                .string("network")
                .string("security")
                .strings("device")
                .parse(&node.flags)?;
            for m in f.get_strings("mount") {
                mount::parse_mount(&m, None)?;
            }
            let network = match f.get_string("network").as_str() {
                "" | "default" => NetworkMode::Default,
                "none" => NetworkMode::None,
                "host" => NetworkMode::Host,
                other => {
                    return Err(err(format!("unsupported network mode {other:?}"))
                        .hint("use --network=default, none or host"));
                }
            };
            let security = match f.get_string("security").as_str() {
                "" | "sandbox" => SecurityMode::Sandbox,
                "insecure" => SecurityMode::Insecure,
                other => {
                    return Err(err(format!("unsupported security mode {other:?}"))
                        .hint("use --security=sandbox or insecure"));
                }
            };
            (
                Command::Run(RunCmd {
                    cmd: cmdline(node),
                    mounts: f.get_strings("mount"),
                    network,
                    security,
                    devices: f.get_strings("device"),
                }),
                f,
            )
        }
        "cmd" => (Command::Cmd(cmdline(node)), plain(node)?),
        "entrypoint" => (Command::Entrypoint(cmdline(node)), plain(node)?),
        "shell" => {
            let f = plain(node)?;
            if a.is_empty() {
                return Err(err("SHELL requires at least one argument")
                    .hint("write SHELL [\"/bin/sh\", \"-c\"]"));
            }
            if !node.json {
                return Err(err(format!(
                    "SHELL requires the arguments to be in JSON form: {}",
                    node.original
                ))
                .hint("write SHELL [\"/bin/bash\", \"-c\"]"));
            }
            (Command::Shell { shell: a.to_vec() }, f)
        }
        "env" => {
            let f = plain(node)?;
            (
                Command::Env {
                    pairs: kvps(node, "ENV")?,
                    legacy: node.legacy_kv,
                },
                f,
            )
        }
        "label" => {
            let f = plain(node)?;
            (
                Command::Label {
                    pairs: kvps(node, "LABEL")?,
                    legacy: node.legacy_kv,
                },
                f,
            )
        }
        "arg" => {
            if a.is_empty() {
                return Err(
                    err("ARG requires at least one argument").hint("write ARG NAME[=default]")
                );
            }
            let f = plain(node)?;
            let mut args = Vec::new();
            for w in a {
                match w.split_once('=') {
                    Some(("", _)) => {
                        return Err(
                            err("ARG names can not be blank").hint("write ARG NAME[=default]")
                        );
                    }
                    Some((k, v)) => args.push(ArgDef {
                        key: k.to_string(),
                        value: Some(v.to_string()),
                    }),
                    None => args.push(ArgDef {
                        key: w.clone(),
                        value: None,
                    }),
                }
            }
            (Command::Arg { args }, f)
        }
        "copy" | "add" => {
            let is_add = cmd == "add";
            let name = if is_add { "ADD" } else { "COPY" };
            if a.len() < 2 {
                sources_and_dest(node, name)?;
            }
            let base = Flags::new()
                .string("chown")
                .string("chmod")
                .bool("link")
                .strings("exclude");
            let f = if is_add {
                base.bool("keep-git-dir").string("checksum").bool("unpack")
            } else {
                base.string("from").bool("parents")
            }
            .parse(&node.flags)?;
            let (sources, contents, dest) = sources_and_dest(node, name)?;
            let c = CopyCmd {
                is_add,
                sources,
                contents,
                dest,
                from: f.get_string("from"),
                chown: f.get_string("chown"),
                chmod: f.get_string("chmod"),
                link: f.get_bool("link"),
                parents: f.get_bool("parents"),
                exclude: f.get_strings("exclude"),
                keep_git_dir: f.get_opt_bool("keep-git-dir"),
                checksum: f.get_string("checksum"),
                unpack: f.get_opt_bool("unpack"),
            };
            (
                if is_add {
                    Command::Add(c)
                } else {
                    Command::Copy(c)
                },
                f,
            )
        }
        "expose" => {
            if a.is_empty() {
                return Err(
                    err("EXPOSE requires at least one argument").hint("write EXPOSE 80/tcp")
                );
            }
            let f = plain(node)?;
            let mut ports = a.to_vec();
            ports.sort();
            (Command::Expose { ports }, f)
        }
        "volume" => {
            if a.is_empty() {
                return Err(err("VOLUME requires at least one argument")
                    .hint("write VOLUME /path or VOLUME [\"/a\", \"/b\"]"));
            }
            let f = plain(node)?;
            let mut volumes = Vec::new();
            for v in a {
                let v = v.trim();
                if v.is_empty() {
                    return Err(err("VOLUME specified can not be an empty string")
                        .hint("give every volume a path"));
                }
                volumes.push(v.to_string());
            }
            (Command::Volume { volumes }, f)
        }
        "user" => {
            let user = exactly_one(node, "USER")?;
            (Command::User { user }, plain(node)?)
        }
        "workdir" => {
            let path = exactly_one(node, "WORKDIR")?;
            (Command::Workdir { path }, plain(node)?)
        }
        "stopsignal" => {
            // BuildKit never checks STOPSIGNAL's flags.
            let signal = exactly_one(node, "STOPSIGNAL")?;
            (Command::Stopsignal { signal }, Flags::new())
        }
        "maintainer" => {
            let maintainer = exactly_one(node, "MAINTAINER")?;
            (Command::Maintainer { maintainer }, plain(node)?)
        }
        "onbuild" => {
            let Some(child) = &node.child else {
                return Err(err("ONBUILD requires at least one argument")
                    .hint("write ONBUILD <instruction>, e.g. ONBUILD RUN make"));
            };
            let f = plain(node)?;
            let trigger = child.value.to_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err(err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
                        .hint("remove one ONBUILD"));
                }
                "MAINTAINER" | "FROM" => {
                    return Err(
                        err(format!("{trigger} isn't allowed as an ONBUILD trigger")).hint(
                            "ONBUILD may wrap any instruction except FROM, MAINTAINER and ONBUILD",
                        ),
                    );
                }
                _ => {}
            }
            let text = node.original.trim_start();
            let mut expression = text
                .get(7..)
                .map(|s| s.trim_start().to_string())
                .unwrap_or_default();
            for h in &node.heredocs {
                expression.push('\n');
                expression.push_str(&h.content);
                expression.push_str(&h.name);
            }
            (Command::Onbuild { expression }, f)
        }
        "healthcheck" => {
            if a.is_empty() {
                return Err(err("HEALTHCHECK requires at least one argument")
                    .hint("write HEALTHCHECK CMD <command> or HEALTHCHECK NONE"));
            }
            let typ = a[0].to_uppercase();
            let rest = &a[1..];
            if typ == "NONE" {
                if !rest.is_empty() {
                    return Err(err("HEALTHCHECK NONE takes no arguments")
                        .hint("write HEALTHCHECK NONE alone, or HEALTHCHECK CMD <command>"));
                }
                let f = plain(node)?;
                (
                    Command::Healthcheck(Healthcheck {
                        test: vec!["NONE".into()],
                        ..Healthcheck::default()
                    }),
                    f,
                )
            } else {
                let f = Flags::new()
                    .string("interval")
                    .string("timeout")
                    .string("start-period")
                    .string("start-interval")
                    .string("retries")
                    .parse(&node.flags)?;
                if typ != "CMD" {
                    return Err(
                        err(format!("Unknown type {:?} in HEALTHCHECK (try CMD)", a[0]))
                            .hint("write HEALTHCHECK CMD <command> or HEALTHCHECK NONE"),
                    );
                }
                let cmd_args: Vec<String> = if node.json {
                    rest.to_vec()
                } else if rest.is_empty() {
                    vec![]
                } else {
                    vec![rest.join(" ")]
                };
                if cmd_args.is_empty() {
                    return Err(err("Missing command after HEALTHCHECK CMD")
                        .hint("write HEALTHCHECK CMD <command>"));
                }
                let mut test = vec![if node.json { "CMD" } else { "CMD-SHELL" }.to_string()];
                test.extend(cmd_args);
                let retries = f.get_string("retries");
                let retries = if retries.is_empty() {
                    0
                } else {
                    let r: i64 = retries
                        .parse()
                        .map_err(|_| err(format!("invalid --retries value {retries:?}")))?;
                    if r < 0 {
                        return Err(err(format!("--retries cannot be negative ({r})"))
                            .hint("use --retries=0 or more"));
                    }
                    r as u64
                };
                let h = Healthcheck {
                    test,
                    interval: interval(&f, "interval")?,
                    timeout: interval(&f, "timeout")?,
                    start_period: interval(&f, "start-period")?,
                    start_interval: interval(&f, "start-interval")?,
                    retries,
                };
                (Command::Healthcheck(h), f)
            }
        }
        _ => {
            let mut d = err(format!("unknown instruction: {}", node.value));
            if let Some(s) = did_you_mean(&node.value, &ALL) {
                d = d.hint(format!("did you mean {s}?"));
            }
            return Err(d);
        }
    };
    Ok((
        command,
        flags.used().iter().map(|s| s.to_string()).collect(),
    ))
}

/// Turns one node into a typed instruction.
pub fn parse_instruction(node: &Node) -> Result<Instruction, Diagnostic> {
    match parse_command(node) {
        Ok((command, flags_used)) => Ok(Instruction {
            command,
            word: node.value.clone(),
            range: node.range(),
            original: node.original.clone(),
            prev_comment: node.prev_comment.clone(),
            flags_used,
        }),
        Err(d) => {
            let diag = Diagnostic::error(node.range(), d.message);
            Err(match d.hint {
                Some(h) => diag.with_hint(h),
                None => diag,
            })
        }
    }
}

#[cfg(test)]
mod tests;
