//! The copy-based ("native") snapshotter, for filesystems without overlayfs: a container's root
//! is a full copy of its layers, bottom to top, with the layers' overlay whiteouts applied
//! (a 0/0 character device deletes what it names; an opaque directory hides what lies below).
//! Owners, modes, xattrs, symlinks, hardlinks within a layer, device nodes and times are kept;
//! file contents go through `copy_file_range` (reflinks where the filesystem has them).

use crate::error::{ExecError, IoContext};
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Whether `m` is an overlay whiteout (a character device 0/0).
fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    matches!(xattr::get(p, "trusted.overlay.opaque"), Ok(Some(v)) if v == b"y")
}

fn remove_any(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(_) => Ok(()),
    }
}

fn copy_meta(src: &Path, m: &std::fs::Metadata, dst: &Path) -> Result<(), ExecError> {
    let is_link = m.file_type().is_symlink();
    rustix::fs::chownat(
        rustix::fs::CWD,
        dst,
        Some(rustix::fs::Uid::from_raw(m.uid())),
        Some(rustix::fs::Gid::from_raw(m.gid())),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .doing(|| format!("chown {}", dst.display()))?;
    if !is_link {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(m.mode() & 0o7777))
            .doing(|| format!("chmod {}", dst.display()))?;
        if let Ok(names) = xattr::list(src) {
            for n in names {
                if !strata_cache::difftar::carried_xattr(&n.to_string_lossy()) {
                    continue;
                }
                if let Ok(Some(v)) = xattr::get(src, &n) {
                    let _ = xattr::set(dst, &n, &v);
                }
            }
        }
    }
    let t = rustix::fs::Timespec {
        tv_sec: m.mtime(),
        tv_nsec: m.mtime_nsec(),
    };
    let _ = rustix::fs::utimensat(
        rustix::fs::CWD,
        dst,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    );
    Ok(())
}

/// Copies one layer directory onto `dst`, applying its whiteouts.
fn apply_layer(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), ExecError> {
    let mut dirs: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut stack: Vec<(PathBuf, PathBuf)> = vec![(src.to_path_buf(), dst.to_path_buf())];
    while let Some((s, d)) = stack.pop() {
        if is_opaque(&s) && d != dst {
            // Nothing from below shows through an opaque directory.
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                remove_any(&e.path()).doing(|| format!("clearing {}", e.path().display()))?;
            }
        }
        let mut entries: Vec<(OsString, PathBuf)> = std::fs::read_dir(&s)
            .doing(|| format!("reading {}", s.display()))?
            .flatten()
            .map(|e| (e.file_name(), e.path()))
            .collect();
        entries.sort();
        for (name, sp) in entries {
            let dp = d.join(&name);
            let m = std::fs::symlink_metadata(&sp).doing(|| format!("stat {}", sp.display()))?;
            let ft = m.file_type();
            if is_whiteout(&m) {
                remove_any(&dp).doing(|| format!("removing {}", dp.display()))?;
                continue;
            }
            if let Ok(existing) = std::fs::symlink_metadata(&dp)
                && !(existing.is_dir() && ft.is_dir())
            {
                remove_any(&dp).doing(|| format!("replacing {}", dp.display()))?;
            }
            if ft.is_dir() {
                if !dp.is_dir() {
                    std::fs::create_dir(&dp).doing(|| format!("mkdir {}", dp.display()))?;
                }
                dirs.push((sp.clone(), dp.clone()));
                stack.push((sp, dp));
                continue;
            }
            if ft.is_file() && m.nlink() > 1 {
                let key = (m.dev(), m.ino());
                if let Some(first) = links.get(&key) {
                    std::fs::hard_link(first, &dp).doing(|| format!("link {}", dp.display()))?;
                    continue;
                }
                links.insert(key, dp.clone());
            }
            if ft.is_file() {
                std::fs::copy(&sp, &dp).doing(|| format!("copy {}", sp.display()))?;
            } else if ft.is_symlink() {
                let target =
                    std::fs::read_link(&sp).doing(|| format!("readlink {}", sp.display()))?;
                std::os::unix::fs::symlink(&target, &dp)
                    .doing(|| format!("symlink {}", dp.display()))?;
            } else {
                let kind = if ft.is_char_device() {
                    rustix::fs::FileType::CharacterDevice
                } else if ft.is_block_device() {
                    rustix::fs::FileType::BlockDevice
                } else if ft.is_fifo() {
                    rustix::fs::FileType::Fifo
                } else {
                    continue; // sockets are not copied
                };
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &dp,
                    kind,
                    rustix::fs::Mode::from_raw_mode(m.mode() & 0o7777),
                    m.rdev(),
                )
                .doing(|| format!("mknod {}", dp.display()))?;
            }
            copy_meta(&sp, &m, &dp)?;
        }
    }
    // Directory metadata last, deepest first, so copying children does not move the times.
    dirs.sort_by_key(|(_, d)| std::cmp::Reverse(d.components().count()));
    for (s, d) in dirs {
        let m = std::fs::symlink_metadata(&s).doing(|| format!("stat {}", s.display()))?;
        copy_meta(&s, &m, &d)?;
    }
    Ok(())
}

/// Fills `dst` with the merged view of `lower` (top layer first, as overlayfs takes them).
pub fn materialize(lower: &[PathBuf], dst: &Path) -> Result<(), ExecError> {
    std::fs::create_dir_all(dst).doing(|| format!("creating {}", dst.display()))?;
    for layer in lower.iter().rev() {
        let mut links = HashMap::new();
        apply_layer(layer, dst, &mut links)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_merge_with_whiteouts_and_opaque_dirs() {
        let t = tempfile::tempdir().unwrap();
        let (l1, l2, out) = (
            t.path().join("l1"),
            t.path().join("l2"),
            t.path().join("out"),
        );
        for p in ["etc", "var/cache", "keep"] {
            std::fs::create_dir_all(l1.join(p)).unwrap();
        }
        std::fs::write(l1.join("etc/old"), "old").unwrap();
        std::fs::write(l1.join("var/cache/a"), "a").unwrap();
        std::fs::write(l1.join("keep/x"), "x").unwrap();
        std::fs::write(l1.join("f"), "1").unwrap();
        std::fs::hard_link(l1.join("f"), l1.join("f2")).unwrap();
        std::os::unix::fs::symlink("f", l1.join("link")).unwrap();
        std::fs::create_dir_all(l2.join("etc")).unwrap();
        std::fs::create_dir_all(l2.join("var/cache")).unwrap();
        std::fs::write(l2.join("var/cache/b"), "b").unwrap();
        std::fs::write(l2.join("f"), "2").unwrap();
        let root = rustix::process::geteuid().is_root();
        if root {
            // A whiteout for etc/old and an opaque var/cache, as overlayfs writes them.
            rustix::fs::mknodat(
                rustix::fs::CWD,
                l2.join("etc/old"),
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::empty(),
                0,
            )
            .unwrap();
            xattr::set(l2.join("var/cache"), "trusted.overlay.opaque", b"y").unwrap();
        }
        materialize(&[l2.clone(), l1.clone()], &out).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("f")).unwrap(), "2");
        assert_eq!(
            std::fs::read_to_string(out.join("f2")).unwrap(),
            "1",
            "the hardlink kept the old content"
        );
        assert_eq!(
            std::fs::read_link(out.join("link")).unwrap(),
            Path::new("f")
        );
        assert_eq!(std::fs::read_to_string(out.join("keep/x")).unwrap(), "x");
        assert_eq!(
            std::fs::read_to_string(out.join("var/cache/b")).unwrap(),
            "b"
        );
        if root {
            assert!(!out.join("etc/old").exists(), "whiteout applied");
            assert!(
                !out.join("var/cache/a").exists(),
                "opaque directory hides the lower content"
            );
        }
    }
}
