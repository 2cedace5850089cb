//! `strata build`: validated arguments → [`crate::build::build`] → the image ID.

use super::args::{BuildArgs, NetworkArg, ProgressArg};
use super::config::{self, Global, Snapshotter};
use super::images::{familiar, normalize_tag, open_store};
use crate::build::progress::{Mode, Progress};
use crate::build::{BuildError, BuildRequest};
use anyhow::{Context, Result, bail};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use strata_executor as executor;
use strata_solver::Platform;
use strata_solver::graph::NetworkMode;

/// A context read from standard input, removed when the build ends.
struct StdinContext {
    /// Under `containers/`, locked: removed when the build ends, or by the next strata to
    /// start if this one is killed.
    dir: executor::ContainerDir,
    dockerfile: Option<String>,
}

/// How much of standard input is looked at to tell a context tar from a Dockerfile.
const STDIN_HEAD: u64 = 1 << 20;

/// `-`: a tar of the context (plain or compressed), streamed into a directory (never held in
/// memory), or a lone Dockerfile (read with the Dockerfile's bound).
fn stdin_context(root: &std::path::Path) -> Result<StdinContext> {
    let mut stdin = std::io::stdin().lock();
    let mut head = Vec::new();
    (&mut stdin)
        .take(STDIN_HEAD)
        .read_to_end(&mut head)
        .context("reading the build context from standard input")?;
    let dir = executor::ContainerDir::create(
        &root.join("containers"),
        &format!("ctx-{}", executor::random_id()),
    )
    .context("creating a directory for the context")?;
    // Beside the lock file, not with it: the context is a directory of its own.
    std::fs::create_dir(dir.path().join("context"))?;
    let is_tar = {
        let mut r = strata_cache::unpack::decompress(&head[..])?;
        let mut block = [0u8; 512];
        r.read_exact(&mut block).is_ok() && &block[257..262] == b"ustar"
    };
    let all = std::io::Read::chain(&head[..], stdin);
    if is_tar {
        let opts = strata_cache::unpack::UnpackOptions {
            whiteouts: strata_cache::unpack::Whiteouts::Apply,
            ..Default::default()
        };
        let r = strata_cache::unpack::decompress(all)?;
        strata_cache::unpack::unpack(
            r,
            &dir.path().join("context"),
            &strata_cache::sys::RealFs,
            &opts,
        )
        .context("unpacking the context from standard input")?;
        Ok(StdinContext {
            dir,
            dockerfile: None,
        })
    } else {
        let data =
            crate::bounded::read_limited(all, crate::bounded::DOCKERFILE_LIMIT).map_err(|e| {
                anyhow::anyhow!("the Dockerfile on standard input: {e} for a Dockerfile")
            })?;
        Ok(StdinContext {
            dir,
            dockerfile: Some(String::from_utf8_lossy(&data).into_owned()),
        })
    }
}

/// `strata build`: arguments to a request, the build, its outputs, what it prints.
pub fn build(g: &Global, a: &BuildArgs) -> Result<i32> {
    let _ = open_store(g)?;
    let mut frontend = a.frontend.clone();
    let stdin = if frontend.context.as_os_str() == "-" {
        if frontend.file.as_deref() == Some("-") {
            bail!("the context and the Dockerfile cannot both come from standard input");
        }
        let c = stdin_context(&g.root)?;
        frontend.context = c.dir.path().join("context");
        Some(c)
    } else {
        None
    };
    let df = match stdin.as_ref().and_then(|c| c.dockerfile.clone()) {
        Some(text) => config::DockerfileSource {
            name: "Dockerfile".into(),
            text,
            dockerignore: None,
        },
        None => config::load_dockerfile(&frontend)?,
    };
    let opts = build_options(a, &frontend, &df)?;
    // Secrets and agents are checked before anything is pulled or run.
    let secrets = parse_secrets(&a.secrets)?;
    let ssh = parse_ssh(&a.ssh)?;
    let tags = a
        .tags
        .iter()
        .map(|t| normalize_tag(t))
        .collect::<Result<Vec<_>>>()?;
    let (outputs, to_stdout) = outputs(a)?;
    if g.config.snapshotter == Snapshotter::Native {
        bail!(
            "strata build needs the overlayfs snapshotter (a RUN step's layer is its overlay upper directory); the native snapshotter only serves `strata run` so far"
        );
    }
    let mode = progress_mode(a);
    let progress = Arc::new(Progress::new(mode, Box::new(std::io::stderr())));
    let req = request(g, a, &frontend, &df, opts, secrets, ssh)?;
    let mut warnings: Box<dyn Write> = if mode == Mode::Quiet {
        Box::new(std::io::sink())
    } else {
        Box::new(std::io::stderr())
    };
    let started = super::builds::started();
    let result = crate::build::build(&req, progress.clone(), &mut warnings);
    progress.finish();
    drop(stdin);
    let steps = progress.steps();
    let facts = |r: Option<&crate::build::BuildResult>| super::builds::BuildFacts {
        context: req.context.display().to_string(),
        dockerfile: df.name.clone(),
        target: req.opts.target.clone().unwrap_or_default(),
        platforms: if req.platforms.is_empty() {
            req.opts
                .platform
                .clone()
                .unwrap_or_else(Platform::host)
                .to_string()
        } else {
            req.platforms
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",")
        },
        started,
        image: r.map(|r| r.image_id.to_string()),
        executed: r.map_or(steps.iter().filter(|s| !s.cached).count(), |r| r.executed),
        cached: r.map_or(steps.iter().filter(|s| s.cached).count(), |r| r.cached),
        failed: r.is_none(),
        steps: &steps,
    };
    let r = match result {
        Ok(r) => r,
        Err(BuildError::Step { report }) => {
            super::builds::record(g, None, &facts(None));
            eprintln!("{report}");
            return Ok(1);
        }
        Err(BuildError::Dockerfile(text)) => {
            super::builds::record(g, None, &facts(None));
            eprintln!("{text}");
            return Ok(1);
        }
        Err(BuildError::Exec(e)) => return Err(e.into()),
        Err(BuildError::Other(e)) => return Err(e),
    };
    let mut store = open_store(g)?;
    let pushed = export_outputs(g, &mut store, &r, &outputs, &tags, &progress)?;
    super::builds::record(g, Some(&mut store), &facts(Some(&r)));
    report(a, &r, pushed.as_ref(), &tags, mode, to_stdout, &progress)?;
    // The store keeps itself within its policy ([gc]); a failure here fails no build.
    match super::images::collect_garbage(g, &mut store) {
        Ok(Some(gc)) if gc.entries > 0 && mode != Mode::Quiet => eprintln!(
            "gc: removed {} build cache entries and {} layers ({}) to stay within [gc] keep-storage",
            gc.entries,
            gc.layers,
            crate::timefmt::human_size(gc.bytes)
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("garbage collection: {e:#}"),
    }
    Ok(0)
}

/// The frontend's options from the arguments and the Dockerfile.
fn build_options(
    a: &BuildArgs,
    frontend: &super::args::FrontendArgs,
    df: &config::DockerfileSource,
) -> Result<strata_frontend::lower::BuildOptions> {
    let mut opts = config::build_options(frontend, df)?;
    // As buildx does: SOURCE_DATE_EPOCH from the environment becomes the build arg.
    if !opts.build_args.contains_key("SOURCE_DATE_EPOCH")
        && let Ok(v) = std::env::var("SOURCE_DATE_EPOCH")
    {
        opts.build_args.insert("SOURCE_DATE_EPOCH".into(), v);
    }
    opts.no_cache = a.no_cache;
    opts.no_cache_filter = a.no_cache_filter.clone();
    for l in &a.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            bail!("invalid --label {l:?}: write KEY=VALUE");
        }
        opts.labels.insert(k.to_string(), v.to_string());
    }
    Ok(opts)
}

/// The outputs asked for (none: the local store), checked before anything runs, and how many
/// write to standard output.
fn outputs(a: &BuildArgs) -> Result<(Vec<super::output::OutputSpec>, usize)> {
    let mut outputs = a
        .outputs
        .iter()
        .map(|o| super::output::parse_output(o))
        .collect::<Result<Vec<_>>>()?;
    let has_image = outputs
        .iter()
        .any(|o| matches!(o.output, super::output::Output::Image { .. }));
    if !has_image && (outputs.is_empty() || a.push) {
        outputs.push(super::output::OutputSpec {
            output: super::output::Output::Image {
                names: vec![],
                push: false,
            },
            format: Default::default(),
        });
    }
    if a.push {
        for o in &mut outputs {
            if let super::output::Output::Image { push, .. } = &mut o.output {
                *push = true;
            }
        }
    }
    let to_stdout = outputs.iter().filter(|o| {
        matches!(&o.output, super::output::Output::Oci { dest, .. } | super::output::Output::Docker { dest } | super::output::Output::Tar { dest } if dest == "-")
    }).count();
    if to_stdout > 1 {
        bail!("only one --output can write to standard output");
    }
    Ok((outputs, to_stdout))
}

fn progress_mode(a: &BuildArgs) -> Mode {
    match (a.quiet, a.progress) {
        (true, _) | (_, ProgressArg::Quiet) => Mode::Quiet,
        (_, ProgressArg::Plain) => Mode::Plain,
        (_, ProgressArg::Rawjson) => Mode::RawJson,
        (_, ProgressArg::Tty) => Mode::Tty,
        (_, ProgressArg::Auto) if std::io::stderr().is_terminal() => Mode::Tty,
        (_, ProgressArg::Auto) => Mode::Plain,
    }
}

/// Base images not in the store (all of them with `--pull`) come from their registries as the
/// Dockerfile is lowered (lazily: layers when a step needs them).
fn base_images(g: &Global, pull: bool, mode: Mode) -> crate::build::resolver::BaseImages {
    let g = g.clone();
    let puller = move |reference: &str, platform: &strata_solver::graph::Platform| {
        if mode != Mode::Quiet {
            eprintln!("pulling {}", familiar(reference));
        }
        let mut store = open_store(&g)?;
        super::registry::pull_image(&g, &mut store, reference, platform, true).map(|_| ())
    };
    crate::build::resolver::BaseImages {
        puller: Some(Arc::new(puller)),
        always: pull,
    }
}

/// The build request.
fn request(
    g: &Global,
    a: &BuildArgs,
    frontend: &super::args::FrontendArgs,
    df: &config::DockerfileSource,
    opts: strata_frontend::lower::BuildOptions,
    secrets: std::collections::BTreeMap<String, crate::build::runner::SecretSource>,
    ssh: std::collections::BTreeMap<String, PathBuf>,
) -> Result<BuildRequest> {
    let client =
        || -> Result<Arc<crate::registry::Client>> { Ok(Arc::new(super::registry::client(g)?)) };
    Ok(BuildRequest {
        root: g.root.clone(),
        context: std::fs::canonicalize(&frontend.context)
            .with_context(|| format!("opening the build context {}", frontend.context.display()))?,
        dockerfile_name: df.name.clone(),
        dockerfile: df.text.clone(),
        opts,
        // Tagged by the image output, below.
        tags: vec![],
        network: match a.network {
            Some(NetworkArg::Host) | None => NetworkMode::Host,
            Some(NetworkArg::None) => NetworkMode::None,
        },
        runtime: executor::runtime(g.runtime.as_deref())?,
        max_parallelism: a.max_parallelism,
        strata_exe: std::env::current_exe().context("finding the strata binary")?,
        registry: Some(Arc::new(super::registry::client(g)?)),
        secrets,
        ssh,
        allow_insecure: {
            for e in &a.allow {
                if e != "security.insecure" && e != "network.host" {
                    bail!("--allow {e}: strata knows security.insecure and network.host");
                }
            }
            a.allow.iter().any(|e| e == "security.insecure")
        },
        // As buildx: asking for the host's network with --network host grants it.
        allow_network_host: a.allow.iter().any(|e| e == "network.host")
            || a.network == Some(NetworkArg::Host),
        bases: base_images(g, a.pull, progress_mode(a)),
        platforms: match config::platforms(frontend)? {
            several if several.len() > 1 => several,
            _ => vec![],
        },
        // Where the kernel lists binfmt_misc handlers; STRATA_BINFMT_DIR points elsewhere
        // (tests that simulate a machine without an emulator).
        binfmt_dir: std::env::var_os("STRATA_BINFMT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(strata_executor::binfmt::BINFMT_DIR)),
        cache_from: a
            .cache_from
            .iter()
            .map(|s| {
                crate::build::remote_cache::parse(s, &client)
                    .map(|(l, _)| l)
                    .with_context(|| format!("--cache-from {s}"))
            })
            .collect::<Result<_>>()?,
        cache_to: a
            .cache_to
            .iter()
            .map(|s| {
                crate::build::remote_cache::parse(s, &client)
                    .map(|(l, m)| (l, m, crate::build::remote_cache::wants_cache_mounts(s)))
                    .with_context(|| format!("--cache-to {s}"))
            })
            .collect::<Result<_>>()?,
    })
}

/// Writes each output (the image is in the store already; named, exported, pushed).
fn export_outputs(
    g: &Global,
    store: &mut strata_cache::images::ImageStore,
    r: &crate::build::BuildResult,
    outputs: &[super::output::OutputSpec],
    tags: &[String],
    progress: &Progress,
) -> Result<Option<strata_cache::Digest>> {
    let id = r.image_id.as_str().to_string();
    let (mut pushed, mut written) = (None, None);
    for o in outputs {
        let v = match &o.output {
            super::output::Output::Image { .. } => "exporting to image".to_string(),
            other => format!("exporting to {}", describe(other)),
        };
        progress.start(&v, &v, &[]);
        if let super::output::Output::Image { names, .. } = &o.output {
            progress.log(&v, format!("writing image {id} done\n").as_bytes());
            for t in tags.iter().chain(names) {
                progress.log(&v, format!("naming to {t} done\n").as_bytes());
            }
        }
        let res = super::output::export(g, store, &id, tags, o);
        progress.done(&v, res.as_ref().err().map(|e| format!("{e:#}")).as_deref());
        // What a registry got wins over what an archive holds (the docker one, in Docker
        // media types, is another index).
        if let Some(d) = res? {
            match &o.output {
                super::output::Output::Image { .. } => pushed = Some(d),
                _ => {
                    written.get_or_insert(d);
                }
            }
        }
    }
    Ok(pushed.or(written))
}

/// What a build prints: the summary, the image ID (unless an archive went to standard
/// output), `--iidfile` and `--metadata-file`.
#[allow(clippy::too_many_arguments)]
fn report(
    a: &BuildArgs,
    r: &crate::build::BuildResult,
    pushed: Option<&strata_cache::Digest>,
    tags: &[String],
    mode: Mode,
    to_stdout: usize,
    progress: &Progress,
) -> Result<()> {
    // An image's ID is its config's digest; several platforms' is their index's, as the
    // output wrote or pushed it (layers compressed as asked), else as stored.
    let id = if r.platforms.is_empty() {
        r.image_id.as_str().to_string()
    } else {
        pushed.unwrap_or(&r.image_id).as_str().to_string()
    };
    if mode != Mode::Quiet {
        progress.finish();
        let why = crate::build::explain::summary(&r.misses)
            .map(|s| format!("; {s}"))
            .unwrap_or_default();
        eprintln!(
            "{} steps run, {} cached; tagged {}{why}",
            r.executed,
            r.cached,
            if tags.is_empty() {
                "nothing".to_string()
            } else {
                tags.iter()
                    .map(|t| familiar(t))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    // The ID on standard output, unless an archive went there.
    if to_stdout == 0 {
        println!("{id}");
    }
    if let Some(p) = &a.iidfile {
        write_file(p, id.as_bytes())?;
    }
    if let Some(p) = &a.metadata_file {
        // As buildx: an image's config digest and manifest digest (the one pushed, when it
        // was); for several platforms, the index's digest and the platforms.
        let mut m = if r.platforms.is_empty() {
            serde_json::json!({ "containerimage.config.digest": id })
        } else {
            serde_json::json!({
                "strata.platforms": r
                    .platforms
                    .iter()
                    .map(|(p, img)| serde_json::json!({ "platform": p.to_string(), "config.digest": img.as_str() }))
                    .collect::<Vec<_>>(),
            })
        };
        if let Some(d) = pushed.or(r.manifest_digest.as_ref()) {
            m["containerimage.digest"] = d.as_str().into();
        }
        // Why each step that ran missed the cache (strata's own key).
        m["strata.cache.misses"] = serde_json::to_value(&r.misses)?;
        if !tags.is_empty() {
            m["image.name"] = tags.join(",").into();
        }
        write_file(p, serde_json::to_string_pretty(&m)?.as_bytes())?;
    }
    Ok(())
}

fn write_file(p: &PathBuf, data: &[u8]) -> Result<()> {
    std::fs::write(p, data).with_context(|| format!("writing {}", p.display()))
}

fn describe(o: &super::output::Output) -> String {
    use super::output::Output;
    match o {
        Output::Image { .. } => "image".into(),
        Output::Oci { dest, tar: true } => format!("oci image format {dest}"),
        Output::Oci { dest, tar: false } => format!("oci layout directory {dest}"),
        Output::Docker { dest } => format!("docker image format {dest}"),
        Output::Local { dest } => format!("client directory {dest}"),
        Output::Tar { dest } => format!("client tarball {dest}"),
    }
}

/// `--secret id=ID,src=FILE` / `id=ID,env=VAR` (`source=` and `type=file|env` as in buildx).
pub fn parse_secrets(
    specs: &[String],
) -> Result<std::collections::BTreeMap<String, crate::build::runner::SecretSource>> {
    use crate::build::runner::SecretSource;
    let mut out = std::collections::BTreeMap::new();
    for s in specs {
        let mut id = None;
        let mut src = None;
        let mut env = None;
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(v.to_string()),
                Some(("env", v)) => env = Some(v.to_string()),
                Some(("type", "file" | "env")) => {}
                _ => bail!("--secret {s}: expected id=ID,src=FILE or id=ID,env=VAR"),
            }
        }
        let id = id
            .or_else(|| env.clone())
            .with_context(|| format!("--secret {s}: no id"))?;
        let source = match (src, env) {
            (Some(p), None) => SecretSource::File(PathBuf::from(p)),
            (None, Some(v)) => SecretSource::Env(v),
            (None, None) => SecretSource::Env(id.clone()),
            _ => bail!("--secret {s}: give src= or env=, not both"),
        };
        // Checked now, so a bad secret fails before anything runs; read again when used.
        crate::bounded::read_secret(&id, &source)
            .map_err(|e| anyhow::anyhow!("--secret {s}: {e}"))?;
        out.insert(id, source);
    }
    Ok(out)
}

/// `--ssh default` (the agent at $SSH_AUTH_SOCK) / `--ssh ID=SOCKET`.
pub fn parse_ssh(specs: &[String]) -> Result<std::collections::BTreeMap<String, PathBuf>> {
    let mut out = std::collections::BTreeMap::new();
    for s in specs {
        let (id, path) = match s.split_once('=') {
            Some((id, p)) => (id.to_string(), p.to_string()),
            None => (
                s.clone(),
                std::env::var("SSH_AUTH_SOCK")
                    .with_context(|| format!("--ssh {s}: SSH_AUTH_SOCK is not set"))?,
            ),
        };
        let p = PathBuf::from(&path);
        if !p.exists() {
            bail!("--ssh {s}: {path} does not exist");
        }
        out.insert(id, p);
    }
    Ok(out)
}
