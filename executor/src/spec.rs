//! The OCI runtime spec (`config.json`) of a process, with Docker's defaults: capabilities,
//! masked and read-only paths, the mounts of /proc, /dev, /sys, resource limits and a seccomp
//! filter. Every runtime (the built-in one, runc, crun) gets this same bundle.

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};
use std::collections::HashSet;
use std::path::PathBuf;

/// Docker's default capabilities (CapEff 00000000a80425fb).
pub const DEFAULT_CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Docker's masked paths: hidden behind /dev/null (files) or an empty read-only tmpfs (dirs).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// Docker's read-only paths.
pub const READONLY_PATHS: [&str; 6] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/sys/devices/virtual/powercap",
];

/// Network mode of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// A network namespace with only loopback.
    None,
    /// The host's network.
    Host,
}

/// What a process needs, resolved: the spec is built from this.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub terminal: bool,
    pub hostname: String,
    pub network: Network,
    /// Files bind-mounted over /etc/hosts, /etc/resolv.conf, /etc/hostname.
    pub etc_files: Vec<(PathBuf, &'static str)>,
    /// All capabilities and no seccomp filter (`--security=insecure`).
    pub privileged: bool,
    /// More mounts (RUN --mount): destination, type, source, options.
    pub extra_mounts: Vec<(String, String, String, Vec<String>)>,
}

fn mount(
    dest: &str,
    typ: &str,
    source: &str,
    options: &[&str],
) -> Result<Mount, oci_spec::OciSpecError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
}

/// Builds the runtime spec.
// Long: Docker's defaults for a spec, field by field (mounts, masked paths, capabilities, devices, rlimits, seccomp).
pub fn build(p: &ProcessSpec) -> Result<Spec, oci_spec::OciSpecError> {
    let caps: HashSet<Capability> = if p.privileged {
        // Every capability strata itself may give: those of its bounding set (a sandboxed
        // host may lack some, and asking for those fails).
        let bounding: std::collections::HashSet<String> = caps::read(None, caps::CapSet::Bounding)
            .map(|s| s.iter().map(|c| c.to_string()).collect())
            .unwrap_or_default();
        all_caps()
            .into_iter()
            .filter(|c| {
                bounding.is_empty()
                    || serde_json::to_value(c)
                        .ok()
                        .and_then(|v| v.as_str().map(|n| bounding.contains(n)))
                        .unwrap_or(true)
            })
            .collect()
    } else {
        DEFAULT_CAPS.iter().copied().collect()
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps.clone())
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()?;
    let user = UserBuilder::default()
        .uid(p.uid)
        .gid(p.gid)
        .additional_gids(p.additional_gids.clone())
        .build()?;
    // Open files: as many as the host lets this process have (a runtime cannot raise it).
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap_or((1024, 1024));
    let nofile = hard.min(1_048_576);
    let rlimits = vec![
        PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(nofile)
            .soft(nofile)
            .build()?,
    ];
    let process = ProcessBuilder::default()
        .terminal(p.terminal)
        .user(user)
        .args(p.args.clone())
        .env(p.env.clone())
        .cwd(p.cwd.clone())
        .capabilities(capabilities)
        .rlimits(rlimits)
        .no_new_privileges(false)
        .build()?;
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
    ];
    for (src, dest) in &p.etc_files {
        mounts.push(mount(
            dest,
            "bind",
            &src.to_string_lossy(),
            &["rbind", "ro"],
        )?);
    }
    for (dest, typ, src, opts) in &p.extra_mounts {
        let o: Vec<&str> = opts.iter().map(String::as_str).collect();
        mounts.push(mount(dest, typ, src, &o)?);
    }
    let mut namespaces = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ];
    if p.network == Network::None {
        namespaces.push(LinuxNamespaceType::Network);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|t| LinuxNamespaceBuilder::default().typ(t).build())
        .collect::<Result<Vec<_>, _>>()?;
    // Device access (enforced by external runtimes through the devices cgroup): nothing but
    // the default devices, as Docker allows.
    let mut devices = vec![
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()?,
    ];
    for (typ, major, minor) in [
        (LinuxDeviceType::C, 1, Some(3)),
        (LinuxDeviceType::C, 1, Some(5)),
        (LinuxDeviceType::C, 1, Some(7)),
        (LinuxDeviceType::C, 1, Some(8)),
        (LinuxDeviceType::C, 1, Some(9)),
        (LinuxDeviceType::C, 5, Some(0)),
        (LinuxDeviceType::C, 5, Some(1)),
        (LinuxDeviceType::C, 5, Some(2)),
        (LinuxDeviceType::C, 136, None),
    ] {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .major(major)
            .access("rwm");
        if let Some(m) = minor {
            b = b.minor(m);
        }
        devices.push(b.build()?);
    }
    let resources = LinuxResourcesBuilder::default().devices(devices).build()?;
    let mut linux = LinuxBuilder::default()
        .resources(resources)
        .namespaces(namespaces)
        .masked_paths(if p.privileged {
            vec![]
        } else {
            MASKED_PATHS.iter().map(|s| s.to_string()).collect()
        })
        .readonly_paths(if p.privileged {
            vec![]
        } else {
            READONLY_PATHS.iter().map(|s| s.to_string()).collect()
        });
    if !p.privileged {
        // Docker's default profile for these capabilities: an allowlist, everything else EPERM.
        let seccomp = super::seccomp::native_arch()
            .and_then(|arch| super::seccomp::oci_section(&caps, arch))
            .map_err(|e| oci_spec::OciSpecError::Other(e.to_string()))?;
        linux = linux.seccomp(seccomp);
    }
    SpecBuilder::default()
        .version("1.0.2")
        .process(process)
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(false)
                .build()?,
        )
        .hostname(p.hostname.clone())
        .mounts(mounts)
        .linux(linux.build()?)
        .build()
}

fn all_caps() -> HashSet<Capability> {
    use Capability::*;
    [
        AuditControl,
        AuditRead,
        AuditWrite,
        BlockSuspend,
        Bpf,
        CheckpointRestore,
        Chown,
        DacOverride,
        DacReadSearch,
        Fowner,
        Fsetid,
        IpcLock,
        IpcOwner,
        Kill,
        Lease,
        LinuxImmutable,
        MacAdmin,
        MacOverride,
        Mknod,
        NetAdmin,
        NetBindService,
        NetBroadcast,
        NetRaw,
        Perfmon,
        Setfcap,
        Setgid,
        Setpcap,
        Setuid,
        SysAdmin,
        SysBoot,
        SysChroot,
        SysModule,
        SysNice,
        SysPacct,
        SysPtrace,
        SysRawio,
        SysResource,
        SysTime,
        SysTtyConfig,
        Syslog,
        WakeAlarm,
    ]
    .into_iter()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> ProcessSpec {
        ProcessSpec {
            args: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            terminal: false,
            hostname: "h".into(),
            network: Network::None,
            etc_files: vec![(PathBuf::from("/b/hosts"), "/etc/hosts")],
            extra_mounts: vec![],
            privileged: false,
        }
    }

    #[test]
    fn docker_defaults() {
        let s = build(&p()).unwrap();
        let j = serde_json::to_value(&s).unwrap();
        let eff = j["process"]["capabilities"]["effective"]
            .as_array()
            .unwrap();
        assert_eq!(eff.len(), 14);
        assert!(eff.contains(&serde_json::json!("CAP_NET_BIND_SERVICE")));
        assert!(!eff.contains(&serde_json::json!("CAP_SYS_ADMIN")));
        let ns: Vec<&str> = j["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(ns.contains(&"network") && ns.contains(&"pid") && ns.contains(&"mount"));
        assert!(
            j["linux"]["maskedPaths"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("/proc/kcore"))
        );
        // An allowlist (Docker's default profile): what it does not name fails with EPERM.
        let sc = &j["linux"]["seccomp"];
        assert_eq!(sc["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(sc["defaultErrnoRet"], 1);
        let named = |name: &str| {
            sc["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
        };
        assert!(named("read") && named("execve"));
        assert!(!named("io_uring_setup") && !named("mount"));
        assert_eq!(j["root"]["path"], "rootfs");
        let mut host = p();
        host.network = Network::Host;
        host.privileged = true;
        let j = serde_json::to_value(build(&host).unwrap()).unwrap();
        assert!(
            !j["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "network")
        );
        assert!(j["linux"]["seccomp"].is_null());
        assert!(
            j["process"]["capabilities"]["effective"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("CAP_SYS_ADMIN"))
        );
    }

    #[test]
    fn caps_mask_matches_docker() {
        // CapEff 00000000a80425fb
        let mask: u64 = DEFAULT_CAPS
            .iter()
            .map(|c| {
                let name = serde_json::to_value(c).unwrap();
                let n: caps::Capability = name.as_str().unwrap().parse().unwrap();
                1u64 << n.index()
            })
            .sum();
        assert_eq!(mask, 0xa80425fb);
    }
}
