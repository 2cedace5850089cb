//! File operations in a private mount namespace: `strata __fileop DIR` mounts the step's base
//! layers as an overlay (writes go to `DIR/upper`, the new layer; deletions become whiteouts)
//! and the layers of other stages it copies from as read-only overlays, then applies the
//! actions with [`crate::fileaction::apply`]. Like the shim, it is strata re-executed, so nothing
//! runs in a fork of a multi-threaded process, and the mounts vanish with the process.

use super::init::{Layers, mount_layers_ro, mount_overlay, private_mount_namespace};
use super::sys::{LinuxSyscall, Syscall};
use crate::error::{ExecError, IoContext};
use crate::fileaction::{Reuse, Source};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use strata_solver::graph::FileAction;

/// A filesystem a file op reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SourceFs {
    /// A directory read in place (the build context).
    Context { dir: PathBuf, ignore: Vec<String> },
    /// A stack of layer snapshots, top first (another stage's or image's filesystem).
    Layers(Vec<PathBuf>),
}

/// What `strata __fileop` does, as written to `DIR/fileop.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileOpRequest {
    /// The base filesystem's layers, top first (empty: an empty filesystem).
    pub lower: Vec<PathBuf>,
    /// Sources by input index.
    pub sources: Vec<Option<SourceFs>>,
    pub actions: Vec<FileAction>,
    /// A lone copy from the context: the layer the same copy made last time, to hard-link
    /// unchanged files from.
    #[serde(default)]
    pub reuse: Option<PathBuf>,
    /// The epoch the new layer's modification times will be clamped to (SOURCE_DATE_EPOCH).
    #[serde(default)]
    pub clamp: Option<i64>,
}

/// Runs a file op; its diff is left in `dir/upper`. Returns what it reports (how many files it
/// linked from a previous result), for the step's log.
pub fn run_file_op(strata: &Path, dir: &Path, req: &FileOpRequest) -> Result<String, ExecError> {
    if !rustix::process::geteuid().is_root() {
        return Err(ExecError::NeedsRoot(
            "file operations need root (overlay mounts)",
        ));
    }
    for d in ["upper", "work", "root", "empty"] {
        std::fs::create_dir_all(dir.join(d))
            .doing(|| format!("creating {}", dir.join(d).display()))?;
    }
    let json = serde_json::to_vec(req).map_err(|source| ExecError::Json {
        what: "encoding fileop.json",
        source,
    })?;
    std::fs::write(dir.join("fileop.json"), json).doing(|| "writing fileop.json".into())?;
    let out = Command::new(strata)
        .arg("__fileop")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .doing(|| "starting the file operation".into())?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        let msg = msg.trim().trim_start_matches("error: ");
        return Err(ExecError::FileOp(if msg.is_empty() {
            "the file operation failed".into()
        } else {
            msg.to_string()
        }));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `strata __fileop DIR` (the child).
pub fn child(dir: &Path) -> Result<()> {
    let req: FileOpRequest = serde_json::from_slice(
        &std::fs::read(dir.join("fileop.json")).context("reading fileop.json")?,
    )
    .context("parsing fileop.json")?;
    private_mount_namespace()?;
    let empty = dir.join("empty");
    let root = dir.join("root");
    let lower = if req.lower.is_empty() {
        vec![empty.clone()]
    } else {
        req.lower.clone()
    };
    mount_overlay(
        &Layers {
            lower,
            upper: dir.join("upper"),
            work: dir.join("work"),
            copied: false,
            stubs: vec![],
            extra: vec![],
        },
        &root,
    )?;
    let mut sources = Vec::new();
    for (i, s) in req.sources.iter().enumerate() {
        sources.push(match s {
            None => None,
            Some(SourceFs::Context { dir, ignore }) => Some(Source {
                dir: dir.clone(),
                context: true,
                ignore: ignore.clone(),
            }),
            Some(SourceFs::Layers(layers)) => {
                let d = match layers.len() {
                    0 => empty.clone(),
                    1 => layers[0].clone(),
                    _ => {
                        let m = dir.join(format!("src{i}"));
                        std::fs::create_dir_all(&m)?;
                        mount_layers_ro(layers, &m)
                            .with_context(|| format!("mounting input {i}"))?;
                        m
                    }
                };
                Some(Source {
                    dir: d,
                    context: false,
                    ignore: vec![],
                })
            }
        });
    }
    // A lone copy links what it would copy unchanged: from its last result (the context), or
    // the source's own files (another stage's or image's layers).
    let upper = dir.join("upper");
    let mut reuse = match (&req.reuse, &req.actions[..]) {
        (Some(prev), _) => Some(Reuse::previous(prev.clone(), upper, req.clamp)),
        (None, [FileAction::Copy { input, .. }]) => match req.sources.get(*input) {
            Some(Some(SourceFs::Layers(layers))) if !layers.is_empty() => {
                Some(Reuse::layers(layers.clone(), upper, req.clamp))
            }
            _ => None,
        },
        _ => None,
    };
    crate::fileaction::apply_reusing(&root, &sources, &req.actions, reuse.as_mut())?;
    if let Some(r) = reuse
        && r.pending() > 0
    {
        // The links go into the upper directory itself, which overlayfs must not see change.
        LinuxSyscall
            .umount(&root, nix::mount::MntFlags::empty())
            .context("unmounting the root filesystem to link files")?;
        let what = r.what();
        let s = r.link()?;
        println!(
            "{} {what}{}",
            s.linked,
            if s.copied > 0 {
                format!(", {} copied", s.copied)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}
