//! The processes that run a container. Each is strata re-executed with a hidden subcommand, so
//! none of this runs in a fork of a multi-threaded process:
//!
//! 1. the **shim** (`strata __shim BUNDLE`): dies with its parent; enters a private mount
//!    namespace, mounts the overlay root filesystem at `BUNDLE/rootfs`, and either runs
//!    `runc run` on the bundle, or (built-in runtime) creates the spec's other namespaces and
//!    starts
//! 2. the **init** (`strata __init BUNDLE`), PID 1 of the new PID namespace: mounts what the
//!    spec asks for, pivots into the root filesystem, hides masked paths, sets the hostname,
//!    brings up loopback, drops capabilities, installs the seccomp filter, then becomes the
//!    command (exec), so the command is PID 1 as in BuildKit and `docker run`. With
//!    `strata run --init` (a bundle with [`WITH_INIT_FILE`]) it stays PID 1 instead, starts
//!    the command as its child, forwards signals to it and reaps orphans, as Docker's init.
//!
//! The shim forwards the signals strata gets to PID 1 (from outside the PID namespace, as runc
//! does: a PID 1 without a handler for a signal does not get it) and, with a terminal, relays
//! it: the init opens the pty in the container's devpts and sends its master side to the shim
//! over the console socket (descriptor [`CONSOLE_FD`]).
//!
//! When strata dies, the shim dies (parent-death signal), then PID 1, and with it the kernel
//! kills every process of the PID namespace; the mount namespace and its mounts go with the
//! last process. Nothing is left on the host.

use super::rootfs;
use super::sys::{LinuxSyscall, Syscall};
use anyhow::{Context, Result, bail};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the shim needs beyond config.json: where the layers are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Layers {
    /// Lower directories, top layer first.
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// The root filesystem was copied into `rootfs` (native snapshotter): no overlay.
    #[serde(default)]
    pub copied: bool,
    /// Mount points the image lacks, which the runtime creates in the writable layer; they are
    /// removed before the writable layer becomes a snapshot.
    #[serde(default)]
    pub stubs: Vec<PathBuf>,
    /// Filesystems of other stages or images the step mounts (`RUN --mount=type=bind,from=`):
    /// the shim stacks each and binds the path asked for at `src`, resolved inside it.
    #[serde(default)]
    pub extra: Vec<ExtraFs>,
}

/// One extra filesystem for a bind mount.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtraFs {
    /// Lower directories, top first.
    pub lower: Vec<PathBuf>,
    /// Upper and work directories when writes are allowed (they are thrown away).
    pub upper: Option<(PathBuf, PathBuf)>,
    /// Where the stack is mounted.
    pub root: PathBuf,
    /// The path inside it to bind.
    pub subpath: PathBuf,
    /// The bind mount's source (a stub the shim binds the subpath onto).
    pub src: PathBuf,
}

/// Unshares a mount namespace whose mounts do not propagate back to the host.
pub(crate) fn private_mount_namespace() -> Result<()> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).context("creating a mount namespace")?;
    LinuxSyscall
        .mount(
            None,
            Path::new("/"),
            None,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None,
        )
        .context("making mounts private")?;
    Ok(())
}

/// Stacks read-only layers (top first) at `target`: a bind mount for one layer (overlayfs
/// wants two lower directories without an upper one), a read-only overlay for more.
pub(crate) fn mount_layers_ro(lower: &[PathBuf], target: &Path) -> Result<()> {
    if let [one] = lower {
        return LinuxSyscall
            .mount(
                Some(one),
                target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .context("binding a layer");
    }
    super::overlay::check_depth(lower.len())?;
    super::overlay::mount_stack(lower, None, target).context("mounting read-only layers")
}

/// Mounts the extra filesystems of a step (in the shim's private namespace).
fn mount_extra(extra: &[ExtraFs]) -> Result<()> {
    for e in extra {
        match &e.upper {
            None => {
                mount_layers_ro(&e.lower, &e.root).context("mounting a stage for RUN --mount")?
            }
            Some((upper, work)) => mount_overlay(
                &Layers {
                    lower: e.lower.clone(),
                    upper: upper.clone(),
                    work: work.clone(),
                    copied: false,
                    stubs: vec![],
                    extra: vec![],
                },
                &e.root,
            )?,
        }
        // The path asked for, resolved by the kernel inside the mounted stack and bound from
        // its descriptor: no symlink in the stage leads the mount out of it.
        let inside = strata_cache::inroot::Root::open(&e.root)
            .and_then(|r| r.resolve(&e.subpath, true))
            .with_context(|| format!("RUN --mount source {}", e.subpath.display()))?;
        if inside.is_dir() {
            std::fs::create_dir_all(&e.src)?;
        } else {
            std::fs::write(&e.src, b"")?;
        }
        LinuxSyscall
            .mount(Some(inside.path()), &e.src, None, MsFlags::MS_BIND, None)
            .with_context(|| format!("binding {} of a mounted stage", e.subpath.display()))?;
    }
    Ok(())
}

/// Which runtime executes the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Runtime {
    Builtin,
    /// An external OCI runtime binary (runc, crun, a path).
    External(PathBuf),
}

fn die_with_parent() -> Result<()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .context("setting the parent-death signal")
}

/// Signals the shim (and an init under `--init`) pass on to the command.
pub fn forwarded() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        s.add(sig);
    }
    s
}

/// Mounts the layers with a writable layer on top (`l.upper`), `nodev`.
pub(crate) fn mount_overlay(l: &Layers, target: &Path) -> Result<()> {
    super::overlay::check_depth(l.lower.len())?;
    super::overlay::mount_stack(&l.lower, Some((&l.upper, &l.work)), target).with_context(|| {
        format!(
            "mounting the overlay root filesystem at {}",
            target.display()
        )
    })
}

fn load_spec(bundle: &Path) -> Result<Spec> {
    Spec::load(bundle.join("config.json"))
        .with_context(|| format!("reading {}/config.json", bundle.display()))
}

fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

/// The descriptor the console socket has in the init.
pub const CONSOLE_FD: i32 = 3;

/// The file in a bundle that asks for an init between PID 1 and the command (`--init`).
pub const WITH_INIT_FILE: &str = "with-init";

/// Stage 1.
pub fn shim(bundle: &Path, runtime: &Runtime, id: &str) -> Result<i32> {
    // The parent (strata) whose death ends the container: the built-in runtime's shim then
    // kills PID 1 from outside its namespace (SIGTERM tells it, see `supervise`).
    let parent = nix::unistd::getppid();
    if *runtime == Runtime::Builtin {
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
            .context("setting the parent-death signal")?;
        if nix::unistd::getppid() != parent {
            bail!("strata exited before the container started");
        }
    }
    // Ctrl-C reaches the whole process group: the shim forwards it to PID 1 (the built-in
    // runtime), or the runtime does. The status says what happened.
    let mut int = SigSet::empty();
    int.add(Signal::SIGINT);
    int.thread_block().context("blocking SIGINT")?;
    let layers: Layers = serde_json::from_slice(
        &std::fs::read(bundle.join("layers.json")).context("reading layers.json")?,
    )
    .context("parsing layers.json")?;
    private_mount_namespace().context("strata run needs root")?;
    let rootfs = bundle.join("rootfs");
    if layers.copied {
        // pivot_root needs a mount point.
        LinuxSyscall
            .mount(
                Some(&rootfs),
                &rootfs,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .context("bind-mounting the copied root filesystem")?;
        LinuxSyscall
            .mount(
                None,
                &rootfs,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV,
                None,
            )
            .context("making the copied root filesystem nodev")?;
    } else {
        mount_overlay(&layers, &rootfs)?;
        mount_extra(&layers.extra)?;
    }
    match runtime {
        Runtime::External(bin) => external(bin, bundle, id),
        Runtime::Builtin => {
            let spec = load_spec(bundle)?;
            let mut flags = CloneFlags::empty();
            for ns in spec
                .linux()
                .as_ref()
                .and_then(|l| l.namespaces().clone())
                .unwrap_or_default()
            {
                flags |= match ns.typ() {
                    LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
                    LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
                    LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
                    LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
                    LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
                    _ => CloneFlags::empty(),
                };
            }
            nix::sched::unshare(flags).context("creating the container's namespaces")?;
            // The signals strata gets go to PID 1 (through this signalfd).
            let mut mask = forwarded();
            mask.add(Signal::SIGCHLD);
            mask.thread_block().context("blocking signals")?;
            let sfd = SignalFd::with_flags(&mask, nix::sys::signalfd::SfdFlags::SFD_CLOEXEC)
                .context("signalfd")?;
            let terminal = spec
                .process()
                .as_ref()
                .and_then(|p| p.terminal())
                .unwrap_or(false);
            let console = if terminal {
                use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
                Some(
                    socketpair(
                        AddressFamily::UNIX,
                        SocketType::STREAM,
                        SocketFlags::CLOEXEC,
                        None,
                    )
                    .context("making the console socket")?,
                )
            } else {
                None
            };
            let exe = std::env::current_exe().context("finding the strata binary")?;
            let mut cmd = Command::new(exe);
            // The init is PID 1 of the container: it gets none of strata's environment.
            cmd.arg("__init").arg(bundle).env_clear();
            unblock_signals_in_child(&mut cmd, Start::Helper);
            if let Some((_, theirs)) = &console {
                pass_console(&mut cmd, theirs.as_raw_fd());
            }
            let child = cmd.spawn().context("starting the container init")?;
            let pid1 = Pid::from_raw(child.id() as i32);
            drop(child);
            drop(cmd);
            let pty = match console {
                Some((ours, theirs)) => {
                    drop(theirs);
                    receive_console(&ours)
                }
                None => None,
            };
            supervise(pid1, pty.as_ref(), &sfd, Some(parent))
        }
    }
}

/// Gives the init being started the console socket as descriptor [`CONSOLE_FD`].
#[allow(unsafe_code)]
fn pass_console(cmd: &mut Command, fd: i32) {
    // SAFETY: runs in the child between fork and exec; dup2 and fcntl are async-signal-safe
    // and the closure allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if fd != CONSOLE_FD && nix::libc::dup2(fd, CONSOLE_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if nix::libc::fcntl(CONSOLE_FD, nix::libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The pty master the init sends over the console socket (`None` when it exits first).
fn receive_console(sock: &rustix::fd::OwnedFd) -> Option<rustix::fd::OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    recvmsg(
        sock,
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .ok()?;
    let fd = control.drain().find_map(|m| match m {
        RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
        _ => None,
    })?;
    rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::NONBLOCK).ok()?;
    Some(fd)
}

/// Sends the pty master to the shim over the console socket.
fn send_console(sock: &rustix::fd::OwnedFd, master: &rustix::fd::OwnedFd) -> Result<()> {
    use rustix::fd::AsFd;
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [master.as_fd()];
    control.push(SendAncillaryMessage::ScmRights(&fds));
    sendmsg(
        sock,
        &[std::io::IoSlice::new(b"t")],
        &mut control,
        SendFlags::empty(),
    )
    .context("sending the terminal to the shim")?;
    Ok(())
}

/// The console socket the shim gave the init, when it gave one (a spec with a terminal).
#[allow(unsafe_code)]
fn console_socket() -> Option<rustix::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // Only a socket the shim placed there is taken.
    let link = std::fs::read_link(format!("/proc/self/fd/{CONSOLE_FD}")).ok()?;
    if !link.to_string_lossy().starts_with("socket:") {
        return None;
    }
    // SAFETY: the descriptor is open (its /proc link was just read) and nothing else in this
    // process owns it: the shim put it there for the init alone.
    Some(unsafe { rustix::fd::OwnedFd::from_raw_fd(CONSOLE_FD) })
}

/// Waits for `pid` (PID 1 of the container, or the command under `--init`), forwarding the
/// signals that arrive on `sfd` to it and relaying the terminal when there is one; reaps every
/// child; returns `pid`'s exit status (128 + the signal that killed it). Once `parent` is gone
/// (its death signal arrived), `pid` is killed instead: from outside its PID namespace,
/// SIGKILL always reaches a PID 1.
fn supervise(
    pid: Pid,
    pty: Option<&rustix::fd::OwnedFd>,
    sfd: &SignalFd,
    parent: Option<Pid>,
) -> Result<i32> {
    let mut stdin_open = pty.is_some();
    loop {
        if let Some(master) = pty {
            // Relay the terminal: our stdin to the pty, the pty to our stdout.
            use rustix::event::{PollFd, PollFlags, poll};
            let stdin = std::io::stdin();
            let mut fds = vec![
                PollFd::new(sfd, PollFlags::IN),
                PollFd::new(master, PollFlags::IN),
            ];
            if stdin_open {
                fds.push(PollFd::new(&stdin, PollFlags::IN));
            }
            match poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => bail!("poll: {e}"),
            }
            let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
            drop(fds);
            if ready[1] {
                relay(master, &mut std::io::stdout());
            }
            if stdin_open && ready.get(2).copied().unwrap_or(false) {
                stdin_open = relay_to(&std::io::stdin(), master);
            }
            if !ready[0] {
                continue;
            }
        }
        let info = match sfd.read_signal() {
            Ok(Some(i)) => i,
            Ok(None) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => bail!("reading signals: {e}"),
        };
        let signo = info.ssi_signo as i32;
        if parent.is_some_and(|p| nix::unistd::getppid() != p) {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
        if signo == Signal::SIGWINCH as i32
            && let Some(master) = pty
            && let Ok(ws) = rustix::termios::tcgetwinsize(std::io::stdin())
        {
            let _ = rustix::termios::tcsetwinsize(master, ws);
        }
        if signo == Signal::SIGCHLD as i32 {
            loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(st) => {
                        if st.pid() == Some(pid)
                            && let Some(code) = exit_code(st)
                        {
                            if let Some(master) = pty {
                                // What the command wrote last is still in the pty.
                                while relay(master, &mut std::io::stdout()) {}
                            }
                            return Ok(code);
                        }
                    }
                }
            }
        } else if let Ok(sig) = Signal::try_from(signo) {
            let _ = nix::sys::signal::kill(pid, sig);
        }
    }
}

/// Runs the bundle with an external runtime. The runtime's container outlives the runtime
/// process if that is killed, so the shim dies with strata through SIGTERM (not SIGKILL) and
/// then has the runtime delete the container before it exits.
fn external(bin: &Path, bundle: &Path, id: &str) -> Result<i32> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGCHLD);
    mask.thread_block().context("blocking signals")?;
    let sfd = SignalFd::with_flags(&mask, nix::sys::signalfd::SfdFlags::SFD_CLOEXEC)
        .context("signalfd")?;
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
        .context("setting the parent-death signal")?;
    if nix::unistd::getppid() == Pid::from_raw(1) {
        bail!("strata exited before the container started");
    }
    // The runtime writes the container's pid there once it has made the container: a runtime
    // that exits without it never started the command, and its status is its own.
    let pid_file = bundle.join("runtime.pid");
    let mut cmd = Command::new(bin);
    cmd.args(["run", "--bundle"])
        .arg(bundle)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(id);
    unblock_signals_in_child(&mut cmd, Start::Helper);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running {}", bin.display()))?;
    loop {
        if let Some(status) = child.try_wait().context("waiting for the runtime")? {
            let code = status.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
            });
            if code != 0 && !pid_file.exists() {
                bail!(
                    "the runtime {} exited with status {code} before it started the container",
                    bin.display()
                );
            }
            return Ok(code);
        }
        let info = match sfd.read_signal() {
            Ok(Some(i)) => i,
            Ok(None) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => bail!("reading signals: {e}"),
        };
        if info.ssi_signo as i32 == Signal::SIGTERM as i32 {
            // strata is gone: stop and remove the container, then go.
            for args in [vec!["kill", id, "KILL"], vec!["delete", "--force", id]] {
                let _ = Command::new(bin)
                    .args(args)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
            return Ok(143);
        }
    }
}

/// Brings the loopback interface up (a new network namespace starts with it down), over
/// netlink: RTM_NEWLINK for interface 1 with IFF_UP.
fn loopback_up() -> Result<()> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, netlink};
    let sock = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        None,
    )
    .context("netlink socket")?;
    const RTM_NEWLINK: u16 = 16;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_ACK: u16 = 4;
    const IFF_UP: u32 = 1;
    let mut msg = Vec::with_capacity(32);
    msg.extend_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid
    msg.push(0); // ifi_family AF_UNSPEC
    msg.push(0); // pad
    msg.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    msg.extend_from_slice(&1i32.to_ne_bytes()); // ifi_index: lo
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_flags
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_change
    let addr = netlink::SocketAddrNetlink::new(0, 0);
    rustix::net::sendto(&sock, &msg, rustix::net::SendFlags::empty(), &addr)
        .context("netlink send")?;
    let mut buf = [0u8; 256];
    let (n, _) = rustix::net::recv(&sock, &mut buf, rustix::net::RecvFlags::empty())
        .context("netlink receive")?;
    // NLMSG_ERROR (2) with error 0 is the ack.
    if n >= 20 && u16::from_ne_bytes([buf[4], buf[5]]) == 2 {
        let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        if err != 0 {
            bail!(
                "bringing up loopback: {}",
                std::io::Error::from_raw_os_error(-err)
            );
        }
    }
    Ok(())
}

fn apply_capabilities(spec: &Spec) -> Result<()> {
    let Some(c) = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().clone())
    else {
        return Ok(());
    };
    let to_set = |s: &Option<std::collections::HashSet<oci_spec::runtime::Capability>>| -> caps::CapsHashSet {
        s.iter()
            .flatten()
            .filter_map(|c| serde_json::to_value(c).ok().and_then(|v| v.as_str().and_then(|n| n.parse().ok())))
            .collect()
    };
    let bounding = to_set(c.bounding());
    for cap in caps::all() {
        if !bounding.contains(&cap) {
            caps::drop(None, caps::CapSet::Bounding, cap)
                .with_context(|| format!("dropping {cap} from the bounding set"))?;
        }
    }
    caps::set(None, caps::CapSet::Inheritable, &to_set(c.inheritable()))
        .context("setting inheritable capabilities")?;
    caps::set(None, caps::CapSet::Effective, &to_set(c.effective()))
        .context("setting effective capabilities")?;
    caps::set(None, caps::CapSet::Permitted, &to_set(c.permitted()))
        .context("setting permitted capabilities")?;
    Ok(())
}

/// The name of the file in a bundle that holds the seccomp programs, compiled by the strata
/// that prepared the bundle.
pub const SECCOMP_FILE: &str = "seccomp.bpf";

/// Installs the seccomp filter, when the spec has one: Docker's default profile
/// ([`super::seccomp`]) for the capabilities of the spec's bounding set. `compiled` are the
/// bundle's programs; without them they are compiled here. What the filter does not allow
/// fails with EPERM; clone3 without CAP_SYS_ADMIN answers ENOSYS so libc falls back to clone.
fn apply_seccomp(spec: &Spec, compiled: Option<Vec<seccompiler::BpfProgram>>) -> Result<()> {
    let progs = match compiled {
        Some(p) => Some(p),
        None => super::seccomp::for_spec(spec).context("compiling the seccomp filter")?,
    };
    for p in progs.iter().flatten() {
        install_filter(p).context("installing the seccomp filter")?;
    }
    Ok(())
}

/// Marks every descriptor from 3 up close-on-exec (`close_range` with `CLOSE_RANGE_CLOEXEC`):
/// whatever strata inherited or opened without the flag stays out of every process it starts.
#[allow(unsafe_code)]
pub fn cloexec_inherited_fds() -> std::io::Result<()> {
    // SAFETY: close_range takes no pointers; with CLOSE_RANGE_CLOEXEC it closes nothing, it
    // only sets a flag on descriptors, so no descriptor owned elsewhere in the process becomes
    // invalid. It is async-signal-safe, so it may also run between fork and exec.
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_close_range,
            3u32,
            u32::MAX,
            nix::libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// How a child starts, beyond its command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// strata's own helpers (the init, an external runtime): signals unblocked.
    Helper,
    /// The container's command: also every descriptor but 0–2 closed at exec and a session of
    /// its own, so it has no controlling terminal (no TIOCSTI into the caller's terminal).
    Workload,
    /// The container's command on a pseudo-terminal: a session of its own with the pty on
    /// stdin as its controlling terminal.
    WorkloadWithTty,
}

/// The processes strata starts must not inherit the signals it blocks for itself.
#[allow(unsafe_code)]
fn unblock_signals_in_child(cmd: &mut Command, start: Start) {
    // SAFETY: the closure runs in the child between fork and exec and only makes
    // async-signal-safe system calls (sigprocmask, close_range, setsid, ioctl); it allocates
    // nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            SigSet::empty()
                .thread_set_mask()
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
            if start != Start::Helper {
                cloexec_inherited_fds()?;
                // PID 1 leads its session already (the init made one).
                match rustix::process::setsid() {
                    Ok(_) | Err(rustix::io::Errno::PERM) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if start == Start::WorkloadWithTty {
                rustix::process::ioctl_tiocsctty(std::io::stdin())?;
            }
            Ok(())
        });
    }
}

/// A pseudo-terminal from the container's own devpts: (master, slave). The slave gets the size
/// of strata's terminal.
fn open_pty() -> Result<(rustix::fd::OwnedFd, std::fs::File)> {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .context("opening /dev/ptmx")?;
    grantpt(&master).context("grantpt")?;
    unlockpt(&master).context("unlockpt")?;
    let name = ptsname(&master, Vec::new()).context("ptsname")?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(std::ffi::OsStr::from_bytes(name.as_bytes()))
        .context("opening the pty")?;
    if let Ok(ws) = rustix::termios::tcgetwinsize(std::io::stdin()) {
        let _ = rustix::termios::tcsetwinsize(&slave, ws);
    }
    // Reads never block the init: poll says when there is something.
    rustix::fs::fcntl_setfl(&master, rustix::fs::OFlags::NONBLOCK).context("non-blocking pty")?;
    Ok((master, slave))
}

/// Copies what is available on `from` to `to`; false at end of input or on error.
fn relay(from: &rustix::fd::OwnedFd, to: &mut impl std::io::Write) -> bool {
    let mut buf = [0u8; 8192];
    match rustix::io::read(from, &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let _ = to.write_all(&buf[..n]);
            let _ = to.flush();
            true
        }
    }
}

fn relay_to(from: &std::io::Stdin, to: &rustix::fd::OwnedFd) -> bool {
    let mut buf = [0u8; 8192];
    match rustix::io::read(from, &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => rustix::io::write(to, &buf[..n]).is_ok(),
    }
}

/// Installs a seccomp filter *without* setting no_new_privs (seccompiler's `apply_filter`
/// always sets it): as in Docker, setuid programs keep working in the container. Installing a
/// filter this way needs CAP_SYS_ADMIN, which the init still has at this point.
#[allow(unsafe_code)]
fn install_filter(prog: &seccompiler::BpfProgram) -> std::io::Result<()> {
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const seccompiler::sock_filter,
    }
    let len =
        u16::try_from(prog.len()).map_err(|_| std::io::Error::other("seccomp program too long"))?;
    let fprog = SockFprog {
        len,
        filter: prog.as_ptr(),
    };
    // SAFETY: `fprog` points at `prog`, which lives across the call; the kernel copies the
    // program during the call and keeps no pointer to our memory.
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_seccomp,
            nix::libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const SockFprog,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn apply_rlimits(spec: &Spec) -> Result<()> {
    use nix::sys::resource::{Resource, setrlimit};
    for r in spec
        .process()
        .as_ref()
        .and_then(|p| p.rlimits().clone())
        .unwrap_or_default()
    {
        let res = match r.typ() {
            oci_spec::runtime::PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
            oci_spec::runtime::PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
            oci_spec::runtime::PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
            _ => continue,
        };
        // The host may cap the limit lower (fs.nr_open): clamp to what it allows.
        if setrlimit(res, r.soft(), r.hard()).is_err() {
            let (_, cur_hard) =
                nix::sys::resource::getrlimit(res).with_context(|| format!("reading {res:?}"))?;
            let hard = r.hard().min(cur_hard);
            setrlimit(res, r.soft().min(hard), hard).with_context(|| format!("setting {res:?}"))?;
        }
    }
    Ok(())
}

/// Where the init says why the container could not start (see [`report_setup_error`]); opened
/// before pivot_root, so it stays reachable after it.
static SETUP_ERROR: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();

/// The name of the file in a bundle that says why its container could not start: written by
/// the shim or the init when they fail before or instead of running the command, so a failure
/// to set the container up is never taken for the command's own exit status.
pub const SETUP_ERROR_FILE: &str = "setup-error";

/// Records why the shim or the init of `bundle` failed; false when it could not (the caller
/// then prints the error itself).
pub fn report_setup_error(bundle: &Path, e: &anyhow::Error) -> bool {
    use std::io::Write;
    let msg = format!("{e:#}");
    match SETUP_ERROR.get() {
        Some(mut f) => f.write_all(msg.as_bytes()).is_ok(),
        None => std::fs::write(bundle.join(SETUP_ERROR_FILE), msg).is_ok(),
    }
}

/// Why the container of `bundle` could not start, if its shim or init said so.
pub fn setup_error(bundle: &Path) -> Option<String> {
    std::fs::read_to_string(bundle.join(SETUP_ERROR_FILE))
        .ok()
        .filter(|m| !m.trim().is_empty())
}

/// Stage 2: PID 1 of the container.
// Long: the container's setup in its one safe order (secrets, mounts, pivot_root, hostname, network, limits, seccomp, capabilities, ids, terminal, exec); split, the order would be harder to see.
pub fn init(bundle: &Path) -> Result<i32> {
    die_with_parent()?;
    if let Ok(f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(bundle.join(SETUP_ERROR_FILE))
    {
        let _ = SETUP_ERROR.set(f);
    }
    let spec = load_spec(bundle)?;
    let sys = LinuxSyscall;
    let rootfs_path = bundle.join("rootfs");
    let with_init = bundle.join(WITH_INIT_FILE).exists();
    let console = console_socket();
    // A session of its own: signals reach PID 1 only as the shim forwards them, never from
    // strata's terminal.
    rustix::process::setsid().context("starting a session")?;
    // Secrets exposed as environment variables: their values are read from files outside
    // the state root (on tmpfs) before pivot_root, never written to config.json.
    let secret_env: Vec<(String, String)> = match std::fs::read(bundle.join("secret-env.json")) {
        Ok(b) => {
            let list: Vec<(String, PathBuf)> =
                serde_json::from_slice(&b).context("parsing secret-env.json")?;
            list.into_iter()
                .map(|(k, p)| {
                    std::fs::read(&p)
                        .map(|v| (k.clone(), String::from_utf8_lossy(&v).into_owned()))
                        .with_context(|| format!("reading the secret for {k}"))
                })
                .collect::<Result<_>>()?
        }
        Err(_) => vec![],
    };
    // Read before pivot_root, like the secrets.
    let compiled_seccomp = match std::fs::read(bundle.join(SECCOMP_FILE)) {
        Ok(b) => Some(
            super::seccomp::read_programs(&b)
                .with_context(|| format!("{SECCOMP_FILE} in the bundle is not well formed"))?,
        ),
        Err(_) => None,
    };
    rootfs::setup(&spec, &rootfs_path, &sys).context("preparing the root filesystem")?;
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    if namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Uts)
        && let Some(h) = spec.hostname()
    {
        sys.sethostname(h).context("setting the hostname")?;
    }
    if namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Network)
    {
        loopback_up()?;
    }
    sys.pivot_root(&rootfs_path)
        .context("pivot_root into the container")?;
    rootfs::finish(&spec, &sys).context("masking paths")?;

    let process = spec
        .process()
        .as_ref()
        .context("config.json has no process")?;
    let args = process.args().clone().unwrap_or_default();
    let Some(program) = args.first() else {
        bail!("no command to run: give one, or use an image with a CMD or ENTRYPOINT");
    };
    let mut env: Vec<(String, String)> = process
        .env()
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    for (k, v) in secret_env {
        env.retain(|(x, _)| *x != k);
        env.push((k, v));
    }
    let cwd = process.cwd().clone();
    if !cwd.as_os_str().is_empty() && !cwd.exists() {
        std::fs::create_dir_all(&cwd)
            .with_context(|| format!("creating the working directory {}", cwd.display()))?;
    }
    apply_rlimits(&spec)?;

    // The filter first: installing it needs CAP_SYS_ADMIN (no_new_privs stays off, as in
    // Docker), which the capabilities below drop.
    apply_seccomp(&spec, compiled_seccomp)?;
    apply_capabilities(&spec)?;
    // The init takes the command's identity (groups, then gid, then uid). It keeps nothing a
    // container user would not have.
    let user = process.user();
    let groups: Vec<nix::unistd::Gid> = user
        .additional_gids()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(nix::unistd::Gid::from_raw)
        .collect();
    nix::unistd::setgroups(&groups).context("setting supplementary groups")?;
    nix::unistd::setgid(nix::unistd::Gid::from_raw(user.gid())).context("setting the group")?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(user.uid())).context("setting the user")?;
    // A change of credentials clears the parent-death signal: set it again.
    die_with_parent()?;
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone());
    let resolved = resolve_program(program, path.as_deref());
    let mut cmd = Command::new(&resolved);
    cmd.arg0(program)
        .args(&args[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(if cwd.as_os_str().is_empty() {
            PathBuf::from("/")
        } else {
            cwd
        });
    let tty = if process.terminal().unwrap_or(false) {
        // The pty of the container's own devpts; its master side goes to the shim, which
        // relays it.
        let (master, slave) = open_pty()?;
        let console = console.context("a terminal was asked for, but the shim gave no console")?;
        send_console(&console, &master)?;
        drop(master);
        drop(console);
        cmd.stdin(std::process::Stdio::from(
            slave.try_clone().context("dup pty")?,
        ))
        .stdout(std::process::Stdio::from(
            slave.try_clone().context("dup pty")?,
        ))
        .stderr(std::process::Stdio::from(slave));
        true
    } else {
        false
    };
    let start = if tty {
        Start::WorkloadWithTty
    } else {
        Start::Workload
    };
    if !with_init {
        // The command becomes PID 1.
        unblock_signals_in_child(&mut cmd, start);
        let e = cmd.exec();
        return Err(e).with_context(|| format!("starting {program}"));
    }
    // `--init`: the command is the init's child. Signals (from the shim) arrive through a
    // signalfd and are forwarded; orphans are reaped.
    let mut mask = forwarded();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().context("blocking signals")?;
    let sfd = SignalFd::with_flags(&mask, nix::sys::signalfd::SfdFlags::SFD_CLOEXEC)
        .context("signalfd")?;
    // The init holds what the command must not reach (secrets read for the environment):
    // not dumpable, so the command, even as root, can neither ptrace it nor read its
    // /proc/1/{environ,mem,fd} (that needs CAP_SYS_PTRACE, which no container without
    // --security=insecure has).
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .context("making the init non-dumpable")?;
    unblock_signals_in_child(&mut cmd, start);
    let child = cmd.spawn().with_context(|| format!("starting {program}"))?;
    let workload = Pid::from_raw(child.id() as i32);
    drop(child);
    // The init keeps no copy of the pty's slave side.
    drop(cmd);
    supervise(workload, None, &sfd, None)
}

/// Finds `program` on `PATH` inside the container (after pivot_root, so the container's
/// files), as execvp would.
fn resolve_program(program: &str, path: Option<&str>) -> PathBuf {
    if program.contains('/') {
        return PathBuf::from(program);
    }
    for dir in path
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .split(':')
    {
        let candidate = Path::new(dir).join(program);
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from(program)
}
