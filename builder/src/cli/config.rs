//! Validated configuration derived from the raw arguments: the state root, the Dockerfile
//! location, build args resolved from the environment, the platform.

use super::args::{FrontendArgs, GlobalArgs};
use crate::bounded::{self, DOCKERFILE_LIMIT, DOCKERIGNORE_LIMIT};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use strata_frontend::lower::BuildOptions;
use strata_solver::Platform;

/// How container root filesystems are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Snapshotter {
    /// Layers stacked with overlayfs (the default).
    #[default]
    Overlayfs,
    /// Layers copied into a directory, for filesystems without overlayfs.
    Native,
}

/// The configuration file (`--config`, default `<root>/config.toml`). Sections other modules
/// read (such as `[registry."…"]`) are kept in `other`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub snapshotter: Snapshotter,
    /// `[history]`: how many build records `strata builds` keeps.
    #[serde(default)]
    pub history: HistoryConfig,
    /// `[gc]`: the store's garbage collection after builds.
    #[serde(default)]
    pub gc: GcConfig,
    #[serde(flatten)]
    pub other: toml::Table,
}

/// `[history] keep = N`: the build records kept (the newest N; 100 by default).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    #[serde(default = "default_keep")]
    pub keep: usize,
}

fn default_keep() -> usize {
    100
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            keep: default_keep(),
        }
    }
}

/// `[gc]`: after a build, when the layers only the build cache keeps take more than
/// `keep-storage`, cache entries go: first those unused for `keep-duration`, then the least
/// recently used, until they fit (as BuildKit's default policy, which keeps 10% of the disk
/// and drops what was unused for 60 days first).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GcConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A size (`20GB`) or a share of the state root's filesystem (`10%`).
    #[serde(default = "default_keep_storage")]
    pub keep_storage: String,
    /// A duration (`1440h`).
    #[serde(default = "default_keep_duration")]
    pub keep_duration: String,
    /// `[[gc.rule]]`: policies for kinds of state besides the build cache (BuildKit's
    /// `gcpolicy` filters); by default BuildKit's first rule: RUN cache mounts kept within
    /// 512MB, those unused for 48h going first.
    #[serde(default = "default_rules")]
    pub rule: Vec<GcRule>,
}

/// One `[[gc.rule]]`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GcRule {
    /// What it applies to: `exec.cachemount` (RUN `--mount=type=cache` directories).
    #[serde(rename = "type")]
    pub kind: GcKind,
    pub keep_storage: String,
    pub keep_duration: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum GcKind {
    #[serde(rename = "exec.cachemount")]
    CacheMount,
}

fn default_rules() -> Vec<GcRule> {
    vec![GcRule {
        kind: GcKind::CacheMount,
        keep_storage: "512MB".into(),
        keep_duration: "48h".into(),
    }]
}

fn yes() -> bool {
    true
}

fn default_keep_storage() -> String {
    "10%".into()
}

fn default_keep_duration() -> String {
    "1440h".into()
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            enabled: true,
            keep_storage: default_keep_storage(),
            keep_duration: default_keep_duration(),
            rule: default_rules(),
        }
    }
}

impl ConfigFile {
    pub fn parse(text: &str) -> Result<ConfigFile> {
        Ok(toml::from_str(text)?)
    }
}

/// Global settings every command shares.
#[derive(Debug, Clone)]
pub struct Global {
    pub root: PathBuf,
    pub config_file: PathBuf,
    pub runtime: Option<String>,
    pub debug: bool,
    pub config: ConfigFile,
}

/// The default state root: /var/lib/strata as root, else $XDG_DATA_HOME/strata
/// (or ~/.local/share/strata).
pub fn default_root(is_root: bool, xdg: Option<&str>, home: Option<&str>) -> PathBuf {
    if is_root {
        return PathBuf::from("/var/lib/strata");
    }
    match (xdg, home) {
        (Some(x), _) if !x.is_empty() => Path::new(x).join("strata"),
        (_, Some(h)) => Path::new(h).join(".local/share/strata"),
        _ => PathBuf::from(".strata"),
    }
}

impl Global {
    pub fn from_args(a: &GlobalArgs) -> Result<Global> {
        let root = a.root.clone().unwrap_or_else(|| {
            let is_root = std::fs::metadata("/proc/self")
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
                .unwrap_or(false);
            default_root(
                is_root,
                std::env::var("XDG_DATA_HOME").ok().as_deref(),
                std::env::var("HOME").ok().as_deref(),
            )
        });
        let explicit = a.config.is_some();
        let config_file = a.config.clone().unwrap_or_else(|| root.join("config.toml"));
        let config = match std::fs::read_to_string(&config_file) {
            Ok(text) => ConfigFile::parse(&text)
                .with_context(|| format!("reading {}", config_file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                ConfigFile::default()
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", config_file.display())),
        };
        Ok(Global {
            root,
            config_file,
            runtime: a.runtime.clone(),
            debug: a.debug,
            config,
        })
    }
}

/// A Dockerfile's text and where it came from.
pub struct DockerfileSource {
    /// The name as the user gave it (for messages).
    pub name: String,
    pub text: String,
    /// The `.dockerignore` text that applies, if any.
    pub dockerignore: Option<String>,
}

/// Reads a Dockerfile from the user's own path (followed) or standard input (`-`) as text:
/// a regular file of at most [`DOCKERFILE_LIMIT`] bytes; invalid UTF-8 is replaced, never
/// fatal.
pub fn read_text(path: &str) -> Result<String> {
    let bytes = if path == "-" {
        bounded::read_limited(std::io::stdin().lock(), DOCKERFILE_LIMIT)
            .context("reading the Dockerfile from standard input")?
    } else {
        bounded::open_regular(Path::new(path))
            .and_then(|f| bounded::read_file(f, DOCKERFILE_LIMIT))
            .with_context(|| format!("reading the Dockerfile {path}"))?
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Where a Dockerfile or ignore file is read from.
enum Place<'a> {
    /// The user's own path (`-f`), followed wherever it leads.
    User(&'a Path),
    /// A name inside the build context, resolved inside it.
    Context(&'a str),
}

/// Reads a regular file of at most `limit` bytes; `None` when it does not exist.
fn read_optional(
    ctx: &strata_cache::inroot::Root,
    place: &Place<'_>,
    limit: u64,
) -> Result<Option<Vec<u8>>, bounded::ReadError> {
    let f = match place {
        Place::User(p) => bounded::open_regular(p),
        Place::Context(name) => bounded::open_in_context(ctx, name),
    };
    match f {
        Ok(f) => bounded::read_file(f, limit).map(Some),
        Err(bounded::ReadError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Finds and reads the Dockerfile and its ignore file, as docker build does: `-f` or
/// CONTEXT/Dockerfile (falling back to lower-case `dockerfile`); `<Dockerfile>.dockerignore`
/// beside it wins over CONTEXT/.dockerignore. Files found in the context are resolved inside
/// it (a symlink leading out of the context is not followed out); every one must be a regular
/// file within its size limit ([`DOCKERFILE_LIMIT`], [`DOCKERIGNORE_LIMIT`]).
pub fn load_dockerfile(a: &FrontendArgs) -> Result<DockerfileSource> {
    if !a.context.is_dir() {
        bail!(
            "build context {} is not a directory: pass the directory to build from, e.g. `.`",
            a.context.display()
        );
    }
    let ctx = bounded::open_dir(&a.context)
        .with_context(|| format!("opening the build context {}", a.context.display()))?;
    let in_ctx = |name: &str| a.context.join(name).display().to_string();
    // The ignore file beside the Dockerfile: a name in the context, or beside the user's path.
    let (name, text, specific): (String, Vec<u8>, Option<Result<String, PathBuf>>) = match &a.file {
        Some(f) if f == "-" => ("-".to_string(), read_text("-")?.into_bytes(), None),
        Some(f) => {
            let text = read_optional(&ctx, &Place::User(Path::new(f)), DOCKERFILE_LIMIT)
                .map_err(|e| dockerfile_error(f, e))?
                .with_context(|| format!("cannot read Dockerfile {f}: it does not exist"))?;
            let mut s = std::ffi::OsString::from(f);
            s.push(".dockerignore");
            (f.clone(), text, Some(Err(PathBuf::from(s))))
        }
        None => {
            let mut found = None;
            for base in ["Dockerfile", "dockerfile"] {
                if let Some(text) = read_optional(&ctx, &Place::Context(base), DOCKERFILE_LIMIT)
                    .map_err(|e| dockerfile_error(&in_ctx(base), e))?
                {
                    found = Some((base, text));
                    break;
                }
            }
            let (base, text) = found.with_context(|| {
                format!(
                    "cannot read Dockerfile {}: it does not exist in the context; pass -f FILE or put a Dockerfile in the context",
                    in_ctx("Dockerfile")
                )
            })?;
            (in_ctx(base), text, Some(Ok(format!("{base}.dockerignore"))))
        }
    };
    let ignore_error =
        |name: String| move |e: bounded::ReadError| anyhow::anyhow!("reading {name}: {e}");
    let specific = match &specific {
        Some(Ok(name)) => read_optional(&ctx, &Place::Context(name), DOCKERIGNORE_LIMIT)
            .map_err(ignore_error(in_ctx(name)))?,
        Some(Err(path)) => read_optional(&ctx, &Place::User(path), DOCKERIGNORE_LIMIT)
            .map_err(ignore_error(path.display().to_string()))?,
        None => None,
    };
    let dockerignore = match specific {
        Some(b) => Some(b),
        None => read_optional(&ctx, &Place::Context(".dockerignore"), DOCKERIGNORE_LIMIT)
            .map_err(ignore_error(in_ctx(".dockerignore")))?,
    };
    Ok(DockerfileSource {
        name,
        text: String::from_utf8_lossy(&text).into_owned(),
        dockerignore: dockerignore.map(|b| String::from_utf8_lossy(&b).into_owned()),
    })
}

fn dockerfile_error(name: &str, e: bounded::ReadError) -> anyhow::Error {
    anyhow::anyhow!("cannot read Dockerfile {name}: {e}")
}

/// `K=V` or `K` (value from the environment; skipped when unset, as docker does).
pub fn parse_build_args(
    raw: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in raw {
        match a.split_once('=') {
            Some(("", _)) => {
                bail!("invalid --build-arg {a:?}: the name is empty; write NAME=VALUE")
            }
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Some(v) = env(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

/// `--platform P1,P2,…`: normalized, each once, in the order given (none: the machine's).
pub fn platforms(a: &FrontendArgs) -> Result<Vec<Platform>> {
    let Some(list) = &a.platform else {
        return Ok(vec![]);
    };
    let mut out: Vec<Platform> = Vec::new();
    for p in list.split(',').map(str::trim) {
        let parsed = Platform::parse(p)
            .map_err(|e| {
                anyhow::anyhow!("--platform {p:?}: {e}: write os/arch[/variant], e.g. linux/arm64")
            })?
            .normalized();
        if !out.iter().any(|o| o.same(&parsed)) {
            out.push(parsed);
        }
    }
    Ok(out)
}

/// Builds the frontend options from the arguments and the loaded Dockerfile.
pub fn build_options(a: &FrontendArgs, df: &DockerfileSource) -> Result<BuildOptions> {
    let platform = platforms(a)?.into_iter().next();
    let dockerignore = match &df.dockerignore {
        Some(text) => strata_frontend::dockerignore::read_ignore_file(text.as_bytes())
            .context("reading .dockerignore")?
            .into_iter()
            .map(|l| l.pattern)
            .collect(),
        None => vec![],
    };
    Ok(BuildOptions {
        file_name: df.name.clone(),
        build_args: parse_build_args(&a.build_args, |k| std::env::var(k).ok())?,
        target: a.target.clone(),
        platform,
        dockerignore,
        ..BuildOptions::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots() {
        assert_eq!(
            default_root(true, None, None),
            PathBuf::from("/var/lib/strata")
        );
        assert_eq!(
            default_root(false, Some("/x"), Some("/h")),
            PathBuf::from("/x/strata")
        );
        assert_eq!(
            default_root(false, None, Some("/h")),
            PathBuf::from("/h/.local/share/strata")
        );
    }

    #[test]
    fn config_files() {
        assert_eq!(
            ConfigFile::parse("").unwrap().snapshotter,
            Snapshotter::Overlayfs
        );
        let c = ConfigFile::parse(
            "snapshotter = \"native\"\n[registry.\"docker.io\"]\nmirrors = [\"m:5000\"]\n",
        )
        .unwrap();
        assert_eq!(c.snapshotter, Snapshotter::Native);
        assert!(c.other.contains_key("registry"));
        assert!(ConfigFile::parse("snapshotter = \"zfs\"").is_err());
    }

    #[test]
    fn build_args_from_env() {
        let env = |k: &str| (k == "SET").then(|| "v".to_string());
        let m = parse_build_args(
            &["A=1".into(), "SET".into(), "UNSET".into(), "B=x=y".into()],
            env,
        )
        .unwrap();
        assert_eq!(m.get("A").map(String::as_str), Some("1"));
        assert_eq!(m.get("SET").map(String::as_str), Some("v"));
        assert!(!m.contains_key("UNSET"));
        assert_eq!(m.get("B").map(String::as_str), Some("x=y"));
        assert!(parse_build_args(&["=1".into()], env).is_err());
    }
}
