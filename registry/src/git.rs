//! `ADD` of a Git repository: the ref resolved to a commit (the step's key), the tree at that
//! commit checked out, optionally with its `.git` directory. Uses the host's `git`.

use std::path::Path;
use std::process::{Command, Stdio};

/// Why a Git source could not be had.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("running git (ADD of a Git repository needs git installed): {0}")]
    Spawn(std::io::Error),
    #[error("git {args}: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("resolving {want} in {remote}: {source}")]
    Resolve {
        remote: String,
        want: String,
        source: Box<GitError>,
    },
    #[error("{remote} has no ref {want}")]
    NoRef { remote: String, want: String },
    #[error("checking out {commit}: {source}")]
    Checkout {
        commit: String,
        source: Box<GitError>,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, GitError>;

fn git(args: &[&str], dir: Option<&Path>) -> Result<String> {
    let mut c = Command::new("git");
    if let Some(d) = dir {
        c.current_dir(d);
    }
    // A Dockerfile names the remote: git gets none of the host's credentials for it (no
    // global or system config, so no credential helper; no home; ssh with no keys, agent or
    // config), as BuildKit's git source uses only what the build is given. Proxy and CA
    // settings pass, they are how this host reaches the network.
    c.env_clear();
    for (k, v) in std::env::vars_os() {
        let name = k.to_string_lossy().to_ascii_lowercase();
        let keep = matches!(
            name.as_str(),
            "path"
                | "lang"
                | "lc_all"
                | "http_proxy"
                | "https_proxy"
                | "all_proxy"
                | "no_proxy"
                | "ssl_cert_file"
                | "ssl_cert_dir"
        );
        if keep {
            c.env(k, v);
        }
    }
    let out = c
        .args(args)
        .env("HOME", "/nonexistent")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env(
            "GIT_SSH_COMMAND",
            "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityFile=/dev/null -o IdentityAgent=none",
        )
        .stdin(Stdio::null())
        .output()
        .map_err(GitError::Spawn)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn is_commit(r: &str) -> bool {
    r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit())
}

/// The commit `reference` (a branch, tag or commit; empty: the default branch) names.
pub fn resolve(remote: &str, reference: &str) -> Result<String> {
    if is_commit(reference) {
        return Ok(reference.to_ascii_lowercase());
    }
    let want = if reference.is_empty() {
        "HEAD"
    } else {
        reference
    };
    let out = git(&["ls-remote", remote, want], None).map_err(|e| GitError::Resolve {
        remote: remote.to_string(),
        want: want.to_string(),
        source: Box::new(e),
    })?;
    let lines: Vec<(&str, &str)> = out.lines().filter_map(|l| l.split_once('\t')).collect();
    // Exact names first: HEAD, refs/heads/X, refs/tags/X (a peeled tag `^{}` wins for tags).
    for cand in [
        want.to_string(),
        format!("refs/heads/{want}"),
        format!("refs/tags/{want}^{{}}"),
        format!("refs/tags/{want}"),
    ] {
        if let Some((sha, _)) = lines.iter().find(|(_, name)| *name == cand) {
            return Ok(sha.to_string());
        }
    }
    Err(GitError::NoRef {
        remote: remote.to_string(),
        want: want.to_string(),
    })
}

/// Checks `commit` of `remote` out into `dest` (created), keeping `.git` when asked.
pub fn checkout(remote: &str, commit: &str, dest: &Path, keep_git_dir: bool) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|source| GitError::Io {
        op: "creating",
        path: dest.display().to_string(),
        source,
    })?;
    git(&["init", "-q"], Some(dest))?;
    git(&["remote", "add", "origin", remote], Some(dest))?;
    // A commit by its ID needs a server that allows it; fall back to a full fetch.
    if git(
        &["fetch", "-q", "--depth", "1", "origin", commit],
        Some(dest),
    )
    .is_err()
    {
        git(&["fetch", "-q", "origin"], Some(dest))?;
    }
    git(
        &["-c", "advice.detachedHead=false", "checkout", "-q", commit],
        Some(dest),
    )
    .map_err(|e| GitError::Checkout {
        commit: commit.to_string(),
        source: Box::new(e),
    })?;
    if !keep_git_dir {
        let d = dest.join(".git");
        std::fs::remove_dir_all(&d).map_err(|source| GitError::Io {
            op: "removing",
            path: d.display().to_string(),
            source,
        })?;
    }
    Ok(())
}
