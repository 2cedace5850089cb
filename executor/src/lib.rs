//! strata-executor: running processes in containers and file operations in private mount
//! namespaces. An image's layers (shared snapshots) plus one fresh writable layer are described
//! by a standard OCI bundle and run by the built-in runtime or by runc/crun.
//!
//! - [`spec`]: the OCI runtime spec with Docker's defaults;
//! - [`rootfs`]: mounts and masked paths, through [`sys::Syscall`];
//! - [`init`]: the re-executed processes (shim, container init) that do the privileged work;
//! - [`overlay`]: overlay stacks of layer snapshots (at most 500 lower layers);
//! - [`seccomp`]: the default seccomp profile, compiled to BPF;
//! - [`binfmt`]: other platforms' binaries through binfmt_misc and QEMU;
//! - [`native`]: the copying snapshotter for runtimes that cannot mount overlays;
//! - [`fileop`]: the re-executed file-operation process (`strata __fileop`);
//! - [`fileaction`]: COPY/ADD/WORKDIR semantics on a directory;
//! - [`user`]: USER and `--chown` names against an image's /etc/passwd and /etc/group.
//!
//! Architecture invariant: this is the only crate that mounts, forks a container or holds
//! `unsafe`. The functions the builder calls return [`ExecError`]; the re-executed processes'
//! entry points ([`init::shim`], [`init::init`], [`fileop::child`]) are process edges and report
//! with `anyhow`, the way a command line does.

pub mod binfmt;
mod error;
pub use error::ExecError;
use error::IoContext;
pub mod fileaction;
pub mod fileop;
pub mod init;
pub mod native;
pub mod overlay;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod sys;
pub mod user;

use init::{Layers, Runtime};
use spec::{Network, ProcessSpec};
use std::path::{Path, PathBuf};
use std::process::Command;
use strata_cache::inroot::Root;

/// A container to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Lower directories (layer snapshots), top layer first.
    pub lower: Vec<PathBuf>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// USER as written (resolved here against the image's files).
    pub user: String,
    pub hostname: String,
    pub network: Network,
    pub terminal: bool,
    pub privileged: bool,
    /// An init between PID 1 and the command (`strata run --init`; built-in runtime only).
    pub init: bool,
    /// Copy the layers instead of stacking them with overlayfs.
    pub copy_layers: bool,
    /// More mounts (RUN --mount).
    pub mounts: Vec<RunMount>,
    /// Environment variables whose values are secrets: name → file holding the value (outside
    /// the state root). Only the built-in runtime takes them (config.json never holds them).
    pub secret_env: Vec<(String, PathBuf)>,
}

/// One RUN --mount, as the executor makes it.
#[derive(Debug, Clone)]
pub enum RunMount {
    /// A host path: a context directory, a cache directory, a secret file, an agent socket.
    Bind {
        source: PathBuf,
        dest: String,
        readonly: bool,
    },
    Tmpfs {
        dest: String,
        size: Option<u64>,
    },
    /// Another stage's or image's layers (top first), `subpath` inside them; writes (when not
    /// read-only) are thrown away with the container.
    Layers {
        lower: Vec<PathBuf>,
        subpath: String,
        dest: String,
        readonly: bool,
    },
}

/// 64 random hex digits (container and temporary directory names).
pub fn random_id() -> String {
    let mut b = [0u8; 32];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok();
    if !ok {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let d = strata_cache::Digest::of(format!("{t}-{}", std::process::id()).as_bytes());
        return d.hex().to_string();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Picks the runtime for `--runtime` (none: built-in).
pub fn runtime(name: Option<&str>) -> Result<Runtime, ExecError> {
    match name {
        None | Some("builtin") | Some("strata") => Ok(Runtime::Builtin),
        Some(n) if n.contains('/') => Ok(Runtime::External(PathBuf::from(n))),
        Some(n) => {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .map(|d| d.join(n))
                .find(|p| p.is_file())
                .map(Runtime::External)
                .ok_or_else(|| ExecError::RuntimeNotFound(n.to_string()))
        }
    }
}

/// The most of an image's /etc/passwd or /etc/group read to resolve USER.
const ETC_FILE_LIMIT: u64 = 16 << 20;

/// The layers (top first) opened once as roots to resolve paths in.
fn layer_roots(lower: &[PathBuf]) -> Vec<Root> {
    lower.iter().filter_map(|l| Root::open(l).ok()).collect()
}

/// The file at `path` in the merged view of `layers` (top first), ignoring whiteouts'
/// details: the first layer that has it wins. Resolved by the kernel inside each layer.
fn read_from_layers(layers: &[Root], path: &str) -> Option<String> {
    layers
        .iter()
        .find_map(|r| r.read_file(path, ETC_FILE_LIMIT).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Whether something is at `path` (not following its last component) in one of `layers`.
fn in_layers(layers: &[Root], path: &Path) -> bool {
    layers.iter().any(|r| r.resolve(path, false).is_ok())
}

/// Writes the bundle of a container under `dir` (which is created): config.json, layers.json,
/// the upper and work directories, the rootfs mount point, and the /etc files it bind-mounts.
// Long: the bundle's files in order: user, environment, hosts, resolv.conf, mounts, spec, layers.
pub fn prepare_bundle(dir: &Path, req: &RunRequest) -> Result<(), ExecError> {
    for d in ["rootfs", "upper", "work"] {
        std::fs::create_dir_all(dir.join(d))
            .doing(|| format!("creating {}", dir.join(d).display()))?;
    }
    let layers = layer_roots(&req.lower);
    let passwd = read_from_layers(&layers, "/etc/passwd").unwrap_or_default();
    let group = read_from_layers(&layers, "/etc/group").unwrap_or_default();
    let u = crate::user::resolve(&req.user, &passwd, &group)?;
    let mut env = req.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", u.home));
    }
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={}", req.hostname));
    }
    let hosts = dir.join("hosts");
    std::fs::write(
        &hosts,
        format!(
            "127.0.0.1\tlocalhost {h}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            h = req.hostname
        ),
    )
    .doing(|| format!("writing {}", hosts.display()))?;
    let resolv = dir.join("resolv.conf");
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv_text = if req.network == Network::None || host_resolv.contains("nameserver 127.") {
        // No network, or the host's resolver is on its own loopback: give public defaults.
        "nameserver 8.8.8.8\nnameserver 8.8.4.4\n".to_string()
    } else {
        host_resolv
    };
    std::fs::write(&resolv, resolv_text).doing(|| format!("writing {}", resolv.display()))?;
    let hostname = dir.join("hostname");
    std::fs::write(&hostname, format!("{}\n", req.hostname))
        .doing(|| format!("writing {}", hostname.display()))?;
    let mut extra_mounts = Vec::new();
    let mut extra = Vec::new();
    for (n, m) in req.mounts.iter().enumerate() {
        // Every mount a step gets is `nodev`: the built-in runtime has no devices cgroup, so a
        // node a step makes in a cache or a stage's layer must not open the host's device.
        let ro = |readonly: bool| {
            let mut o = vec!["rbind".to_string(), "nodev".to_string()];
            if readonly {
                o.push("ro".into());
            }
            o
        };
        match m {
            RunMount::Bind {
                source,
                dest,
                readonly,
            } => extra_mounts.push((
                dest.clone(),
                "bind".into(),
                source.to_string_lossy().into_owned(),
                ro(*readonly),
            )),
            RunMount::Tmpfs { dest, size } => {
                let mut o = vec!["nosuid".to_string(), "nodev".into()];
                if let Some(s) = size {
                    o.push(format!("size={s}"));
                }
                extra_mounts.push((dest.clone(), "tmpfs".into(), "tmpfs".into(), o));
            }
            RunMount::Layers {
                lower,
                subpath,
                dest,
                readonly,
            } => {
                let base = dir.join("extra").join(n.to_string());
                for d in ["root", "upper", "work"] {
                    std::fs::create_dir_all(base.join(d))
                        .doing(|| format!("creating {}", base.join(d).display()))?;
                }
                let lower = if lower.is_empty() {
                    std::fs::create_dir_all(base.join("empty"))
                        .doing(|| format!("creating {}", base.join("empty").display()))?;
                    vec![base.join("empty")]
                } else {
                    lower.clone()
                };
                extra.push(init::ExtraFs {
                    lower,
                    upper: (!readonly).then(|| (base.join("upper"), base.join("work"))),
                    root: base.join("root"),
                    subpath: PathBuf::from(subpath),
                    src: base.join("src"),
                });
                extra_mounts.push((
                    dest.clone(),
                    "bind".into(),
                    base.join("src").to_string_lossy().into_owned(),
                    ro(*readonly),
                ));
            }
        }
    }
    let p = ProcessSpec {
        extra_mounts,
        args: req.args.clone(),
        env,
        cwd: if req.cwd.is_empty() {
            "/".into()
        } else {
            req.cwd.clone()
        },
        uid: u.uid,
        gid: u.gid,
        additional_gids: u.additional_gids,
        terminal: req.terminal,
        hostname: req.hostname.clone(),
        network: req.network,
        etc_files: vec![
            (hosts, "/etc/hosts"),
            (resolv, "/etc/resolv.conf"),
            (hostname, "/etc/hostname"),
        ],
        privileged: req.privileged,
    };
    let spec = spec::build(&p)?;
    spec.save(dir.join("config.json"))
        .map_err(ExecError::Spec)?;
    // Compiled here, once per process, so no container's init compiles the profile.
    if let Some(progs) = seccomp::for_spec(&spec)? {
        seccomp::write_programs(&dir.join(init::SECCOMP_FILE), &progs)
            .doing(|| "writing the seccomp filter".into())?;
    }
    if req.copy_layers {
        native::materialize(&req.lower, &dir.join("rootfs"))?;
    }
    // Mount points the image does not have: the runtime creates them in the writable layer.
    let mut stubs = Vec::new();
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let dest = m.destination();
        let mut p = PathBuf::from("/");
        for c in dest.components().skip(1) {
            p.push(c);
            let exists = in_layers(&layers, &p);
            if !exists && !stubs.contains(&p) {
                stubs.push(p.clone());
            }
        }
    }
    // An empty image (FROM scratch): overlayfs needs one lower directory.
    let lower = if req.lower.is_empty() {
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).doing(|| format!("creating {}", empty.display()))?;
        vec![empty]
    } else {
        req.lower.clone()
    };
    if !req.secret_env.is_empty() {
        let json = serde_json::to_vec(&req.secret_env).map_err(|source| ExecError::Json {
            what: "encoding the secret environment",
            source,
        })?;
        std::fs::write(dir.join("secret-env.json"), json)
            .doing(|| "writing the secret environment".into())?;
    }
    let layers = Layers {
        extra,
        lower,
        upper: dir.join("upper"),
        work: dir.join("work"),
        copied: req.copy_layers,
        stubs,
    };
    let json = serde_json::to_vec_pretty(&layers).map_err(|source| ExecError::Json {
        what: "encoding layers.json",
        source,
    })?;
    std::fs::write(dir.join("layers.json"), json).doing(|| "writing layers.json".into())?;
    if req.init {
        std::fs::write(dir.join(init::WITH_INIT_FILE), b"")
            .doing(|| "writing the init marker".into())?;
    }
    Ok(())
}

/// How a container's standard input and output connect to strata's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// `-t`: the init relays strata's terminal to a pseudo-terminal of the container's own.
    Terminal,
    /// Pipes that strata relays: the container never holds strata's own descriptors (a
    /// terminal among them). Standard input is relayed when `stdin` is set (`-i`), else empty.
    Pipes { stdin: bool },
}

/// Runs a prepared bundle through the shim; returns the process's exit code (128+N when killed
/// by signal N).
pub fn run_bundle(dir: &Path, id: &str, runtime: &Runtime, stdio: Stdio) -> Result<i32, ExecError> {
    let exe = std::env::current_exe().doing(|| "finding the strata binary".into())?;
    run_bundle_with(&exe, dir, id, runtime, stdio)
}

/// The shim's command: strata's environment stays out of it (and so of the container's init),
/// but for the log filter.
fn shim_command(strata: &Path, dir: &Path, id: &str, runtime: &Runtime) -> Command {
    let mut cmd = Command::new(strata);
    cmd.arg("__shim").arg(dir).arg("--id").arg(id).env_clear();
    if let Some(filter) = std::env::var_os("STRATA_LOG") {
        cmd.env("STRATA_LOG", filter);
    }
    if let Runtime::External(p) = runtime {
        cmd.arg("--runtime-path").arg(p);
    }
    cmd
}

/// [`run_bundle`] with an explicit strata binary (for callers that are not strata itself).
pub fn run_bundle_with(
    strata: &Path,
    dir: &Path,
    id: &str,
    runtime: &Runtime,
    stdio: Stdio,
) -> Result<i32, ExecError> {
    use std::process::Stdio as S;
    if !rustix::process::geteuid().is_root() {
        return Err(ExecError::NeedsRoot(
            "running containers needs root (namespaces and overlay mounts)",
        ));
    }
    let mut cmd = shim_command(strata, dir, id, runtime);
    if let Stdio::Pipes { stdin } = stdio {
        cmd.stdin(if stdin { S::piped() } else { S::null() })
            .stdout(S::piped())
            .stderr(S::piped());
    }
    let mut child = cmd.spawn().doing(|| "starting the container shim".into())?;
    let _ = std::fs::write(dir.join("shim.pid"), child.id().to_string());
    let (input, out, err) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let status = std::thread::scope(|s| {
        if let Some(mut to) = input {
            // Not joined: a read of strata's standard input may block after the container is
            // gone; the thread ends with strata.
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to);
            });
        }
        let relays: Vec<_> = [
            out.map(|o| s.spawn(move || relay_to(o, std::io::stdout()))),
            err.map(|e| s.spawn(move || relay_to(e, std::io::stderr()))),
        ]
        .into_iter()
        .flatten()
        .collect();
        let status = child.wait();
        for r in relays {
            let _ = r.join();
        }
        status
    })
    .doing(|| "waiting for the container".into())?;
    Ok(status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    }))
}

/// Copies a container's output pipe to strata's own output as it arrives.
fn relay_to(from: impl std::io::Read, mut to: impl std::io::Write) {
    let _ = read_chunks(from, &mut |b| {
        to.write_all(b).and_then(|_| to.flush()).is_ok()
    });
}

/// Hands what `from` gives to `each` as it arrives, until the end, an error, or `each` says
/// to stop.
fn read_chunks(
    mut from: impl std::io::Read,
    each: &mut dyn FnMut(&[u8]) -> bool,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                if !each(&buf[..n]) {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// [`run_bundle_with`], with the process's standard output and error (one pipe, in the order
/// written) handed to `log` as they arrive instead of inherited; standard input is empty.
pub fn run_bundle_logged(
    strata: &Path,
    dir: &Path,
    id: &str,
    runtime: &Runtime,
    log: &mut dyn FnMut(&[u8]),
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<i32, ExecError> {
    if !rustix::process::geteuid().is_root() {
        return Err(ExecError::NeedsRoot(
            "running containers needs root (namespaces and overlay mounts)",
        ));
    }
    let (mut reader, writer) = std::io::pipe().doing(|| "creating the output pipe".into())?;
    let mut cmd = shim_command(strata, dir, id, runtime);
    cmd.stdin(std::process::Stdio::null())
        .stdout(
            writer
                .try_clone()
                .doing(|| "duplicating the output pipe".into())?,
        )
        .stderr(writer);
    let mut child = cmd.spawn().doing(|| "starting the container shim".into())?;
    drop(cmd); // our copies of the pipe's write end, so reading ends with the container
    let _ = std::fs::write(dir.join("shim.pid"), child.id().to_string());
    let pid = rustix::process::Pid::from_raw(child.id() as i32);
    // Dropped when the container is done, which wakes the watcher at once.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let status = std::thread::scope(|s| {
        // Another step failed: stop this one (the shim takes its container down with it).
        s.spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                done_rx.recv_timeout(std::time::Duration::from_millis(20))
            {
                if stop() {
                    if let Some(pid) = pid {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                    }
                    break;
                }
            }
        });
        let read = read_chunks(&mut reader, &mut |b| {
            log(b);
            true
        });
        let status = child.wait();
        drop(done_tx);
        read.doing(|| "reading the container's output".into())?;
        status.doing(|| "waiting for the container".into())
    })?;
    Ok(status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    }))
}

/// The directory of one container's bundle under `containers/`, owned by this process: it
/// holds an exclusive `flock` on `ID/lock` for as long as it lives, so
/// [`clean_stale_containers`] in another process can tell a live container from the remains
/// of a killed strata. Dropping it removes the directory.
#[derive(Debug)]
pub struct ContainerDir {
    dir: PathBuf,
    _lock: std::fs::File,
}

impl ContainerDir {
    /// Creates `containers/ID` and takes its lock. The lock file is locked under a temporary
    /// name and renamed into place, so a `lock` file that can be locked by someone else always
    /// means its owner is gone.
    pub fn create(containers: &Path, id: &str) -> Result<ContainerDir, ExecError> {
        use rustix::fs::{FlockOperation, flock};
        let dir = containers.join(id);
        strata_cache::root::private_dir_all(containers)
            .doing(|| format!("creating {}", containers.display()))?;
        std::fs::create_dir(&dir).doing(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join("lock.tmp");
        let lock = std::fs::File::create(&tmp)
            .and_then(|f| {
                flock(&f, FlockOperation::LockExclusive)?;
                std::fs::rename(&tmp, dir.join("lock"))?;
                Ok(f)
            })
            .doing(|| format!("locking {}", dir.display()));
        match lock {
            Ok(_lock) => Ok(ContainerDir { dir, _lock }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ContainerDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!("could not remove {}: {e}", self.dir.display());
        }
    }
}

/// Removes the bundles of containers whose owner is gone (strata was killed before it could
/// clean up). A bundle is live while its owner holds the lock (see [`ContainerDir`]) or its
/// shim still runs (a runtime may still be tearing the container down); a bundle without a
/// lock file is being created unless it is over a minute old.
pub fn clean_stale_containers(containers: &Path) {
    use rustix::fs::{FlockOperation, flock};
    let Ok(rd) = std::fs::read_dir(containers) else {
        return;
    };
    for e in rd.flatten() {
        let dir = e.path();
        let shim_alive = std::fs::read_to_string(dir.join("shim.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .is_some_and(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains("__shim"))
                    .unwrap_or(false)
            });
        if shim_alive {
            continue;
        }
        // Held while we remove it, so no one else is half way through it.
        let _held: Option<std::fs::File> = match std::fs::File::open(dir.join("lock")) {
            Ok(f) => match flock(&f, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => Some(f),
                Err(_) => continue, // its owner is alive
            },
            Err(_) => {
                let young = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .map(|t| t.elapsed().map(|d| d.as_secs() < 60).unwrap_or(true))
                    .unwrap_or(true);
                if young {
                    continue; // being created right now
                }
                None
            }
        };
        tracing::debug!("removing the stale container {}", dir.display());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Makes the writable layer of a finished container a layer (moved into the snapshots, not
/// copied), without the mount points the runtime had to create and the directories it copied
/// up only to hold them. `None` when the process changed nothing.
pub fn commit_upper(
    dir: &Path,
    store: &mut strata_cache::images::ImageStore,
    clamp_mtime: Option<i64>,
) -> Result<Option<strata_cache::metadata::LayerRecord>, ExecError> {
    let layers: Layers = serde_json::from_slice(
        &std::fs::read(dir.join("layers.json")).doing(|| "reading layers.json".into())?,
    )
    .map_err(|source| ExecError::Json {
        what: "parsing layers.json",
        source,
    })?;
    if layers.copied {
        return Err(ExecError::NoWritableLayer);
    }
    remove_stubs(&layers)?;
    Ok(store.commit_layer(&layers.upper, clamp_mtime)?)
}

/// Removes from the upper directory the mount points the runtime had to create (empty
/// directories and files), and the directories copied up only to hold them. The container
/// may have moved or replaced any of them (a stub's directory renamed, a symlink put in its
/// place): every path is resolved inside the upper directory with no symlink allowed, and
/// each removal is an `unlinkat` in the directory found, so nothing outside is touched.
fn remove_stubs(layers: &Layers) -> Result<(), ExecError> {
    use rustix::fs::{AtFlags, FileType};
    use std::os::unix::fs::MetadataExt;
    let upper = Root::open(&layers.upper).map_err(|source| ExecError::InRoot {
        what: "opening the writable layer",
        source,
    })?;
    let lower = layer_roots(&layers.lower);
    let mut stubs = layers.stubs.clone();
    stubs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    let parent_and_name = |p: &Path| -> Option<(strata_cache::inroot::Entry, std::ffi::OsString)> {
        let name = p.file_name()?.to_os_string();
        let parent = upper
            .resolve_no_symlinks(p.parent().unwrap_or(Path::new("/")))
            .ok()?;
        Some((parent, name))
    };
    for s in &stubs {
        let Some((dir, name)) = parent_and_name(s) else {
            continue;
        };
        let Ok(m) = dir.child_metadata(&name) else {
            continue;
        };
        let kind = FileType::from_raw_mode(m.mode());
        if kind == FileType::Directory {
            let _ = rustix::fs::unlinkat(dir.fd(), &name, AtFlags::REMOVEDIR); // only when empty
        } else if kind == FileType::RegularFile && m.len() == 0 {
            let _ = rustix::fs::unlinkat(dir.fd(), &name, AtFlags::empty());
        }
    }
    // Directories copied up only because a stub was created in them: empty now, and the same
    // as below (owner, mode).
    for s in &stubs {
        let mut cur = s.parent();
        while let Some(rel) = cur.filter(|r| *r != Path::new("/")) {
            let Some((dir, name)) = parent_and_name(rel) else {
                break;
            };
            let Ok(up) = dir.open_dir(&name) else {
                break;
            };
            let Ok(m) = up.metadata() else {
                break;
            };
            let empty = std::fs::read_dir(up.path()).is_ok_and(|mut d| d.next().is_none());
            let opaque = xattr::get(up.path().join("."), "trusted.overlay.opaque")
                .ok()
                .flatten()
                .is_some();
            let below = lower
                .iter()
                .find_map(|r| r.resolve(rel, false).ok().and_then(|e| e.metadata().ok()));
            let same = below.is_some_and(|b| {
                b.is_dir() && b.mode() == m.mode() && b.uid() == m.uid() && b.gid() == m.gid()
            });
            if !(empty && !opaque && same)
                || rustix::fs::unlinkat(dir.fd(), &name, AtFlags::REMOVEDIR).is_err()
            {
                break;
            }
            cur = rel.parent();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (CI, stop 9): one `strata run` cleaning up removed the bundle of another
    /// that was starting on the same root.
    #[test]
    fn cleanup_keeps_live_containers_and_removes_dead_ones() {
        let root = tempfile::tempdir().unwrap();
        let containers = root.path().join("containers");
        let live = ContainerDir::create(&containers, "live").unwrap();
        std::fs::write(live.path().join("layers.json"), "{}").unwrap();
        // The remains of a killed strata: the lock file is there, no one holds it.
        let dead = containers.join("dead");
        std::fs::create_dir_all(dead.join("upper")).unwrap();
        std::fs::write(dead.join("lock"), "").unwrap();
        // A bundle being created right now (no lock file yet).
        let young = containers.join("young");
        std::fs::create_dir(&young).unwrap();
        clean_stale_containers(&containers);
        assert!(live.path().join("layers.json").exists());
        assert!(!dead.exists());
        assert!(young.exists());
        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists());
    }

    #[test]
    fn two_containers_cannot_share_an_id() {
        let root = tempfile::tempdir().unwrap();
        let _a = ContainerDir::create(root.path(), "same").unwrap();
        assert!(ContainerDir::create(root.path(), "same").is_err());
        assert!(root.path().join("same/lock").exists());
    }
}
