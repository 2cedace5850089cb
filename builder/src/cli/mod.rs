//! The `strata` command line: raw arguments ([`args`]) → validated settings ([`config`]) →
//! the library. `main.rs` only calls [`run`].

pub mod args;
pub mod build;
pub mod builds;
pub mod config;
pub mod images;
pub mod output;
pub mod registry;
pub mod run;

use anyhow::Result;
use args::{CommandArgs, GraphFormat, ParseFormat};
use std::fmt::Write as _;
use std::io::Write;
use strata_frontend::Diagnostic;
use strata_frontend::lower::{Lowered, NoResolver, lower};
use strata_frontend::parser;
use strata_solver::graph::{OpKind, SourceOp};

/// What a command wants the process to exit with.
pub type ExitCode = i32;

fn print_diagnostics(
    diags: &[Diagnostic],
    file: &str,
    src: &str,
    out: &mut dyn Write,
) -> Result<()> {
    for d in diags {
        let sev = if d.is_error() { "error" } else { "warning" };
        writeln!(out, "{sev}: {}", d.render(file, src))?;
    }
    Ok(())
}

/// Runs a parsed command line; returns the exit code.
/// A shim's or init's failure goes to the bundle for the strata that runs the container to
/// report (once, with its context); printed here only when it could not be recorded.
fn setup_failure(bundle: &std::path::Path, r: Result<i32>) -> Result<i32> {
    match r {
        Err(e) if strata_executor::init::report_setup_error(bundle, &e) => Ok(2),
        r => r,
    }
}

pub fn run(cli: args::Cli) -> Result<ExitCode> {
    let global = config::Global::from_args(&cli.global)?;
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    match cli.command {
        CommandArgs::Parse(a) => {
            let text = config::read_text(&a.file)?;
            let (ast, diags) = parser::parse(&text);
            let mut out = stdout.lock();
            match a.format {
                ParseFormat::Json => {
                    serde_json::to_writer_pretty(&mut out, &parser::dump::to_json(&ast))?;
                    writeln!(out)?;
                }
                ParseFormat::Sexp => write!(out, "{}", parser::dump::dump(&ast))?,
            }
            print_diagnostics(&diags, &a.file, &text, &mut stderr.lock())?;
            Ok(if diags.iter().any(Diagnostic::is_error) {
                1
            } else {
                0
            })
        }
        CommandArgs::Check(a) => {
            let df = config::load_dockerfile(&a)?;
            let mut opts = config::build_options(&a, &df)?;
            opts.all_stages = true;
            let (_, diags) = lower(&df.text, &opts, &NoResolver);
            let mut out = stdout.lock();
            for d in &diags {
                writeln!(out, "{}", d.headline(&df.name))?;
            }
            let errors = diags.iter().filter(|d| d.is_error()).count();
            let mut err = stderr.lock();
            for d in diags.iter().filter(|d| d.is_error()) {
                writeln!(err, "error: {}", d.render(&df.name, &df.text))?;
            }
            writeln!(
                err,
                "{}: {} error(s), {} warning(s)",
                df.name,
                errors,
                diags.len() - errors
            )?;
            Ok(if errors > 0 { 1 } else { 0 })
        }
        CommandArgs::Import(a) => images::import(&global, &a),
        CommandArgs::Images(a) => images::images(&global, &a),
        CommandArgs::Tag(a) => images::tag(&global, &a),
        CommandArgs::Rmi(a) => images::rmi(&global, &a),
        CommandArgs::Inspect(a) => images::inspect(&global, &a),
        CommandArgs::Run(a) => run::run(&global, &a),
        CommandArgs::Build(a) => build::build(&global, &a),
        CommandArgs::Du => images::du(&global),
        CommandArgs::Save(a) => output::save(&global, &a),
        CommandArgs::Load(a) => output::load(&global, &a),
        CommandArgs::History(a) => output::history(&global, &a),
        CommandArgs::Pull(a) => registry::pull(&global, &a),
        CommandArgs::Push(a) => registry::push(&global, &a),
        CommandArgs::Login(a) => registry::login(&a),
        CommandArgs::Logout(a) => registry::logout(&a),
        CommandArgs::Prune(a) => images::prune(&global, &a),
        CommandArgs::Binfmt(a) => binfmt(&a),
        CommandArgs::Builds(a) => builds::run(&global, &a),
        CommandArgs::Shim(a) => {
            let rt = match a.runtime_path {
                Some(p) => strata_executor::init::Runtime::External(p),
                None => strata_executor::init::Runtime::Builtin,
            };
            setup_failure(
                &a.bundle,
                strata_executor::init::shim(&a.bundle, &rt, &a.id),
            )
        }
        CommandArgs::Init(a) => setup_failure(&a.bundle, strata_executor::init::init(&a.bundle)),
        CommandArgs::FileOp(a) => strata_executor::fileop::child(&a.bundle).map(|_| 0),
        CommandArgs::Graph(g) => {
            let df = config::load_dockerfile(&g.frontend)?;
            let opts = config::build_options(&g.frontend, &df)?;
            let (lowered, diags) = lower(&df.text, &opts, &NoResolver);
            print_diagnostics(&diags, &df.name, &df.text, &mut stderr.lock())?;
            let Some(l) = lowered else {
                return Ok(1);
            };
            let mut out = stdout.lock();
            match g.format {
                GraphFormat::Json => {
                    serde_json::to_writer_pretty(&mut out, &graph_json(&l))?;
                    writeln!(out)?;
                }
                GraphFormat::Dot => write!(out, "{}", graph_dot(&l))?,
            }
            Ok(0)
        }
    }
}

/// The lowered graph as JSON: ops with digests, inputs and definitions, plus the target's
/// image config.
pub fn graph_json(l: &Lowered) -> serde_json::Value {
    let ops: Vec<serde_json::Value> = l
        .graph
        .ops()
        .map(|(id, op)| {
            serde_json::json!({
                "id": id.0,
                "digest": l.graph.digest(id),
                "name": op.name,
                "stage": op.stage,
                "inputs": op.inputs.iter().map(|i| i.0).collect::<Vec<_>>(),
                "location": op.location,
                "ignore_cache": op.ignore_cache,
                "op": op.kind,
            })
        })
        .collect();
    serde_json::json!({
        "target": l.target.0,
        "target_digest": l.graph.digest(l.target),
        "platform": l.platform.to_string(),
        "stages": l.stages,
        "ops": ops,
        "config": l.config,
        "history": l.history,
    })
}

fn dot_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The lowered graph for Graphviz: one node per op, edges from inputs to users, stages as
/// clusters.
pub fn graph_dot(l: &Lowered) -> String {
    let mut s = String::from(
        "digraph strata {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    let mut stages: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (id, op) in l.graph.ops() {
        stages.entry(op.stage.as_str()).or_default().push(id.0);
    }
    for (n, (stage, ids)) in stages.iter().enumerate() {
        let _ = writeln!(
            s,
            "  subgraph cluster_{n} {{\n    label=\"{}\";",
            dot_escape(stage)
        );
        for id in ids {
            let op = l.graph.op(strata_solver::OpId(*id));
            let shape = match &op.kind {
                OpKind::Source(SourceOp::Local { .. }) => "folder",
                OpKind::Source(_) => "cylinder",
                OpKind::Exec(_) => "box",
                OpKind::File { .. } => "note",
                OpKind::Merge => "invtriangle",
            };
            let label: String = op.name.chars().take(80).collect();
            let _ = writeln!(
                s,
                "    op{id} [label=\"{}\\n{}\", shape={shape}{}];",
                dot_escape(&label),
                l.graph.digest(strata_solver::OpId(*id)).short(),
                if *id == l.target.0 {
                    ", penwidth=2"
                } else {
                    ""
                }
            );
        }
        s.push_str("  }\n");
    }
    for (id, op) in l.graph.ops() {
        for i in &op.inputs {
            let _ = writeln!(s, "  op{} -> op{};", i.0, id.0);
        }
    }
    s.push_str("}\n");
    s
}

/// Prints an error chain the way the CLI reports failures.
pub fn report_error(e: &anyhow::Error) {
    let mut msg = format!("error: {e}");
    for cause in e.chain().skip(1) {
        msg.push_str(&format!("\n  caused by: {cause}"));
    }
    eprintln!("{msg}");
}

/// `strata binfmt`: what this machine runs (natively or through binfmt_misc), after
/// registering or removing emulators when asked.
fn binfmt(a: &args::BinfmtArgs) -> Result<i32> {
    use strata_executor::binfmt::{self, Installed, Support};
    use strata_solver::graph::Platform;
    if a.uninstall {
        for name in binfmt::uninstall()? {
            println!("removed {name}");
        }
    }
    if !a.install.is_empty() {
        let mut want = Vec::new();
        for p in &a.install {
            if p == "all" {
                want.extend(
                    strata_executor::binfmt::PLATFORMS
                        .iter()
                        .map(|p| Platform::parse(p).expect("known platforms")),
                );
            } else {
                want.push(Platform::parse(p).map_err(|e| {
                    anyhow::anyhow!(
                        "--install {p:?}: {e}: write os/arch[/variant], e.g. linux/arm64"
                    )
                })?);
            }
        }
        for (p, done) in binfmt::install(&want)? {
            match done {
                Installed::Registered { name, interpreter } => {
                    println!(
                        "{p}: registered {name} ({}, flags F)",
                        interpreter.display()
                    )
                }
                Installed::Native => println!("{p}: runs natively"),
                Installed::Emulated(h) => println!("{p}: already emulated by {}", h.name),
            }
        }
    }
    let handlers = binfmt::handlers(std::path::Path::new(binfmt::BINFMT_DIR));
    let mut supported = Vec::new();
    for p in strata_executor::binfmt::PLATFORMS {
        let platform = Platform::parse(p).expect("known platforms");
        match binfmt::support(&platform, &handlers) {
            Support::Native => supported.push(format!("{p} (native)")),
            Support::Emulated(h) => supported.push(format!("{p} ({})", h.interpreter.display())),
            Support::Missing(_) => {}
        }
    }
    println!("supported: {}", supported.join(", "));
    for h in &handlers {
        println!(
            "{}: {} {} flags {}",
            h.name,
            if h.enabled { "enabled" } else { "disabled" },
            h.interpreter.display(),
            if h.flags.is_empty() { "-" } else { &h.flags }
        );
    }
    Ok(0)
}
