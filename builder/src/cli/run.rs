//! `strata run`: a command in a container made of an image's layers plus a fresh writable
//! layer that is thrown away when the command exits.

use super::args::{NetworkArg, RunArgs};
use super::config::Global;
use super::images::{find, open_store};
use crate::executor::{self, RunRequest, spec::Network};
use anyhow::{Context, Result, bail};

/// The terminal in raw mode while a `-t` container runs; restored when dropped.
struct RawMode(rustix::termios::Termios);

impl RawMode {
    fn enable() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.0,
        );
    }
}

pub fn run(g: &Global, a: &RunArgs) -> Result<i32> {
    // As docker: every -e variable needs a name (checked before anything is looked up).
    if let Some(e) = a.env.iter().find(|e| e.is_empty() || e.starts_with('=')) {
        anyhow::bail!(
            "invalid environment variable: {e:?}: the name is empty; write -e NAME=VALUE"
        );
    }
    let store = open_store(g)?;
    let _lock = strata_cache::lock::RootLock::shared(&g.root).context("locking the state root")?;
    let img = find(&store, &a.image)?;
    let mut store = store;
    super::registry::ensure_image(g, &mut store, &img)?;
    let cfg = &img.config.config;
    // Top layer first.
    let lower: Vec<_> = img
        .record
        .layers
        .iter()
        .rev()
        .map(|d| store.snapshot_dir(d))
        .collect();
    for l in &lower {
        if !l.is_dir() {
            anyhow::bail!(
                "layer snapshot {} is missing: re-import or rebuild the image",
                l.display()
            );
        }
    }
    let image_entrypoint = cfg.entrypoint.clone().unwrap_or_default();
    let image_cmd = cfg.cmd.clone().unwrap_or_default();
    let entrypoint = match &a.entrypoint {
        Some(e) if e.is_empty() => vec![],
        Some(e) => vec![e.clone()],
        None => image_entrypoint,
    };
    let cmd = if !a.command.is_empty() {
        a.command.clone()
    } else if a.entrypoint.is_some() {
        vec![]
    } else {
        image_cmd
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        anyhow::bail!(
            "no command specified: give one after the image name, or use an image with CMD or ENTRYPOINT"
        );
    }
    let mut env = cfg.env.clone();
    for e in &a.env {
        let (k, v) = match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), std::env::var(e).unwrap_or_default()),
        };
        env.retain(|x| x.split_once('=').map(|(xk, _)| xk) != Some(k.as_str()));
        env.push(format!("{k}={v}"));
    }
    let id = executor::random_id();
    let req = RunRequest {
        lower,
        args,
        env,
        cwd: a
            .workdir
            .clone()
            .or_else(|| Some(cfg.working_dir.clone()))
            .unwrap_or_default(),
        user: a
            .user
            .clone()
            .or_else(|| Some(cfg.user.clone()))
            .unwrap_or_default(),
        hostname: id[..12].to_string(),
        network: match a.network {
            NetworkArg::Host => Network::Host,
            NetworkArg::None => Network::None,
        },
        terminal: a.tty,
        privileged: a.privileged,
        copy_layers: g.config.snapshotter == super::config::Snapshotter::Native,
        mounts: vec![],
        secret_env: vec![],
    };
    let runtime = executor::runtime(g.runtime.as_deref())?;
    executor::clean_stale_containers(&g.root.join("containers"));
    // The writable layer is thrown away whatever happens (when `container` drops).
    let container = executor::ContainerDir::create(&g.root.join("containers"), &id)?;
    let dir = container.path();
    let raw = if a.tty { RawMode::enable() } else { None };
    let result = executor::prepare_bundle(dir, &req)
        .and_then(|_| {
            let stdio = if a.tty {
                executor::Stdio::Terminal
            } else {
                executor::Stdio::Pipes {
                    stdin: a.interactive,
                }
            };
            let code = executor::run_bundle(dir, &id, &runtime, stdio)?;
            match executor::init::setup_error(dir) {
                Some(why) if code != 0 => bail!("the container could not start: {why}"),
                _ => Ok(code),
            }
        })
        .with_context(|| format!("running {}", a.image));
    drop(raw);
    result
}
