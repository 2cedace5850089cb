//! Cache keys. An op's key is the digest of
//!
//! - its definition digest (the graph's: what it does, with its inputs' definitions; RUN's
//!   command, environment — build args included —, user, working directory, network, mounts);
//! - its inputs' keys (so a change anywhere upstream changes every key below it);
//! - for base images, the image's ID in the local store;
//! - for COPY/ADD from the build context, the checksums of exactly the files it selects (after
//!   `.dockerignore` and `--exclude`): contents, modes, ownership, symlink targets, never
//!   mtimes.
//!
//! Keys are computed before anything runs: nothing needs to be unpacked or executed to know
//! whether a step is cached. The context is hashed once per build, in parallel, and files whose
//! (device, inode, size, mtime, ctime) are unchanged since the last build are not read again.

use super::explain::{ContextInputs, MAX_LISTED_FILES, StepInputs};
use super::progress::Progress;
use super::resolver;
use anyhow::{Context as _, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use strata_cache::Digest;
use strata_cache::contenthash::{EntrySum, Selection, TreeSum, checksum_tree};
use strata_cache::images::ImageStore;
use strata_cache::metadata::Metadata;
use strata_executor::fileaction::select::{SourceSelection, component_matches};
use strata_frontend::dockerignore::PatternMatcher;
use strata_solver::graph::{BuildGraph, FileAction, OpId, OpKind, SourceOp};

/// The build context, hashed at most once.
pub struct Contexts {
    dir: PathBuf,
    sum: Option<TreeSum>,
}

/// What the build reads of the context, from its source ops in the graph.
struct ContextReads<'a> {
    /// Paths followed; empty: all of it.
    follow: Vec<String>,
    /// The `.dockerignore` patterns the frontend gave the context's source.
    ignore: &'a [String],
}

impl Contexts {
    pub fn new(dir: &Path) -> Contexts {
        Contexts {
            dir: dir.to_path_buf(),
            sum: None,
        }
    }

    fn sum(
        &mut self,
        reads: &ContextReads<'_>,
        meta: &mut Metadata,
        progress: &Progress,
    ) -> Result<&TreeSum> {
        if self.sum.is_none() {
            let id = "[internal] load build context";
            progress.start(id, id, &[]);
            let follow = &reads.follow;
            let ignore = PatternMatcher::new(reads.ignore).context("invalid .dockerignore")?;
            let follows: Vec<Vec<String>> =
                follow.iter().map(|f| components(f)).collect::<Vec<_>>();
            let all = follows.is_empty() || follows.iter().any(|f| f.is_empty());
            let select = |p: &str, is_dir: bool| -> Selection {
                if ignore.matches(p).unwrap_or(false) {
                    return if is_dir && ignore.exclusions() && ignore.may_match_below(p) {
                        Selection::ExcludeButDescend
                    } else {
                        Selection::Exclude
                    };
                }
                if all {
                    return Selection::Include;
                }
                follow_selection(&follows, p)
            };
            let sum = checksum_tree(&self.dir, &select, Some(meta))
                .with_context(|| format!("reading the build context {}", self.dir.display()))?;
            progress.log(
                id,
                format!(
                    "transferring context: {} entries, {} files read, the rest unchanged\n",
                    sum.entries.len(),
                    sum.files_read
                )
                .as_bytes(),
            );
            progress.done(id, None);
            self.sum = Some(sum);
        }
        Ok(self.sum.as_ref().expect("computed above"))
    }
}

fn components(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect()
}

/// A followed path's component against a name (a bad pattern follows nothing: the copy
/// reports it).
fn comp_match(pat: &str, name: &str) -> bool {
    component_matches(pat, name).unwrap_or(false)
}

/// Whether `path` is a followed path, below one, or a directory on the way to one.
fn follow_selection(follows: &[Vec<String>], path: &str) -> Selection {
    let p: Vec<&str> = path.split('/').collect();
    let mut on_the_way = false;
    for f in follows {
        let n = f.len().min(p.len());
        if !(0..n).all(|i| comp_match(&f[i], p[i])) {
            continue;
        }
        if p.len() >= f.len() {
            return Selection::Include;
        }
        on_the_way = true;
    }
    if on_the_way {
        Selection::ExcludeButDescend
    } else {
        Selection::Exclude
    }
}

/// The context entries one COPY source selects: the matched path and everything below it,
/// minus `--exclude` patterns (relative to the matched path), by the copy's own rule.
pub fn select_entries<'a>(
    entries: &'a [EntrySum],
    src: &str,
    exclude: &[String],
) -> Result<Vec<&'a EntrySum>> {
    Ok(select_indices(entries, src, exclude)?
        .into_iter()
        .map(|i| &entries[i])
        .collect())
}

/// [`select_entries`], as positions in `entries`.
fn select_indices(entries: &[EntrySum], src: &str, exclude: &[String]) -> Result<Vec<usize>> {
    let sel = SourceSelection::new(src, exclude).with_context(|| format!("COPY {src}"))?;
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if sel
            .selects(&e.path)
            .with_context(|| format!("COPY {src}: bad pattern"))?
        {
            out.push(i);
        }
    }
    Ok(out)
}

/// Fills a step record's context file list from the context's entries (done only for the
/// records that are compared or written: a list costs time in proportion to its files).
pub fn fill_files(si: &mut StepInputs, contexts: &Contexts) {
    let (Some(c), Some(sum)) = (si.context.as_mut(), contexts.sum.as_ref()) else {
        return;
    };
    if c.files.is_none() && c.selected.len() <= MAX_LISTED_FILES {
        c.files = Some(
            c.selected
                .iter()
                .filter_map(|i| sum.entries.get(*i))
                .map(|e| (e.path.clone(), e.digest.as_str().to_string()))
                .collect(),
        );
    }
}

/// The digest of the (path, checksum) list a COPY source or a bind mount selects, and that
/// list for the step's record (unless it is too long to keep).
fn selection_digest(
    entries: &[EntrySum],
    src: &str,
    exclude: &[String],
) -> Result<(String, ContextInputs)> {
    let selected = select_indices(entries, src, exclude)?;
    let mut text = String::new();
    for e in selected.iter().map(|i| &entries[*i]) {
        text.push_str(&e.path);
        text.push('\0');
        text.push_str(e.digest.as_str());
        text.push('\n');
    }
    let digest = Digest::of(text.as_bytes()).as_str().to_string();
    let record = ContextInputs {
        digest: digest.clone(),
        count: selected.len(),
        files: None,
        selected,
    };
    Ok((digest, record))
}

/// A RUN step's variables for its record: build arguments apart from ENV.
fn split_env(e: &strata_solver::graph::ExecOp, si: &mut StepInputs) {
    for kv in &e.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let to = if e.arg_names.iter().any(|a| a == k) {
            &mut si.args
        } else {
            &mut si.env
        };
        to.insert(k.to_string(), v.to_string());
    }
}

/// A RUN step's mounts of another stage or an image, for its record: the key of what each
/// shows (a secret's never).
fn mount_sources(
    graph: &BuildGraph,
    op: &strata_solver::graph::Op,
    e: &strata_solver::graph::ExecOp,
    keys: &BTreeMap<OpId, Digest>,
    si: &mut StepInputs,
) {
    for m in &e.mounts {
        if matches!(m.kind, strata_solver::graph::MountKind::Secret { .. }) {
            continue;
        }
        let shows = m.input.and_then(|i| op.inputs.get(i));
        let Some(src) =
            shows.filter(|s| !matches!(graph.op(**s).kind, OpKind::Source(SourceOp::Local { .. })))
        else {
            continue;
        };
        if let Some(k) = keys.get(src) {
            si.mounts.insert(m.target.clone(), k.as_str().to_string());
        }
    }
}

/// The instruction of a step's name (`[build 3/6] RUN make` → `RUN make`).
fn instruction_of(name: &str) -> &str {
    match name.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((_, rest)) => rest,
        None => name,
    }
}

/// Several selections of one step as one record (their files together).
fn merge_context(parts: Vec<ContextInputs>) -> Option<ContextInputs> {
    let mut it = parts.into_iter();
    let first = it.next()?;
    Some(it.fold(first, |mut acc, p| {
        acc.digest = Digest::of(format!("{}{}", acc.digest, p.digest).as_bytes())
            .as_str()
            .to_string();
        acc.count += p.count;
        acc.selected.extend(p.selected);
        acc
    }))
}

/// Keys of the `needed` ops (in topological order).
/// What keys are computed from besides the graph.
pub struct KeyEnv<'a> {
    pub store: &'a ImageStore,
    pub contexts: &'a mut Contexts,
    pub meta: &'a mut Metadata,
    pub progress: &'a Progress,
    /// SOURCE_DATE_EPOCH.
    pub epoch: Option<i64>,
    /// Digests of files fetched for ADD URL without a checksum.
    pub http: &'a BTreeMap<OpId, Digest>,
    /// Commits Git sources resolved to.
    pub git: &'a BTreeMap<OpId, String>,
    /// What each key was made of, for explaining misses (filled in).
    pub inputs: &'a mut BTreeMap<OpId, StepInputs>,
}

pub fn compute(
    graph: &BuildGraph,
    needed: &[OpId],
    env: &mut KeyEnv<'_>,
) -> Result<BTreeMap<OpId, Digest>> {
    let (store, epoch, http) = (env.store, env.epoch, env.http);
    let progress = env.progress;
    // The paths the build reads from the context; an op that follows nothing reads it all.
    let locals: Vec<(&Vec<String>, &Vec<String>)> = needed
        .iter()
        .filter_map(|id| match &graph.op(*id).kind {
            OpKind::Source(SourceOp::Local {
                follow_paths,
                exclude_patterns,
                ..
            }) => Some((follow_paths, exclude_patterns)),
            _ => None,
        })
        .collect();
    let reads = ContextReads {
        follow: if locals.iter().any(|(f, _)| f.is_empty()) {
            vec![]
        } else {
            locals.iter().flat_map(|(f, _)| f.iter().cloned()).collect()
        },
        ignore: locals.first().map(|(_, i)| i.as_slice()).unwrap_or(&[]),
    };
    let mut keys: BTreeMap<OpId, Digest> = BTreeMap::new();
    // Each step's base image (reference, ID), through its first inputs.
    let mut bases: BTreeMap<OpId, (String, String)> = BTreeMap::new();
    for id in needed {
        let op = graph.op(*id);
        let mut si = StepInputs {
            step: op.name.clone(),
            instruction: instruction_of(&op.name).to_string(),
            line: op.location.as_ref().map(|l| l.start_line),
            stage: op.stage.clone(),
            parents: op
                .inputs
                .iter()
                .filter_map(|i| keys.get(i).map(|k| k.as_str().to_string()))
                .collect(),
            base: op.inputs.first().and_then(|i| bases.get(i).cloned()),
            no_cache: op.ignore_cache,
            ..StepInputs::default()
        };
        let mut context = Vec::new();
        let mut h = serde_json::json!({
            "v": 1,
            "definition": graph.digest(*id).as_str(),
            "inputs": op.inputs.iter().map(|i| keys.get(i).map(|k| k.as_str().to_string())).collect::<Vec<_>>(),
        });
        // Layers made with SOURCE_DATE_EPOCH have their mtimes clamped: another result.
        if let (Some(e), false) = (epoch, matches!(op.kind, OpKind::Source(_))) {
            h["epoch"] = e.into();
        }
        match &op.kind {
            OpKind::Source(SourceOp::Http { checksum, .. }) => {
                // The content: as --checksum promises it, or as fetched.
                h["content"] = match (checksum, http.get(id)) {
                    (Some(c), _) => c.clone().into(),
                    (None, Some(d)) => d.as_str().into(),
                    (None, None) => serde_json::Value::Null,
                };
                if let Some(c) = h["content"].as_str() {
                    si.fetched = Some(("url".into(), c.to_string()));
                }
            }
            OpKind::Source(SourceOp::Git { .. }) => {
                h["content"] = env.git.get(id).cloned().into();
                si.fetched = env.git.get(id).map(|c| ("git".into(), c.clone()));
            }
            OpKind::Source(SourceOp::Image { reference, .. }) => {
                let img = resolver::find_image(store, op)?;
                h["image"] = img.record.id.as_str().into();
                bases.insert(*id, (reference.clone(), img.record.id.as_str().to_string()));
            }
            OpKind::Exec(e) => {
                si.platform = e.platform.as_ref().map(|p| p.to_string());
                split_env(e, &mut si);
                mount_sources(graph, op, e, &keys, &mut si);
                // A bind mount from the context reads those files: their checksums count.
                let mut content = Vec::new();
                for m in &e.mounts {
                    if !matches!(m.kind, strata_solver::graph::MountKind::Bind) {
                        continue;
                    }
                    let Some(in_id) = m.input.and_then(|i| op.inputs.get(i)) else {
                        continue;
                    };
                    if !matches!(
                        graph.op(*in_id).kind,
                        OpKind::Source(SourceOp::Local { .. })
                    ) {
                        continue;
                    }
                    let sum = env.contexts.sum(&reads, env.meta, progress)?;
                    let (d, c) = selection_digest(&sum.entries, &m.source, &[])?;
                    content.push(d);
                    context.push(c);
                }
                h["content"] = content.into();
            }
            OpKind::File { actions, .. } => {
                let mut content = Vec::new();
                for a in actions {
                    let FileAction::Copy {
                        input,
                        src,
                        exclude,
                        ..
                    } = a
                    else {
                        continue;
                    };
                    let Some(in_id) = op.inputs.get(*input) else {
                        continue;
                    };
                    if !matches!(
                        graph.op(*in_id).kind,
                        OpKind::Source(SourceOp::Local { .. })
                    ) {
                        continue;
                    }
                    let sum = env.contexts.sum(&reads, env.meta, progress)?;
                    let (d, c) = selection_digest(&sum.entries, src, exclude)?;
                    content.push(d);
                    context.push(c);
                }
                h["content"] = content.into();
            }
            _ => {}
        }
        // A step's base is its first input's (a stage built on another stage keeps it).
        if let Some(b) = op.inputs.first().and_then(|i| bases.get(i).cloned())
            && !bases.contains_key(id)
        {
            bases.insert(*id, b);
        }
        si.context = merge_context(context);
        env.inputs.insert(*id, si);
        keys.insert(*id, Digest::of(h.to_string().as_bytes()));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(p: &str) -> EntrySum {
        EntrySum {
            path: p.into(),
            digest: Digest::of(p.as_bytes()),
        }
    }

    #[test]
    fn copy_sources_select_their_entries() {
        let entries = vec![
            e("a.txt"),
            e("app"),
            e("app/main.c"),
            e("app/test"),
            e("app/test/t.c"),
            e("b.txt"),
        ];
        let paths = |v: Vec<&EntrySum>| v.iter().map(|e| e.path.clone()).collect::<Vec<_>>();
        assert_eq!(
            paths(select_entries(&entries, "/app", &[]).unwrap()),
            vec!["app", "app/main.c", "app/test", "app/test/t.c"]
        );
        assert_eq!(
            paths(select_entries(&entries, "*.txt", &[]).unwrap()),
            vec!["a.txt", "b.txt"]
        );
        assert_eq!(
            paths(select_entries(&entries, "app", &["test".into()]).unwrap()),
            vec!["app", "app/main.c"]
        );
        assert_eq!(paths(select_entries(&entries, ".", &[]).unwrap()).len(), 6);
        // A bad --exclude pattern is an error, never a key that leaves it out.
        assert!(select_entries(&entries, ".", &["[".into()]).is_err());
    }

    #[test]
    fn followed_paths() {
        let f = vec![components("app"), components("src/*.c")];
        assert_eq!(follow_selection(&f, "app"), Selection::Include);
        assert_eq!(follow_selection(&f, "app/x/y"), Selection::Include);
        assert_eq!(follow_selection(&f, "src"), Selection::ExcludeButDescend);
        assert_eq!(follow_selection(&f, "src/a.c"), Selection::Include);
        assert_eq!(follow_selection(&f, "src/a.h"), Selection::Exclude);
        assert_eq!(follow_selection(&f, "other"), Selection::Exclude);
    }
}
