//! Preparing a container's root filesystem from its OCI spec: the spec's mounts, the default
//! device nodes, then (after pivot_root) masked and read-only paths. All calls go through
//! [`Syscall`], so the sequence is unit-tested with a recording fake.

use super::sys::Syscall;
use nix::mount::MsFlags;
use oci_spec::runtime::Spec;
use std::io;
use std::path::Path;

/// Device nodes every container gets (bind-mounted from the host).
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("mount {target}")]
    Mount { target: String, source: io::Error },
    #[error("{op} {path}")]
    Fs {
        op: &'static str,
        path: String,
        source: io::Error,
    },
    #[error("invalid mount destination {0:?}: must be an absolute path")]
    BadDestination(String),
}

fn fs_err<'a>(op: &'static str, p: &'a Path) -> impl FnOnce(io::Error) -> RootfsError + 'a {
    move |source| RootfsError::Fs {
        op,
        path: p.display().to_string(),
        source,
    }
}

/// Mount flags and the remaining data string for OCI mount options.
pub fn parse_options(options: &[String]) -> (MsFlags, Vec<String>, bool) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    let mut bind = false;
    for o in options {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "bind" => bind = true,
            "rbind" => {
                bind = true;
                flags |= MsFlags::MS_REC;
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {}
            other => data.push(other.to_string()),
        }
    }
    (flags, data, bind)
}

fn typ_is(m: &oci_spec::runtime::Mount, t: &str) -> bool {
    m.typ().as_deref() == Some(t)
}

/// Mounts the spec's mounts and the default devices under `rootfs` (still seen from the host
/// side of the pivot).
pub fn setup(spec: &Spec, rootfs: &Path, sys: &dyn Syscall) -> Result<(), RootfsError> {
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let dest = m.destination();
        if !dest.is_absolute() {
            return Err(RootfsError::BadDestination(dest.display().to_string()));
        }
        let options = m.options().clone().unwrap_or_default();
        let (mut flags, data, bind) = parse_options(&options);
        // The built-in runtime has no devices cgroup: /dev is `nodev` (the default devices are
        // bind mounts, which keep working), as is the root filesystem, so a device node made
        // with mknod cannot be opened.
        if dest == Path::new("/dev") && typ_is(m, "tmpfs") {
            flags |= MsFlags::MS_NODEV;
        }
        let typ = m.typ().clone().unwrap_or_default();
        let source = m.source().clone().unwrap_or_default();
        let mount_err = |e| RootfsError::Mount {
            target: dest.display().to_string(),
            source: e,
        };
        if bind || typ == "bind" {
            let point = sys
                .mount_point(rootfs, dest, sys.is_dir(&source))
                .map_err(fs_err("create", dest))?;
            let target = point.path();
            sys.mount(
                Some(&source),
                target,
                None,
                MsFlags::MS_BIND | (flags & MsFlags::MS_REC),
                None,
            )
            .map_err(mount_err)?;
            let remount = flags & !MsFlags::MS_REC;
            if !remount.is_empty() {
                // Resolved again: the descriptor above names the directory the bind mount now
                // covers, the remount is for the new mount's root.
                let point = sys
                    .mount_point(rootfs, dest, sys.is_dir(&source))
                    .map_err(fs_err("resolve", dest))?;
                sys.mount(
                    None,
                    point.path(),
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | remount,
                    None,
                )
                .map_err(|e| RootfsError::Mount {
                    target: dest.display().to_string(),
                    source: e,
                })?;
            }
        } else {
            let point = sys
                .mount_point(rootfs, dest, true)
                .map_err(fs_err("create", dest))?;
            let d = data.join(",");
            sys.mount(
                Some(&source),
                point.path(),
                Some(&typ),
                flags,
                if d.is_empty() { None } else { Some(d.as_str()) },
            )
            .map_err(mount_err)?;
        }
    }
    for d in DEVICES {
        let dest = Path::new("/dev").join(d);
        let point = sys
            .mount_point(rootfs, &dest, false)
            .map_err(fs_err("create", &dest))?;
        sys.mount(Some(&dest), point.path(), None, MsFlags::MS_BIND, None)
            .map_err(|e| RootfsError::Mount {
                target: format!("/dev/{d}"),
                source: e,
            })?;
    }
    let dev = sys
        .mount_point(rootfs, Path::new("/dev"), true)
        .map_err(fs_err("create", Path::new("/dev")))?;
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        let at = dev.path().join(link);
        sys.symlink(Path::new(target), &at)
            .map_err(fs_err("create", &Path::new("/dev").join(link)))?;
    }
    Ok(())
}

/// After pivot_root: hide masked paths and make read-only paths read-only.
pub fn finish(spec: &Spec, sys: &dyn Syscall) -> Result<(), RootfsError> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    for p in linux.masked_paths().as_deref().unwrap_or_default() {
        let path = Path::new(p);
        if !sys.exists(path) {
            continue;
        }
        let r = if sys.is_dir(path) {
            sys.mount(
                Some(Path::new("tmpfs")),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None,
            )
        } else {
            sys.mount(
                Some(Path::new("/dev/null")),
                path,
                None,
                MsFlags::MS_BIND,
                None,
            )
        };
        r.map_err(|e| RootfsError::Mount {
            target: p.clone(),
            source: e,
        })?;
    }
    for p in linux.readonly_paths().as_deref().unwrap_or_default() {
        let path = Path::new(p);
        if !sys.exists(path) {
            continue;
        }
        sys.mount(
            Some(path),
            path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .and_then(|_| {
            sys.mount(
                None,
                path,
                None,
                MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | MsFlags::MS_RDONLY
                    | MsFlags::MS_NOSUID
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_NOEXEC,
                None,
            )
        })
        .map_err(|e| RootfsError::Mount {
            target: p.clone(),
            source: e,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Network, ProcessSpec, build};
    use crate::sys::{Call, RecordingSyscall};
    use std::path::PathBuf;

    fn spec() -> Spec {
        build(&ProcessSpec {
            args: vec!["sh".into()],
            extra_mounts: vec![],
            env: vec![],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            terminal: false,
            hostname: "h".into(),
            network: Network::None,
            etc_files: vec![(PathBuf::from("/bundle/hosts"), "/etc/hosts")],
            privileged: false,
        })
        .unwrap()
    }

    #[test]
    fn mount_sequence() {
        let sys = RecordingSyscall::default();
        setup(&spec(), Path::new("/r"), &sys).unwrap();
        let calls = sys.calls();
        let mounts: Vec<(String, Option<String>)> = calls
            .iter()
            .filter_map(|c| match c {
                Call::Mount { target, fstype, .. } => {
                    Some((target.display().to_string(), fstype.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(mounts[0], ("/r/proc".into(), Some("proc".into())));
        assert_eq!(mounts[1], ("/r/dev".into(), Some("tmpfs".into())));
        assert!(mounts.contains(&("/r/sys".into(), Some("sysfs".into()))));
        // /etc/hosts: a bind mount, then a read-only remount.
        let hosts: Vec<&Call> = calls
            .iter()
            .filter(
                |c| matches!(c, Call::Mount { target, .. } if target == Path::new("/r/etc/hosts")),
            )
            .collect();
        assert_eq!(hosts.len(), 2);
        assert!(
            matches!(hosts[1], Call::Mount { flags, .. } if flags.contains(MsFlags::MS_RDONLY | MsFlags::MS_REMOUNT))
        );
        assert!(calls.contains(&Call::Mount {
            source: Some(PathBuf::from("/dev/null")),
            target: PathBuf::from("/r/dev/null"),
            fstype: None,
            flags: MsFlags::MS_BIND,
            data: None
        }));
        assert!(calls.contains(&Call::Symlink(
            PathBuf::from("pts/ptmx"),
            PathBuf::from("/r/dev/ptmx")
        )));
        let sysfs = calls
            .iter()
            .find(|c| matches!(c, Call::Mount { fstype: Some(t), .. } if t == "sysfs"))
            .unwrap();
        assert!(matches!(sysfs, Call::Mount { flags, .. } if flags.contains(MsFlags::MS_RDONLY)));
    }

    #[test]
    fn masked_and_readonly_paths() {
        let sys = RecordingSyscall {
            dirs: vec![PathBuf::from("/proc/acpi"), PathBuf::from("/proc/sys")],
            ..RecordingSyscall::default()
        };
        finish(&spec(), &sys).unwrap();
        let calls = sys.calls();
        assert!(calls.iter().any(|c| matches!(c, Call::Mount { target, fstype: Some(t), .. } if target == Path::new("/proc/acpi") && t == "tmpfs")));
        assert!(calls.iter().any(|c| matches!(c, Call::Mount { target, flags, .. } if target == Path::new("/proc/sys") && flags.contains(MsFlags::MS_RDONLY))));
    }
}
