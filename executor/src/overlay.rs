//! Overlay stacks of layer snapshots: one mount for every stack strata makes (a container's
//! root, a file op's base, read-only stacks of other stages). The options go in one `mount`
//! call while they fit in a page; beyond that the new mount API takes one lower directory at a
//! time (`lowerdir+`). overlayfs stacks at most [`MAX_LOWER_LAYERS`] lower directories, which
//! is checked before anything is mounted.

use super::sys::{LinuxSyscall, Syscall};
use anyhow::{Context, Result, bail};
use nix::mount::MsFlags;
use std::path::{Path, PathBuf};

/// The most lower directories one overlay takes (the kernel's `OVL_MAX_STACK`).
pub const MAX_LOWER_LAYERS: usize = 500;

/// Mount options longer than this go through the new mount API (a page, with room to spare).
const MAX_OPTIONS: usize = 4000;

/// Refuses a stack overlayfs cannot mount, with the reason, instead of the kernel's `EINVAL`.
pub fn check_depth(layers: usize) -> Result<()> {
    if layers > MAX_LOWER_LAYERS {
        bail!("the image has {layers} layers; overlayfs stacks at most {MAX_LOWER_LAYERS}");
    }
    Ok(())
}

/// The options of one `mount` call for the stack: lower directories top first, and with a
/// writable layer its upper and work directories.
fn options(lower: &[PathBuf], upper: Option<(&Path, &Path)>) -> String {
    let lower: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let mut data = format!("lowerdir={}", lower.join(":"));
    if let Some((upper, work)) = upper {
        data.push_str(&format!(
            ",upperdir={},workdir={},redirect_dir=off,metacopy=off",
            upper.display(),
            work.display()
        ));
    }
    data
}

/// Mounts `lower` (top first, at least two without `upper`) as an overlay at `target`, `nodev`;
/// read-only without `upper`, else writable into `upper` (with `work` as its work directory).
pub(crate) fn mount_stack(
    lower: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<()> {
    check_depth(lower.len())?;
    let data = options(lower, upper);
    if data.len() < MAX_OPTIONS {
        let mut flags = MsFlags::MS_NODEV;
        if upper.is_none() {
            flags |= MsFlags::MS_RDONLY;
        }
        return LinuxSyscall
            .mount(
                Some(Path::new("overlay")),
                target,
                Some("overlay"),
                flags,
                Some(&data),
            )
            .with_context(|| format!("mounting an overlay at {}", target.display()));
    }
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};
    let fs =
        rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).context("fsopen overlay")?;
    for d in lower {
        rustix::mount::fsconfig_set_string(&fs, "lowerdir+", d)
            .with_context(|| format!("overlay lowerdir+ {}", d.display()))?;
    }
    let mut attrs = MountAttrFlags::MOUNT_ATTR_NODEV;
    match upper {
        Some((upper, work)) => {
            rustix::mount::fsconfig_set_string(&fs, "upperdir", upper)
                .context("overlay upperdir")?;
            rustix::mount::fsconfig_set_string(&fs, "workdir", work).context("overlay workdir")?;
            for (k, v) in [("redirect_dir", "off"), ("metacopy", "off")] {
                rustix::mount::fsconfig_set_string(&fs, k, v)
                    .with_context(|| format!("overlay {k}={v}"))?;
            }
        }
        None => attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY,
    }
    rustix::mount::fsconfig_create(&fs).context("creating the overlay")?;
    let m = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).context("fsmount")?;
    rustix::mount::move_mount(
        &m,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .with_context(|| format!("attaching the overlay at {}", target.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_beyond_the_kernel_limit_are_refused_with_the_reason() {
        assert!(check_depth(1).is_ok());
        assert!(check_depth(MAX_LOWER_LAYERS).is_ok());
        let e = check_depth(501).unwrap_err().to_string();
        assert_eq!(e, "the image has 501 layers; overlayfs stacks at most 500");
        // Refused before anything is mounted (the target does not even exist).
        let lower: Vec<PathBuf> = (0..501).map(|i| PathBuf::from(format!("/l{i}"))).collect();
        let e = mount_stack(&lower, None, Path::new("/nonexistent/target")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the image has 501 layers; overlayfs stacks at most 500"
        );
    }

    #[test]
    fn options_of_a_read_only_and_a_writable_stack() {
        let lower = [PathBuf::from("/s/b"), PathBuf::from("/s/a")];
        assert_eq!(options(&lower, None), "lowerdir=/s/b:/s/a");
        assert_eq!(
            options(&lower, Some((Path::new("/c/up"), Path::new("/c/work")))),
            "lowerdir=/s/b:/s/a,upperdir=/c/up,workdir=/c/work,redirect_dir=off,metacopy=off"
        );
        // 60 snapshot paths (as under a state root) do not fit in one page.
        let many: Vec<PathBuf> = (0..60)
            .map(|i| PathBuf::from(format!("/var/lib/strata/snapshots/{:064x}", i)))
            .collect();
        assert!(options(&many, None).len() >= MAX_OPTIONS);
    }
}
