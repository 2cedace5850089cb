//! `strata run`: a command in a container made of an image's layers plus a fresh writable
//! layer that is thrown away when the command exits.

use super::args::{NetworkArg, PullPolicy, RunArgs};
use super::config::Global;
use super::images::{find_for, open_store};
use anyhow::{Context, Result, bail};
use strata_executor::{self as executor, RunRequest, spec::Network};

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

/// As `docker run` does, the signals strata gets (SIGINT, SIGTERM, …) go to the container's
/// PID 1 (through the shim, which forwards them) instead of ending strata: blocked here, in the
/// only thread, and taken by a thread that sends each to the shim. A second SIGINT or SIGTERM
/// ends strata (and so the container).
fn proxy_signals(dir: &std::path::Path) -> Result<()> {
    use nix::sys::signal::Signal;
    // The ones the shim passes on, but the window size: the shim sees its changes itself.
    let mut mask = executor::init::forwarded();
    mask.remove(Signal::SIGWINCH);
    mask.thread_block().context("blocking signals")?;
    let shim_pid = dir.join("shim.pid");
    std::thread::spawn(move || {
        let mut stops = 0;
        while let Ok(sig) = mask.wait() {
            // A PID 1 that ignores SIGINT and SIGTERM (one without handlers does) keeps
            // running, as with docker run; asking a second time ends strata, and the
            // container with it.
            if matches!(sig, Signal::SIGINT | Signal::SIGTERM) {
                stops += 1;
                if stops > 1 {
                    std::process::exit(128 + sig as i32);
                }
            }
            let pid = std::fs::read_to_string(&shim_pid)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            match pid {
                Some(p) => {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), sig);
                }
                // Not started yet: the signal ends strata, as it would have.
                None => std::process::exit(128 + sig as i32),
            }
        }
    });
    Ok(())
}

/// The image to run, found as `docker run` finds it: in the local store, else (or always, as
/// `--pull` says) pulled for the platform asked for.
fn image(
    g: &Global,
    store: &mut strata_cache::images::ImageStore,
    a: &RunArgs,
) -> Result<strata_cache::images::Image> {
    let platform = a
        .platform
        .as_deref()
        .map(strata_oci::Platform::parse)
        .transpose()?;
    let local = find_for(store, &a.image, platform.as_ref())
        .ok()
        .filter(|img| {
            platform
                .as_ref()
                .is_none_or(|p| p.rank(&img.config.platform()).is_some())
        });
    match (a.pull, local) {
        (PullPolicy::Never, Some(img)) | (PullPolicy::Missing, Some(img)) => return Ok(img),
        (PullPolicy::Never, None) => match &platform {
            Some(p) => bail!("no such image: {} for {p} (and --pull=never)", a.image),
            None => bail!("no such image: {} (and --pull=never)", a.image),
        },
        (PullPolicy::Missing, None) => {
            eprintln!("Unable to find image '{}' locally", a.image);
        }
        (PullPolicy::Always, _) => {}
    }
    let asked = platform.clone();
    let platform = platform.unwrap_or_else(strata_oci::Platform::host);
    let pulled = super::registry::pull_image(g, store, &a.image, &platform, false)?;
    let img = store.image(pulled.image_id.as_str())?;
    // A registry's single-platform image is whatever it is: as docker, refuse another one
    // than asked for.
    if let Some(p) = asked
        && !p.same(&img.config.platform())
    {
        bail!(
            "image {} was found but does not match the specified platform: wanted {p}, actual: {}",
            a.image,
            img.config.platform()
        );
    }
    Ok(img)
}

pub fn run(g: &Global, a: &RunArgs) -> Result<i32> {
    // As docker: every -e variable needs a name (checked before anything is looked up).
    if let Some(e) = a.env.iter().find(|e| e.is_empty() || e.starts_with('=')) {
        anyhow::bail!(
            "invalid environment variable: {e:?}: the name is empty; write -e NAME=VALUE"
        );
    }
    let mut store = open_store(g)?;
    let _lock = strata_cache::lock::RootLock::shared(&g.root).context("locking the state root")?;
    let img = image(g, &mut store, a)?;
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
        init: a.init,
        copy_layers: g.config.snapshotter == super::config::Snapshotter::Native,
        mounts: vec![],
        secret_env: vec![],
    };
    let runtime = executor::runtime(g.runtime.as_deref())?;
    if a.init && runtime != executor::init::Runtime::Builtin {
        bail!(
            "--init needs the built-in runtime: with an external runtime, the command is PID 1 \
             (put an init such as tini in the image and make it the ENTRYPOINT instead)"
        );
    }
    executor::clean_stale_containers(&g.root.join("containers"));
    // The writable layer is thrown away whatever happens (when `container` drops).
    let container = executor::ContainerDir::create(&g.root.join("containers"), &id)?;
    let dir = container.path();
    proxy_signals(dir)?;
    let raw = if a.tty { RawMode::enable() } else { None };
    let result = executor::prepare_bundle(dir, &req)
        .map_err(anyhow::Error::from)
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
