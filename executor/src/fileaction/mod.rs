//! File operations (COPY, ADD, WORKDIR, heredoc files) applied to a root directory, with
//! BuildKit's rules: destination trailing slash / existing directory, wildcards, a directory's
//! contents copied, `--chown` names resolved in the destination's /etc/passwd and /etc/group,
//! `--chmod`, missing parents created, local archives extracted by ADD.
//!
//! This module only reads and writes directories it is given; the executor runs it inside a
//! private mount namespace where `root` is the overlay of the step's base layers (so writes land
//! in the new layer and deletions become whiteouts). Every path inside `root` or a source is
//! resolved by the kernel inside that directory ([`strata_cache::inroot`]) and the walk goes on
//! from the descriptors it returns: a directory is entered only as a real directory opened
//! below the one before, and every file is named by one component below a held directory, so
//! no symlink (in the destination, a source, or a chain of them) leads outside. Symlinks
//! inside copied trees are copied as symlinks, never followed.

use crate::user;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use strata_cache::inroot::{Entry, InRootError, Root};
use strata_frontend::dockerignore::{PatternMatcher, contains_wildcards};
use strata_solver::graph::{Chmod, Chown, FileAction};

mod reuse;
pub mod select;
pub use reuse::{LinkStats, Reuse};
use select::{SourceSelection, component_matches};

/// The most of /etc/passwd or /etc/group read to resolve `--chown` names.
const ETC_FILE_LIMIT: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FileOpError {
    #[error("{0}: not found")]
    NotFound(String),
    #[error("no source files were specified (no file matches {0})")]
    NoMatch(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    InRoot(#[from] InRootError),
    #[error("{0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, FileOpError>;

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileOpError + use<> {
    let path = path.to_path_buf();
    move |source| FileOpError::Io { op, path, source }
}

/// An error about `name`, a path inside the root as the Dockerfile names it (never the host
/// path of a descriptor).
fn io_in(op: &'static str, name: &str) -> impl FnOnce(std::io::Error) -> FileOpError + use<> {
    let path = PathBuf::from(if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/{name}")
    });
    move |source| FileOpError::Io { op, path, source }
}

/// A filesystem a copy reads from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source {
    pub dir: PathBuf,
    /// The local build context: `.dockerignore` patterns apply, and files become root's
    /// (as BuildKit's context transfer makes them).
    pub context: bool,
    #[serde(default)]
    pub ignore: Vec<String>,
}

/// Applies `actions` in order to `root`. `sources[i]` is the op's input `i`.
pub fn apply(root: &Path, sources: &[Option<Source>], actions: &[FileAction]) -> Result<()> {
    apply_reusing(root, sources, actions, None)
}

/// [`apply`], leaving out the files of a lone copy that `reuse` will link (see [`Reuse`]; the
/// caller makes a `Reuse` that fits the copy's source).
// Long: one arm per file action (copy, mkdir, mkfile, rm), with reuse threaded through copy.
pub fn apply_reusing(
    root: &Path,
    sources: &[Option<Source>],
    actions: &[FileAction],
    mut reuse: Option<&mut Reuse>,
) -> Result<()> {
    let root_dir = Root::open(root)?;
    let root = &root_dir;
    // Only a lone copy writes each destination path at most once.
    let lone = actions.len() == 1;
    for a in actions {
        match a {
            FileAction::Copy {
                input,
                src,
                dest,
                chown,
                chmod,
                follow_symlinks,
                dir_contents_only,
                allow_wildcard,
                allow_empty_wildcard,
                create_dest_path,
                unpack,
                parents,
                exclude,
            } => {
                let source = sources
                    .get(*input)
                    .and_then(|s| s.as_ref())
                    .ok_or_else(|| {
                        FileOpError::Invalid(format!(
                            "copy from input {input}, which is not a filesystem"
                        ))
                    })?;
                let c = CopySpec {
                    root,
                    root_real: root.entry().real_path().ok(),
                    source,
                    src_root: Root::open(&source.dir)?,
                    ignore: if source.context && !source.ignore.is_empty() {
                        Some(
                            PatternMatcher::new(&source.ignore)
                                .map_err(|e| FileOpError::Invalid(format!(".dockerignore: {e}")))?,
                        )
                    } else {
                        None
                    },
                    selection: SourceSelection::new(src, exclude)
                        .map_err(|e| FileOpError::Invalid(format!("--exclude: {e}")))?,
                    owner: match chown {
                        Some(c) => Some(resolve_chown(root, c)?),
                        None => None,
                    },
                    chmod: chmod.clone(),
                    follow_symlinks: *follow_symlinks,
                    dir_contents_only: *dir_contents_only,
                    unpack: *unpack,
                    parents: *parents,
                    links: HashMap::new(),
                    reuse: if lone { reuse.as_deref_mut() } else { None },
                };
                c.run(
                    src,
                    dest,
                    *allow_wildcard,
                    *allow_empty_wildcard,
                    *create_dest_path,
                )?;
            }
            FileAction::Mkdir {
                path,
                mode,
                make_parents,
                chown,
            } => {
                let owner = match chown {
                    Some(c) => resolve_chown(root, c)?,
                    None => (0, 0),
                };
                match root.resolve(path, true) {
                    Ok(e) if e.is_dir() => {}
                    Ok(_) => {
                        return Err(FileOpError::Invalid(format!(
                            "mkdir {path}: a file that is not a directory is in the way"
                        )));
                    }
                    Err(e) if e.is_not_found() => {
                        let dir = if *make_parents {
                            mkdir_all(root, path, owner)?
                        } else {
                            let (parent, name) = split(path)?;
                            let p = resolve_dir(root, &parent)?;
                            std::fs::create_dir(
                                p.child(OsStr::new(&name)).map_err(io_in("mkdir", path))?,
                            )
                            .map_err(io_in("mkdir", path))?;
                            p.open_dir(OsStr::new(&name))?
                        };
                        set_owner_mode(&here(&dir), owner, Some(*mode))?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            FileAction::Mkfile {
                path,
                mode,
                data,
                chown,
            } => {
                let owner = match chown {
                    Some(c) => resolve_chown(root, c)?,
                    None => (0, 0),
                };
                let (parent, name) = split(path)?;
                let dir = resolve_dir(root, &parent)?;
                let target = dir.child(OsStr::new(&name)).map_err(io_in("write", path))?;
                remove_non_dir(&target, path)?;
                std::fs::write(&target, data).map_err(io_in("write", path))?;
                set_owner_mode(&target, owner, Some(*mode))?;
            }
            FileAction::Rm {
                path,
                allow_not_found,
                allow_wildcard,
            } => {
                let matches = if *allow_wildcard && contains_wildcards(path) {
                    glob(root, path, None)?
                } else {
                    vec![path.trim_start_matches('/').to_string()]
                };
                for m in matches {
                    let (parent, name) = split(&m)?;
                    let dir = match resolve_dir(root, &parent) {
                        Err(FileOpError::InRoot(e)) if e.is_not_found() && *allow_not_found => {
                            continue;
                        }
                        r => r?,
                    };
                    let name = OsString::from(name);
                    if dir.kind_of(&name).is_none() {
                        if *allow_not_found {
                            continue;
                        }
                        return Err(FileOpError::NotFound(format!("/{m}")));
                    }
                    dir.remove_child_all(&name).map_err(io_in("remove", &m))?;
                }
            }
        }
    }
    Ok(())
}

/// The directory at `path` inside `root` (symlinks followed inside it).
fn resolve_dir(root: &Root, path: &str) -> Result<Entry> {
    let e = root.resolve(path, true)?;
    if !e.is_dir() {
        return Err(FileOpError::Invalid(format!("{path} is not a directory")));
    }
    Ok(e)
}

/// An I/O error about a descriptor's path, said of `name` (the path inside the source or
/// root) instead.
fn rename(e: FileOpError, name: &str) -> FileOpError {
    match e {
        FileOpError::Io { op, source, .. } => io_in(op, name)(source),
        e => e,
    }
}

/// A directory entry's own path for path-taking calls: `/proc/self/fd/N/.` (the directory
/// itself, never a symlink's target).
fn here(e: &Entry) -> PathBuf {
    e.path().join(".")
}

/// `(parent, name)` of a path inside a root.
fn split(path: &str) -> Result<(String, String)> {
    let t = path.trim_end_matches('/');
    let (p, n) = t.rsplit_once('/').unwrap_or(("", t));
    if n.is_empty() || n == "." || n == ".." {
        return Err(FileOpError::Invalid(format!("{path:?} names no file")));
    }
    Ok((if p.is_empty() { "/".into() } else { p.into() }, n.into()))
}

/// Removes what is at `p` (one name below a held directory) unless it is a directory.
fn remove_non_dir(p: &Path, name: &str) -> Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => Err(FileOpError::Invalid(format!(
            "cannot replace the directory {name} with a file"
        ))),
        Ok(_) => std::fs::remove_file(p).map_err(io_in("remove", name)),
        Err(_) => Ok(()),
    }
}

/// `mkdir -p` inside `root`: created directories get mode 0755 and `owner`.
fn mkdir_all(root: &Root, path: &str, owner: (u32, u32)) -> Result<Entry> {
    let mut failed = None;
    let e = root.mkdir_all(path, 0o755, &mut |e| {
        if let Err(err) = set_owner_mode(&here(e), owner, Some(0o755)) {
            failed = Some(err);
        }
        Ok(())
    })?;
    match failed {
        Some(err) => Err(err),
        None => Ok(e),
    }
}

fn set_owner_mode(p: &Path, owner: (u32, u32), mode: Option<u32>) -> Result<()> {
    std::os::unix::fs::lchown(p, Some(owner.0), Some(owner.1)).map_err(io("chown", p))?;
    if let Some(mode) = mode {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(io("chmod", p))?;
    }
    Ok(())
}

/// `--chown=user[:group]`, resolved in the destination's /etc/passwd and /etc/group. A numeric
/// user without a group also gives the group (as BuildKit does).
fn resolve_chown(root: &Root, c: &Chown) -> Result<(u32, u32)> {
    let uid_num = c.user.parse::<u32>().ok();
    let gid_num = c.group.as_deref().and_then(|g| g.parse::<u32>().ok());
    match (uid_num, c.group.as_deref(), gid_num) {
        (Some(u), None, _) => return Ok((u, u)),
        (Some(u), Some(_), Some(g)) => return Ok((u, g)),
        _ => {}
    }
    let read = |p: &str| {
        root.read_file(p, ETC_FILE_LIMIT)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let spec = match &c.group {
        Some(g) => format!("{}:{g}", c.user),
        None => c.user.clone(),
    };
    let u = user::resolve(&spec, &read("/etc/passwd"), &read("/etc/group"))
        .map_err(|e| FileOpError::Invalid(format!("--chown={spec}: {e}")))?;
    Ok((u.uid, u.gid))
}

/// Paths (relative to `root`, `/`-separated) matching a wildcard pattern, sorted, one path
/// component at a time (as Go's filepath.Glob).
fn glob(root: &Root, pattern: &str, ignore: Option<&PatternMatcher>) -> Result<Vec<String>> {
    let mut found = vec![String::new()];
    for comp in pattern.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let mut next = Vec::new();
        for base in &found {
            if !contains_wildcards(comp) {
                let p = join_rel(base, comp);
                if root.resolve(&p, false).is_ok() {
                    next.push(p);
                }
                continue;
            }
            let Ok(dir) = root.resolve(base, true) else {
                continue;
            };
            let Ok(rd) = std::fs::read_dir(dir.path()) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for n in names {
                if component_matches(comp, &n)
                    .map_err(|e| FileOpError::Invalid(format!("bad pattern {pattern:?}: {e}")))?
                {
                    next.push(join_rel(base, &n));
                }
            }
        }
        found = next;
    }
    if let Some(ig) = ignore {
        found.retain(|p| !ig.matches(p).unwrap_or(false));
    }
    found.retain(|p| !p.is_empty());
    Ok(found)
}

fn join_rel(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}/{name}")
    }
}

/// A source or destination file: one name below a held directory (the name itself is never
/// followed by the calls made on it), or a directory held itself.
#[derive(Clone)]
enum Item {
    In { dir: Entry, name: OsString },
    Dir(Entry),
}

impl Item {
    /// The path for calls on the item: `/proc/self/fd/N/name` or `/proc/self/fd/N/.`.
    fn path(&self) -> Result<PathBuf> {
        match self {
            Item::In { dir, name } => dir.child(name).map_err(io("name", Path::new(name))),
            Item::Dir(d) => Ok(here(d)),
        }
    }
}

struct CopySpec<'a> {
    root: &'a Root,
    /// The root's host path as the kernel reports it (to tell where a destination is inside).
    root_real: Option<PathBuf>,
    source: &'a Source,
    src_root: Root,
    ignore: Option<PatternMatcher>,
    /// The source pattern and its `--exclude` (the rule the cache key selects by).
    selection: SourceSelection,
    owner: Option<(u32, u32)>,
    chmod: Option<Chmod>,
    follow_symlinks: bool,
    dir_contents_only: bool,
    unpack: bool,
    parents: bool,
    /// Hard links among the copied files: source (dev, inode) → first copy.
    links: HashMap<(u64, u64), Item>,
    /// Files to link from a previous result instead of copying.
    reuse: Option<&'a mut Reuse>,
}

impl CopySpec<'_> {
    fn run(
        mut self,
        src: &str,
        dest: &str,
        allow_wildcard: bool,
        allow_empty_wildcard: bool,
        create_dest_path: bool,
    ) -> Result<()> {
        let rel = src.trim_start_matches('/');
        let wildcard = allow_wildcard && contains_wildcards(rel);
        if wildcard {
            // Several matches may write the same destination path.
            self.reuse = None;
        }
        let matches: Vec<String> = if wildcard {
            let m = glob(&self.src_root, rel, self.ignore.as_ref())?;
            if m.is_empty() && !allow_empty_wildcard {
                return Err(FileOpError::NoMatch(src.to_string()));
            }
            m
        } else {
            let clean = clean_rel(rel);
            if !clean.is_empty() && self.ignored(&clean) {
                return Err(FileOpError::NotFound(format!("\"/{clean}\"")));
            }
            vec![clean]
        };
        let dest_is_dir = dest.ends_with('/')
            || dest.ends_with("/.")
            || matches.len() > 1
            || wildcard
            || self.root.resolve(dest, true).is_ok_and(|e| e.is_dir());
        for m in matches {
            // The named source: its own symlink is followed (inside the source) when asked.
            let item = self.source_item(&m)?;
            let md = std::fs::symlink_metadata(item.path()?)
                .map_err(|_| FileOpError::NotFound(format!("\"/{m}\"")))?;
            let name = Path::new(&m)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            let dest_dir_path = if self.parents {
                // --parents: the source's directories are kept below the destination.
                let parent = Path::new(&m)
                    .parent()
                    .map(|p| p.to_string_lossy().into_owned());
                match parent {
                    Some(p) if !p.is_empty() => format!("{}/{p}", dest.trim_end_matches('/')),
                    _ => dest.to_string(),
                }
            } else {
                dest.to_string()
            };
            if md.is_dir() && self.dir_contents_only {
                let target = if self.parents && !m.is_empty() {
                    format!(
                        "{}/{}",
                        dest_dir_path.trim_end_matches('/'),
                        name.unwrap_or_default()
                    )
                } else {
                    dest_dir_path
                };
                let dir = self.dest_dir(&target, create_dest_path, Some(&md))?;
                let src_dir = self.open_item_dir(&item)?;
                self.copy_dir_contents(&src_dir, &m, &dir)?;
            } else if md.is_file() && self.unpack && is_archive(&item.path()?) {
                let dir = self.dest_dir(&dest_dir_path, true, None)?;
                self.extract(&item.path()?, &m, &dir)?;
            } else {
                let name = name.ok_or_else(|| FileOpError::NotFound(src.to_string()))?;
                let target = if dest_is_dir || self.parents {
                    let dir = self.dest_dir(&dest_dir_path, create_dest_path, None)?;
                    Item::In {
                        dir,
                        name: name.into(),
                    }
                } else {
                    let (parent, fname) = split(dest)?;
                    let dir = self.dest_dir(&parent, create_dest_path, None)?;
                    Item::In {
                        dir,
                        name: fname.into(),
                    }
                };
                self.copy_entry(&item, Path::new(&m), &md, &target)?;
            }
        }
        Ok(())
    }

    /// The source at `rel`: its parents resolved inside the source, and its own symlink (and
    /// the ones that leads to) followed inside the source when the copy follows symlinks.
    fn source_item(&self, rel: &str) -> Result<Item> {
        let not_found = |e: InRootError| {
            if e.is_not_found() {
                FileOpError::NotFound(format!("\"/{rel}\""))
            } else {
                FileOpError::InRoot(InRootError::new(e.op, rel, e.cause))
            }
        };
        match self
            .src_root
            .resolve_last(rel, self.follow_symlinks)
            .map_err(not_found)?
        {
            Some((dir, name)) => Ok(Item::In { dir, name }),
            // The source's root itself (or a path ending in `..`): a directory.
            None => Ok(Item::Dir(
                self.src_root.resolve(rel, true).map_err(not_found)?,
            )),
        }
    }

    /// A source item that is a directory, held open.
    fn open_item_dir(&self, item: &Item) -> Result<Entry> {
        match item {
            Item::Dir(d) => Ok(d.clone()),
            Item::In { dir, name } => Ok(dir.open_dir(name)?),
        }
    }

    fn ignored(&self, rel: &str) -> bool {
        self.ignore
            .as_ref()
            .is_some_and(|ig| ig.matches(rel).unwrap_or(false))
    }

    /// The destination directory, created (with its parents) when missing.
    fn dest_dir(
        &self,
        dest: &str,
        create: bool,
        like: Option<&std::fs::Metadata>,
    ) -> Result<Entry> {
        match self.root.resolve(dest, true) {
            Ok(e) if e.is_dir() => return Ok(e),
            Ok(_) => {
                return Err(FileOpError::Invalid(format!(
                    "cannot copy to {dest}: it is a file, not a directory"
                )));
            }
            Err(e) if !e.is_not_found() => return Err(e.into()),
            Err(_) if !create => {
                return Err(FileOpError::NotFound(dest.to_string()));
            }
            Err(_) => {}
        }
        let owner = self.owner.unwrap_or((0, 0));
        let dir = mkdir_all(self.root, dest, owner)?;
        if let Some(m) = like {
            // A directory copied onto a new path takes the source directory's mode.
            let mode = self.mode_for(m.mode() & 0o7777, true);
            set_owner_mode(&here(&dir), self.owner_for(m), Some(mode))?;
        }
        Ok(dir)
    }

    fn owner_for(&self, m: &std::fs::Metadata) -> (u32, u32) {
        match self.owner {
            Some(o) => o,
            None if self.source.context => (0, 0),
            None => (m.uid(), m.gid()),
        }
    }

    fn mode_for(&self, mode: u32, is_dir: bool) -> u32 {
        match &self.chmod {
            None => mode,
            Some(Chmod::Octal(m)) => *m,
            Some(Chmod::Symbolic(s)) => symbolic_mode(s, mode, is_dir).unwrap_or(mode),
        }
    }

    /// Where `dir` (a destination directory) is inside the root, `/`-separated.
    fn rel_in_root(&self, dir: &Entry) -> Option<PathBuf> {
        let real = dir.real_path().ok()?;
        let root = self.root_real.as_ref()?;
        real.strip_prefix(root).ok().map(Path::to_path_buf)
    }

    fn copy_dir_contents(&mut self, src: &Entry, rel: &str, dest: &Entry) -> Result<()> {
        let mut names: Vec<OsString> = std::fs::read_dir(src.path())
            .map_err(io_in("list", rel))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::result::Result<_, _>>()
            .map_err(io_in("list", rel))?;
        names.sort();
        for n in names {
            let name = n.to_string_lossy().into_owned();
            let r = join_rel(rel, &name);
            let p = src.child(&n).map_err(io_in("list", &r))?;
            if self.ignored(&r) {
                // An ignored directory may still hold re-included files (`!` patterns).
                let may = self
                    .ignore
                    .as_ref()
                    .is_some_and(|ig| ig.exclusions() && ig.may_match_below(&r));
                if may && std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                    let target = Item::In {
                        dir: dest.clone(),
                        name: n.clone(),
                    };
                    self.make_dir_like(&p, &target, &r)?;
                    let (s, d) = (src.open_dir(&n)?, dest.open_dir(&n)?);
                    self.copy_dir_contents(&s, &r, &d)?;
                }
                continue;
            }
            let below = r.strip_prefix(rel).unwrap_or(&r).trim_start_matches('/');
            if self.selection.excludes(below) {
                continue;
            }
            let md = std::fs::symlink_metadata(&p).map_err(io_in("stat", &r))?;
            let target = Item::In {
                dir: dest.clone(),
                name: n.clone(),
            };
            let item = Item::In {
                dir: src.clone(),
                name: n.clone(),
            };
            if md.is_dir() {
                self.make_dir_like(&p, &target, &r)?;
                let (s, d) = (src.open_dir(&n)?, dest.open_dir(&n)?);
                self.copy_dir_contents(&s, &r, &d)?;
                copy_times(&md, &target.path()?).map_err(|e| rename(e, &r))?;
            } else {
                self.copy_entry(&item, Path::new(&r), &md, &target)?;
            }
        }
        Ok(())
    }

    /// Makes `target` a real directory like the source directory at `src`.
    fn make_dir_like(&self, src: &Path, target: &Item, name: &str) -> Result<()> {
        let md = std::fs::symlink_metadata(src).map_err(io_in("stat", name))?;
        let t = target.path()?;
        match std::fs::symlink_metadata(&t) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                std::fs::remove_file(&t).map_err(io_in("remove", name))?;
                std::fs::create_dir(&t).map_err(io_in("mkdir", name))?;
            }
            Err(_) => std::fs::create_dir(&t).map_err(io_in("mkdir", name))?,
        }
        let mode = self.mode_for(md.mode() & 0o7777, true);
        set_owner_mode(&t, self.owner_for(&md), Some(mode)).map_err(|e| rename(e, name))?;
        copy_xattrs(src, &t);
        Ok(())
    }

    /// Copies one entry (file, symlink, device, fifo; a directory with its contents) at `src`
    /// (`src_rel` inside its source) to `target`.
    fn copy_entry(
        &mut self,
        src: &Item,
        src_rel: &Path,
        md: &std::fs::Metadata,
        target: &Item,
    ) -> Result<()> {
        let (sp, tp) = (src.path()?, target.path()?);
        let name = src_rel.to_string_lossy().into_owned();
        let name = name.as_str();
        if md.is_dir() {
            self.make_dir_like(&sp, target, name)?;
            let s = self.open_item_dir(src)?;
            let d = match target {
                Item::Dir(d) => d.clone(),
                Item::In { dir, name } => dir.open_dir(name)?,
            };
            return self.copy_dir_contents(&s, &src_rel.to_string_lossy(), &d);
        }
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            return Ok(()); // an overlay whiteout in a single-layer source
        }
        // Where the target is inside the root is asked of the kernel only for a copy that may
        // link (a readlink of its directory).
        if md.is_file() && self.reuse.is_some() {
            let (mode, owner) = (self.mode_for(md.mode() & 0o7777, false), self.owner_for(md));
            if let Item::In { dir, name } = target
                && let Some(rel) = self.rel_in_root(dir).map(|d| d.join(name))
                && let Some(r) = self.reuse.as_deref_mut()
                && r.defer(&self.src_root, &sp, src_rel, md, &tp, &rel, mode, owner)
            {
                return Ok(());
            }
        }
        remove_non_dir(&tp, name)?;
        if md.is_file() && md.nlink() > 1 {
            if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                return std::fs::hard_link(first.path()?, &tp).map_err(io_in("link", name));
            }
            self.links.insert((md.dev(), md.ino()), target.clone());
        }
        if ft.is_symlink() {
            let t = std::fs::read_link(&sp).map_err(io_in("readlink", name))?;
            std::os::unix::fs::symlink(&t, &tp).map_err(io_in("symlink", name))?;
            let (u, g) = self.owner_for(md);
            std::os::unix::fs::lchown(&tp, Some(u), Some(g)).map_err(io_in("chown", name))?;
            // A symlink keeps its time too (as BuildKit's copy does, through lutimes).
            return copy_times(md, &tp).map_err(|e| rename(e, name));
        }
        if md.is_file() {
            copy_file(&sp, &tp).map_err(|e| rename(e, name))?;
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_fifo() {
                rustix::fs::FileType::Fifo
            } else if ft.is_char_device() {
                rustix::fs::FileType::CharacterDevice
            } else {
                rustix::fs::FileType::BlockDevice
            };
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &tp,
                kind,
                rustix::fs::Mode::from_raw_mode(md.mode() & 0o7777),
                md.rdev(),
            )
            .map_err(|e| io_in("mknod", name)(e.into()))?;
        } else {
            return Ok(()); // sockets are not copied
        }
        let mode = self.mode_for(md.mode() & 0o7777, false);
        set_owner_mode(&tp, self.owner_for(md), Some(mode)).map_err(|e| rename(e, name))?;
        copy_xattrs(&sp, &tp);
        copy_times(md, &tp).map_err(|e| rename(e, name))
    }

    fn extract(&self, archive: &Path, name: &str, dest: &Entry) -> Result<()> {
        let f = std::fs::File::open(archive).map_err(io_in("open", name))?;
        let r = strata_cache::unpack::decompress(f).map_err(io_in("decompress", name))?;
        let opts = strata_cache::unpack::UnpackOptions {
            whiteouts: strata_cache::unpack::Whiteouts::Apply,
            ..Default::default()
        };
        strata_cache::unpack::unpack(r, &here(dest), &strata_cache::sys::RealFs, &opts)
            .map_err(|e| FileOpError::Invalid(format!("extracting /{name}: {e}")))?;
        Ok(())
    }
}

/// `a/./b/` → `a/b`; `..` cannot climb above the source.
fn clean_rel(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

/// Whether ADD extracts the file: a tar, plain or compressed (gzip, bzip2, xz, zstd).
fn is_archive(p: &Path) -> bool {
    let Ok(f) = std::fs::File::open(p) else {
        return false;
    };
    let Ok(mut r) = strata_cache::unpack::decompress(f) else {
        return false;
    };
    let mut block = vec![0u8; 512];
    let mut n = 0;
    while n < 512 {
        match std::io::Read::read(&mut r, &mut block[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n == 512
        && tar::Header::from_byte_slice(&block).cksum().ok()
            == Some(
                block
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        if (148..156).contains(&i) {
                            32u32
                        } else {
                            *b as u32
                        }
                    })
                    .sum(),
            )
}

/// Copies a regular file's bytes (copy_file_range / reflink where the kernel offers them:
/// std::fs::copy uses them on Linux).
fn copy_file(src: &Path, target: &Path) -> Result<()> {
    std::fs::copy(src, target).map_err(io("copy", src))?;
    Ok(())
}

fn copy_times(md: &std::fs::Metadata, target: &Path) -> Result<()> {
    let ts = |s: i64, ns: i64| rustix::fs::Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    let times = rustix::fs::Timestamps {
        last_access: ts(md.atime(), md.atime_nsec()),
        last_modification: ts(md.mtime(), md.mtime_nsec()),
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        target,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| FileOpError::Io {
        op: "set times",
        path: target.to_path_buf(),
        source: e.into(),
    })
}

/// The names of the extended attributes a copy carries: all but overlayfs's own.
fn carried_xattrs(p: &Path) -> std::io::Result<impl Iterator<Item = std::ffi::OsString>> {
    Ok(xattr::list(p)?.filter(|n| strata_cache::difftar::carried_xattr(&n.to_string_lossy())))
}

fn copy_xattrs(src: &Path, target: &Path) {
    let Ok(names) = carried_xattrs(src) else {
        return;
    };
    for n in names {
        if let Ok(Some(v)) = xattr::get(src, &n) {
            let _ = xattr::set(target, &n, &v);
        }
    }
}

/// chmod(1) symbolic modes: `u=rwX,go=rX`, `+x`, `a-w`, `g+s`, `o=`.
pub fn symbolic_mode(spec: &str, mode: u32, is_dir: bool) -> Option<u32> {
    let mut mode = mode & 0o7777;
    for clause in spec.split(',') {
        let ops_at = clause.find(['+', '-', '='])?;
        let (who, rest) = clause.split_at(ops_at);
        let mut mask = 0u32;
        for c in who.chars() {
            mask |= match c {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                'a' => 0o7777,
                _ => return None,
            };
        }
        if who.is_empty() {
            mask = 0o7777;
        }
        let mut chars = rest.chars().peekable();
        while let Some(op) = chars.next() {
            let mut bits = 0u32;
            while let Some(&c) = chars.peek() {
                if matches!(c, '+' | '-' | '=') {
                    break;
                }
                chars.next();
                bits |= match c {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' if is_dir || mode & 0o111 != 0 => 0o111,
                    'X' => 0,
                    's' => 0o6000,
                    't' => 0o1000,
                    _ => return None,
                };
            }
            let bits = bits & mask;
            match op {
                '+' => mode |= bits,
                '-' => mode &= !bits,
                '=' => mode = (mode & !(mask & 0o777)) | bits,
                _ => return None,
            }
        }
    }
    Some(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(src: &str, dest: &str) -> FileAction {
        FileAction::Copy {
            input: 0,
            src: src.into(),
            dest: dest.into(),
            chown: None,
            chmod: None,
            follow_symlinks: true,
            dir_contents_only: true,
            allow_wildcard: true,
            allow_empty_wildcard: false,
            create_dest_path: true,
            unpack: false,
            parents: false,
            exclude: vec![],
        }
    }

    struct Fx {
        _d: tempfile::TempDir,
        root: PathBuf,
        ctx: PathBuf,
    }

    fn fixture() -> Fx {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let ctx = d.path().join("ctx");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/group"),
            "root:x:0:\nstaff:x:50:\napp:x:1001:\n",
        )
        .unwrap();
        std::fs::create_dir_all(ctx.join("dir/sub")).unwrap();
        std::fs::write(ctx.join("a.txt"), "a").unwrap();
        std::fs::write(ctx.join("b.txt"), "b").unwrap();
        std::fs::write(ctx.join("dir/f"), "f").unwrap();
        std::fs::write(ctx.join("dir/sub/g"), "g").unwrap();
        std::fs::write(ctx.join("dir/skip.log"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", ctx.join("dir/abs-link")).unwrap();
        Fx { _d: d, root, ctx }
    }

    fn run(fx: &Fx, actions: &[FileAction], ignore: &[&str]) -> Result<()> {
        let src = Source {
            dir: fx.ctx.clone(),
            context: true,
            ignore: ignore.iter().map(|s| s.to_string()).collect(),
        };
        apply(&fx.root, &[Some(src)], actions)
    }

    fn read(fx: &Fx, p: &str) -> String {
        std::fs::read_to_string(fx.root.join(p)).unwrap_or_else(|e| format!("<{e}>"))
    }

    #[test]
    fn destination_rules() {
        let fx = fixture();
        // A file to a new name; to a directory (trailing slash); into an existing directory.
        run(&fx, &[copy("a.txt", "/x/new-name")], &[]).unwrap();
        assert_eq!(read(&fx, "x/new-name"), "a");
        run(&fx, &[copy("a.txt", "/y/")], &[]).unwrap();
        assert_eq!(read(&fx, "y/a.txt"), "a");
        run(&fx, &[copy("b.txt", "/y")], &[]).unwrap();
        assert_eq!(read(&fx, "y/b.txt"), "b");
        // A directory's contents, not the directory itself.
        run(&fx, &[copy("dir", "/d")], &[]).unwrap();
        assert_eq!(read(&fx, "d/f"), "f");
        assert_eq!(read(&fx, "d/sub/g"), "g");
        // Symlinks inside a copied tree stay symlinks (never followed out).
        assert_eq!(
            std::fs::read_link(fx.root.join("d/abs-link")).unwrap(),
            Path::new("/etc/passwd")
        );
        // Wildcards: several sources need a directory.
        run(&fx, &[copy("*.txt", "/w/")], &[]).unwrap();
        assert_eq!(read(&fx, "w/a.txt") + &read(&fx, "w/b.txt"), "ab");
        assert!(matches!(
            run(&fx, &[copy("*.nothing", "/w/")], &[]),
            Err(FileOpError::NoMatch(_))
        ));
        assert!(matches!(
            run(&fx, &[copy("missing", "/w/")], &[]),
            Err(FileOpError::NotFound(_))
        ));
    }

    #[test]
    fn context_files_are_roots_and_ignored_files_are_absent() {
        let fx = fixture();
        run(&fx, &[copy(".", "/all")], &["**/*.log"]).unwrap();
        assert!(fx.root.join("all/dir/f").exists());
        assert!(!fx.root.join("all/dir/skip.log").exists());
        let m = std::fs::metadata(fx.root.join("all/dir/f")).unwrap();
        assert_eq!((m.uid(), m.gid()), (0, 0));
        assert!(matches!(
            run(&fx, &[copy("dir/skip.log", "/z")], &["**/*.log"]),
            Err(FileOpError::NotFound(_))
        ));
    }

    #[test]
    fn chown_chmod_and_exclude() {
        let fx = fixture();
        let mut a = copy("dir", "/owned");
        if let FileAction::Copy {
            chown,
            chmod,
            exclude,
            ..
        } = &mut a
        {
            *chown = Some(Chown {
                user: "app".into(),
                group: Some("staff".into()),
            });
            *chmod = Some(Chmod::Octal(0o640));
            *exclude = vec!["sub".into()];
        }
        run(&fx, &[a], &[]).unwrap();
        let m = std::fs::metadata(fx.root.join("owned/f")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 50, 0o640));
        assert!(!fx.root.join("owned/sub").exists());
        // The created destination belongs to the chown user too.
        let d = std::fs::metadata(fx.root.join("owned")).unwrap();
        assert_eq!((d.uid(), d.gid()), (1000, 50));
        // Unknown names are an error that says so.
        let mut b = copy("a.txt", "/q");
        if let FileAction::Copy { chown, .. } = &mut b {
            *chown = Some(Chown {
                user: "nobody-here".into(),
                group: None,
            });
        }
        let e = run(&fx, &[b], &[]).unwrap_err().to_string();
        assert!(e.contains("nobody-here"), "{e}");
    }

    #[test]
    fn mkdir_mkfile_rm_and_symlinked_destinations_stay_inside() {
        let fx = fixture();
        // /link → / on the host would escape; inside the root it resolves to the root.
        std::os::unix::fs::symlink("/", fx.root.join("link")).unwrap();
        run(
            &fx,
            &[
                FileAction::Mkdir {
                    path: "/link/made/deep".into(),
                    mode: 0o755,
                    make_parents: true,
                    chown: None,
                },
                FileAction::Mkfile {
                    path: "/link/made/file".into(),
                    mode: 0o600,
                    data: "heredoc\n".into(),
                    chown: None,
                },
            ],
            &[],
        )
        .unwrap();
        assert!(fx.root.join("made/deep").is_dir());
        assert_eq!(read(&fx, "made/file"), "heredoc\n");
        run(
            &fx,
            &[FileAction::Rm {
                path: "/made/fi*".into(),
                allow_not_found: false,
                allow_wildcard: true,
            }],
            &[],
        )
        .unwrap();
        assert!(!fx.root.join("made/file").exists());
    }

    #[test]
    fn add_extracts_local_archives() {
        let fx = fixture();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, "inside/t.txt", &b"tar"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &data).unwrap();
        std::fs::write(fx.ctx.join("x.tar.gz"), gz.finish().unwrap()).unwrap();
        let mut a = copy("x.tar.gz", "/opt/");
        if let FileAction::Copy { unpack, .. } = &mut a {
            *unpack = true;
        }
        let plain = copy("a.txt", "/opt/");
        run(&fx, &[a, plain], &[]).unwrap();
        assert_eq!(read(&fx, "opt/inside/t.txt"), "tar");
        assert_eq!(read(&fx, "opt/a.txt"), "a");
    }

    #[test]
    fn symbolic_modes() {
        assert_eq!(symbolic_mode("u=rwX,go=rX", 0o600, true), Some(0o755));
        assert_eq!(symbolic_mode("u=rwX,go=rX", 0o600, false), Some(0o644));
        assert_eq!(symbolic_mode("+x", 0o644, false), Some(0o755));
        assert_eq!(symbolic_mode("a-w", 0o666, false), Some(0o444));
        assert_eq!(symbolic_mode("g+s", 0o755, true), Some(0o2755));
        assert_eq!(symbolic_mode("q+x", 0o644, false), None);
    }

    /// Every entry below `dir` in `root`: path, kind, mode, owner, size, mtime (not `dir`'s
    /// own: a copy makes it now) and content.
    fn listing(root: &Path, dir: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.join(dir)];
        while let Some(p) = stack.pop() {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let content = if m.is_file() {
                String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned()
            } else if m.file_type().is_symlink() {
                std::fs::read_link(&p).unwrap().display().to_string()
            } else {
                for e in std::fs::read_dir(&p).unwrap() {
                    stack.push(e.unwrap().path());
                }
                String::new()
            };
            let time = if rel == dir {
                0
            } else {
                m.mtime() * 1_000_000_000 + m.mtime_nsec()
            };
            out.push(format!(
                "{rel} {:o} {}:{} {} {time} {content:?}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.len()
            ));
        }
        out.sort();
        out
    }

    /// A new root `name` with the fixture's /etc files.
    fn new_root(fx: &Fx, name: &str) -> PathBuf {
        let r = fx._d.path().join(name);
        std::fs::create_dir_all(r.join("etc")).unwrap();
        for f in ["etc/passwd", "etc/group"] {
            std::fs::copy(fx.root.join(f), r.join(f)).unwrap();
        }
        r
    }

    fn context(fx: &Fx) -> Source {
        Source {
            dir: fx.ctx.clone(),
            context: true,
            ignore: vec![],
        }
    }

    /// The previous result: the context copied to /app/ in the fixture's root.
    fn previous(fx: &Fx) -> [FileAction; 1] {
        let action = [copy(".", "/app/")];
        apply(&fx.root, &[Some(context(fx))], &action).unwrap();
        action
    }

    /// `actions` from `src` applied to a new root `name`, leaving out what `reuse` (made for
    /// that root's directory) will link.
    fn reusing(
        fx: &Fx,
        name: &str,
        src: &Source,
        actions: &[FileAction],
        reuse: impl FnOnce(PathBuf) -> Reuse,
    ) -> (PathBuf, Reuse) {
        let root = new_root(fx, name);
        let mut r = reuse(root.clone());
        apply_reusing(&root, &[Some(src.clone())], actions, Some(&mut r)).unwrap();
        (root, r)
    }

    /// The listing of `dir` after a plain copy into a new root.
    fn plain(fx: &Fx, src: &Source, actions: &[FileAction], dir: &str) -> Vec<String> {
        let root = new_root(fx, "plain");
        apply(&root, &[Some(src.clone())], actions).unwrap();
        listing(&root, dir)
    }

    fn ino(p: &Path) -> u64 {
        std::fs::metadata(p).unwrap().ino()
    }

    #[test]
    fn unchanged_files_are_linked_from_the_previous_result() {
        let fx = fixture();
        let action = previous(&fx);
        // b.txt: other bytes, same size and time (only reading tells); dir/f: another size.
        let b = fx.ctx.join("b.txt");
        let before = std::fs::metadata(&b).unwrap();
        std::fs::write(&b, "B").unwrap();
        copy_times(&before, &b).unwrap();
        std::fs::write(fx.ctx.join("dir/f"), "ff").unwrap();

        let prev = |root| Reuse::previous(fx.root.clone(), root, None);
        let (root, r) = reusing(&fx, "again", &context(&fx), &action, prev);
        // a.txt, b.txt, dir/sub/g and dir/skip.log wait; nothing is created for them yet.
        assert_eq!(r.pending(), 4);
        assert!(!root.join("app/a.txt").exists());
        // b.txt's bytes differ: copied.
        let stats = r.link().unwrap();
        assert_eq!(
            stats,
            LinkStats {
                linked: 3,
                copied: 1
            }
        );
        for (f, shared) in [("a.txt", true), ("dir/sub/g", true), ("b.txt", false)] {
            let p = format!("app/{f}");
            assert_eq!(ino(&root.join(&p)) == ino(&fx.root.join(&p)), shared, "{f}");
        }
        // Exactly what a plain copy makes, directory times included.
        assert_eq!(
            listing(&root, "app"),
            plain(&fx, &context(&fx), &action, "app")
        );
        assert!(listing(&root, "app").iter().any(|l| l.contains("\"B\"")));

        // A wildcard copy may write a path twice: no links.
        let (_, r) = reusing(&fx, "wild", &context(&fx), &[copy("*.txt", "/app/")], prev);
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn files_newer_than_the_epoch_or_gone_are_copied() {
        let fx = fixture();
        let action = previous(&fx);
        // Commit clamps newer files' times, which would write to the shared inode.
        let clamped = |root| Reuse::previous(fx.root.clone(), root, Some(1000));
        let (_, r) = reusing(&fx, "clamped", &context(&fx), &action, clamped);
        assert_eq!(r.pending(), 0);
        // A previous file removed before the link is made: copied from the source after all.
        let prev = |root| Reuse::previous(fx.root.clone(), root, None);
        let (root, r) = reusing(&fx, "gone", &context(&fx), &action, prev);
        assert_eq!(r.pending(), 5);
        std::fs::remove_file(fx.root.join("app/a.txt")).unwrap();
        assert_eq!(
            r.link().unwrap(),
            LinkStats {
                linked: 4,
                copied: 1
            }
        );
        assert_eq!(
            listing(&root, "app"),
            plain(&fx, &context(&fx), &action, "app")
        );
    }

    #[test]
    fn copy_from_a_snapshot_links_its_own_files() {
        let fx = fixture();
        // A one-layer source: the snapshot directory itself.
        let snap = fx._d.path().join("snap");
        std::fs::create_dir_all(snap.join("out")).unwrap();
        std::fs::write(snap.join("out/data"), "data").unwrap();
        std::fs::write(snap.join("out/tagged"), "x").unwrap();
        let tagged = xattr::set(snap.join("out/tagged"), "user.t", b"1").is_ok();
        let src = Source {
            dir: snap.clone(),
            context: false,
            ignore: vec![],
        };
        let action = [copy("/out", "/copied/")];
        let layers = |root| Reuse::layers(vec![snap.clone()], root, None);
        let (root, r) = reusing(&fx, "from", &src, &action, layers);
        // A file with extended attributes is copied.
        let linkable = if tagged { 1 } else { 2 };
        assert_eq!(r.pending(), linkable);
        assert_eq!(r.link().unwrap().linked, linkable);
        assert_eq!(ino(&root.join("copied/data")), ino(&snap.join("out/data")));
        assert_eq!(
            listing(&root, "copied"),
            plain(&fx, &src, &action, "copied")
        );
        // --chmod changes the mode: a copy.
        let mut chmod = copy("/out", "/chmodded/");
        if let FileAction::Copy { chmod: c, .. } = &mut chmod {
            *c = Some(Chmod::Octal(0o600));
        }
        let (_, r) = reusing(&fx, "chmodded", &src, &[chmod], layers);
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn one_previous_inode_is_never_linked_twice() {
        let fx = fixture();
        let action = previous(&fx);
        // The previous result has a2.txt as a hard link to a.txt; the context now has two
        // separate files with the same bytes, mode and time.
        std::fs::hard_link(fx.root.join("app/a.txt"), fx.root.join("app/a2.txt")).unwrap();
        let a = std::fs::metadata(fx.ctx.join("a.txt")).unwrap();
        std::fs::write(fx.ctx.join("a2.txt"), "a").unwrap();
        copy_times(&a, &fx.ctx.join("a2.txt")).unwrap();
        let prev = |root| Reuse::previous(fx.root.clone(), root, None);
        let (root, r) = reusing(&fx, "again", &context(&fx), &action, prev);
        r.link().unwrap();
        assert_ne!(ino(&root.join("app/a.txt")), ino(&root.join("app/a2.txt")));
        assert_eq!(
            std::fs::read_to_string(root.join("app/a2.txt")).unwrap(),
            "a"
        );
    }

    #[test]
    fn links_never_follow_a_symlink_out_of_the_previous_result() {
        let fx = fixture();
        let action = previous(&fx);
        // The previous result's app/dir/sub is now a symlink to a directory outside it that
        // holds a file just like the one the copy will make.
        let outside = fx._d.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let g = fx.root.join("app/dir/sub/g");
        std::fs::copy(&g, outside.join("g")).unwrap();
        copy_times(&std::fs::metadata(&g).unwrap(), &outside.join("g")).unwrap();
        std::fs::remove_dir_all(fx.root.join("app/dir/sub")).unwrap();
        std::os::unix::fs::symlink(&outside, fx.root.join("app/dir/sub")).unwrap();
        let prev = |root| Reuse::previous(fx.root.clone(), root, None);
        let (root, r) = reusing(&fx, "again", &context(&fx), &action, prev);
        r.link().unwrap();
        assert_ne!(ino(&root.join("app/dir/sub/g")), ino(&outside.join("g")));
        assert_eq!(
            ino(&root.join("app/a.txt")),
            ino(&fx.root.join("app/a.txt"))
        );
    }
}
