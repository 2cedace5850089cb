//! The build graph: what the frontend produces and the scheduler runs.
//!
//! A build is a DAG of [`Op`]s. Each op reads the filesystem results of its inputs (edges point
//! from an input to the op that uses it) and produces one filesystem result:
//!
//! - [`OpKind::Source`]: an image, the local build context, an HTTP file or a Git repository;
//! - [`OpKind::Exec`]: a process run on its first input's filesystem (RUN), with mounts;
//! - [`OpKind::File`]: copy / mkdir / mkfile / rm actions (COPY, ADD, WORKDIR, heredoc files);
//! - [`OpKind::Merge`]: layers stacked on top of each other (`COPY --link`).
//!
//! Every op has a [`Digest`] computed from its definition and its inputs' digests, so the same
//! Dockerfile and arguments give the same digests on every machine, and a change to one op
//! changes its digest and those downstream of it, never those upstream. The digest is the
//! *definition* digest; the cache key the solver computes later adds the content of what an
//! op reads (context files, mounted inputs).
//!
//! Architecture invariant: nothing in this module knows about Dockerfiles. Dockerfile
//! positions travel as opaque [`SourceLocation`]s for error messages only, and are not part of
//! any digest.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use strata_oci::{Digest, Platform};

/// Where an op came from, for messages (`Dockerfile:12`). Not part of any digest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceLocation {
    pub file: String,
    pub start_line: usize,
    pub end_line: usize,
}

/// Sources of filesystem content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceOp {
    /// An empty filesystem (`FROM scratch`).
    Scratch,
    /// A container image, by normalized reference, for one platform.
    Image {
        reference: String,
        platform: Platform,
        /// The digest the reference was resolved to, when known while lowering.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resolved_digest: Option<String>,
    },
    /// Files of a local directory (the build context, or a named local context).
    Local {
        name: String,
        /// Paths the build reads (`COPY` sources, bind-mount sources); empty means all.
        follow_paths: Vec<String>,
        /// `.dockerignore` patterns.
        exclude_patterns: Vec<String>,
    },
    /// A file fetched over HTTP(S).
    Http {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checksum: Option<String>,
        filename: String,
    },
    /// A Git repository at a ref.
    Git {
        remote: String,
        #[serde(rename = "ref")]
        reference: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subdir: Option<String>,
        keep_git_dir: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checksum: Option<String>,
    },
}

/// Network mode of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// The build's default (host on a default worker; `--network` on `strata build`).
    #[default]
    Default,
    None,
    Host,
}

/// Security mode of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityMode {
    #[default]
    Sandbox,
    /// Privileged: all capabilities. Needs the `security.insecure` entitlement.
    Insecure,
}

/// Cache mount sharing mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheSharing {
    #[default]
    Shared,
    Private,
    Locked,
}

/// What kind of mount an exec op gets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MountKind {
    /// A directory of an input (`input` of [`Mount`]), read-only unless `readonly` is false
    /// (writes are then discarded).
    Bind,
    /// A persistent cache directory, never part of a layer or a cache key.
    Cache {
        id: String,
        sharing: CacheSharing,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A fresh tmpfs.
    Tmpfs {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    /// A build secret: a file at `target` and/or an environment variable.
    Secret {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        env: Option<String>,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A forwarded SSH agent socket.
    Ssh {
        id: String,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

/// One mount of an exec op. The root filesystem is not a mount: it is the op's first input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path inside the container (for secrets with only `env`, may be empty).
    pub target: String,
    /// Index into the op's inputs of the filesystem the mount shows (bind; seed of a cache
    /// mount), or `None` for the build context default / no source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<usize>,
    /// Path inside that input.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    pub readonly: bool,
    #[serde(flatten)]
    pub kind: MountKind,
}

/// A process to run (RUN).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOp {
    pub args: Vec<String>,
    /// `KEY=VALUE` entries, in order.
    pub env: Vec<String>,
    pub cwd: String,
    /// USER as written (`name`, `uid`, `uid:gid`, …); resolved against the image when run.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    pub hostname: String,
    pub network: NetworkMode,
    pub security: SecurityMode,
    pub mounts: Vec<Mount>,
    /// The platform the process is for (its stage's): another than the machine's runs under
    /// emulation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Proxy variables given as build args but not declared: passed to the process, left out
    /// of the digest (as BuildKit leaves them out of the cache key).
    #[serde(skip)]
    pub proxy_env: Vec<String>,
    /// Which names of `env` are build arguments (ARG), not ENV: for explaining cache misses;
    /// left out of the digest (`env` has the values).
    #[serde(skip)]
    pub arg_names: Vec<String>,
}

/// Owner for file actions: names are resolved in the destination's /etc/passwd and /etc/group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chown {
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A `--chmod` value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chmod {
    Octal(u32),
    /// chmod(1) symbolic mode, e.g. `u=rwX,go=rX`.
    Symbolic(String),
}

/// One file action of a file op.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FileAction {
    Copy {
        /// Index into the op's inputs of the source filesystem.
        input: usize,
        /// Source path or wildcard pattern inside the input.
        src: String,
        /// Absolute destination path.
        dest: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chown: Option<Chown>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chmod: Option<Chmod>,
        follow_symlinks: bool,
        dir_contents_only: bool,
        allow_wildcard: bool,
        allow_empty_wildcard: bool,
        create_dest_path: bool,
        /// ADD of a local archive: extract it.
        unpack: bool,
        /// `--parents`: keep the source path below the destination.
        parents: bool,
        exclude: Vec<String>,
    },
    Mkdir {
        path: String,
        mode: u32,
        make_parents: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chown: Option<Chown>,
    },
    Mkfile {
        path: String,
        mode: u32,
        data: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chown: Option<Chown>,
    },
    Rm {
        path: String,
        allow_not_found: bool,
        allow_wildcard: bool,
    },
}

/// What an op does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpKind {
    Source(SourceOp),
    Exec(ExecOp),
    /// Actions applied in order on the op's first input (or on an empty filesystem when the op
    /// has no base input: `base` false).
    File {
        base: bool,
        actions: Vec<FileAction>,
    },
    /// Its inputs' filesystems stacked, first at the bottom.
    Merge,
}

/// An op with its inputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub kind: OpKind,
    /// Inputs, in order: for exec the root filesystem then mount sources; for file the base
    /// (when `base`) then copy sources.
    pub inputs: Vec<OpId>,
    /// Human-readable name for progress output (`[build 2/4] RUN make`).
    pub name: String,
    /// The stage the op belongs to, for `--no-cache-filter` and progress output.
    pub stage: String,
    #[serde(default)]
    pub location: Option<SourceLocation>,
    /// Run even if cached (`--no-cache`, `--no-cache-filter`).
    #[serde(default)]
    pub ignore_cache: bool,
}

/// Index of an op in a [`BuildGraph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpId(pub usize);

/// The digest-relevant part of an op: its kind and its inputs' digests.
#[derive(Serialize)]
struct DigestInput<'a> {
    kind: &'a OpKind,
    inputs: Vec<&'a Digest>,
}

/// A DAG of ops with their digests. Ops are added inputs-first, so `OpId` order is a
/// topological order. Identical ops (same definition, same inputs) are stored once.
#[derive(Clone, Debug, Default)]
pub struct BuildGraph {
    ops: Vec<Op>,
    digests: Vec<Digest>,
    by_digest: BTreeMap<Digest, OpId>,
}

impl BuildGraph {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an op whose inputs are already in the graph. An op with the same digest as one
    /// already present is not added again: its id is returned (the work runs once).
    pub fn add(&mut self, op: Op) -> Result<OpId, GraphError> {
        for i in &op.inputs {
            if i.0 >= self.ops.len() {
                return Err(GraphError::UnknownInput(i.0));
            }
        }
        let digest = self.compute_digest(&op)?;
        if let Some(existing) = self.by_digest.get(&digest) {
            return Ok(*existing);
        }
        Ok(self.push(op, digest))
    }

    fn compute_digest(&self, op: &Op) -> Result<Digest, GraphError> {
        let input = DigestInput {
            kind: &op.kind,
            inputs: op.inputs.iter().map(|i| &self.digests[i.0]).collect(),
        };
        let bytes = serde_json::to_vec(&input).map_err(|e| GraphError::Serialize(e.to_string()))?;
        Ok(Digest::of(&bytes))
    }

    pub fn op(&self, id: OpId) -> &Op {
        &self.ops[id.0]
    }

    pub fn digest(&self, id: OpId) -> &Digest {
        &self.digests[id.0]
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// All ops in topological order (inputs before users).
    pub fn ops(&self) -> impl Iterator<Item = (OpId, &Op)> {
        self.ops.iter().enumerate().map(|(i, op)| (OpId(i), op))
    }

    /// The ops that use `id` as an input.
    pub fn users(&self, id: OpId) -> Vec<OpId> {
        // Users come after their inputs: ids are a topological order.
        self.ops()
            .skip(id.0 + 1)
            .filter(|(_, op)| op.inputs.contains(&id))
            .map(|(u, _)| u)
            .collect()
    }

    /// The ops `root` depends on, itself included, in topological order.
    pub fn ancestors(&self, root: OpId) -> Vec<OpId> {
        self.reachable(root, |_| false)
    }

    /// The ops reached from `root` through inputs, in topological order. The walk does not go
    /// past an op `stop` accepts (that op is included). `stop` sees each op once, from the
    /// root down (an op before its inputs), so a caller may do work in it — find a cache hit
    /// — and the walk then goes no deeper there.
    pub fn reachable(&self, root: OpId, mut stop: impl FnMut(OpId) -> bool) -> Vec<OpId> {
        let mut seen = vec![false; self.ops.len()];
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            if std::mem::replace(&mut seen[id.0], true) || stop(id) {
                continue;
            }
            stack.extend(self.ops[id.0].inputs.iter().copied());
        }
        (0..self.ops.len()).filter(|i| seen[*i]).map(OpId).collect()
    }

    /// Adds every op of `other`, inputs first; an op equal to one already here (same digest:
    /// same definition and inputs) is stored once, so what several graphs share runs once.
    /// Returns, by `other`'s ids, the ids its ops have here.
    pub fn merge(&mut self, other: &BuildGraph) -> Vec<OpId> {
        let mut map: Vec<OpId> = Vec::with_capacity(other.len());
        for (i, op) in other.ops.iter().enumerate() {
            let digest = &other.digests[i];
            let id = match self.by_digest.get(digest) {
                Some(existing) => *existing,
                None => {
                    let mut op = op.clone();
                    op.inputs = op.inputs.iter().map(|i| map[i.0]).collect();
                    self.push(op, digest.clone())
                }
            };
            map.push(id);
        }
        map
    }

    /// Keeps only `root` and the ops it depends on. Digests are carried over, not recomputed
    /// (an op's digest depends only on its own definition and its inputs). Returns the new id
    /// of `root`.
    pub fn into_subgraph(self, root: OpId) -> (BuildGraph, OpId) {
        let keep = self.ancestors(root);
        if keep.len() == self.ops.len() {
            return (self, root);
        }
        let mut map: BTreeMap<OpId, OpId> = BTreeMap::new();
        let mut out = BuildGraph::new();
        for id in keep {
            let mut op = self.ops[id.0].clone();
            op.inputs = op
                .inputs
                .iter()
                .filter_map(|i| map.get(i).copied())
                .collect();
            let new = out.push(op, self.digests[id.0].clone());
            map.insert(id, new);
        }
        let new_root = map.get(&root).copied().unwrap_or(OpId(0));
        (out, new_root)
    }

    /// Appends an op whose digest is already known and whose inputs are present.
    fn push(&mut self, op: Op, digest: Digest) -> OpId {
        let id = OpId(self.ops.len());
        self.ops.push(op);
        self.digests.push(digest.clone());
        self.by_digest.insert(digest, id);
        id
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    #[error("op input {0} is not in the graph")]
    UnknownInput(usize),
    #[error("cannot serialize op definition: {0}")]
    Serialize(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(r: &str) -> Op {
        Op {
            kind: OpKind::Source(SourceOp::Image {
                reference: r.into(),
                platform: Platform::new("linux", "amd64", None),
                resolved_digest: None,
            }),
            inputs: vec![],
            name: r.into(),
            stage: String::new(),
            location: None,
            ignore_cache: false,
        }
    }

    fn run(input: OpId, cmd: &str) -> Op {
        Op {
            kind: OpKind::Exec(ExecOp {
                args: vec!["/bin/sh".into(), "-c".into(), cmd.into()],
                cwd: "/".into(),
                ..ExecOp::default()
            }),
            inputs: vec![input],
            name: cmd.into(),
            stage: String::new(),
            location: None,
            ignore_cache: false,
        }
    }

    #[test]
    fn identical_ops_are_stored_once() {
        let mut g = BuildGraph::new();
        let a = g.add(image("busybox")).unwrap();
        let b = g.add(image("busybox")).unwrap();
        assert_eq!(a, b);
        let r1 = g.add(run(a, "true")).unwrap();
        let r2 = g.add(run(b, "true")).unwrap();
        assert_eq!(r1, r2);
        assert_eq!(g.len(), 2);
        assert_eq!(g.users(a), vec![r1]);
    }

    #[test]
    fn a_change_moves_digests_downstream_only() {
        let mut g = BuildGraph::new();
        let a = g.add(image("busybox")).unwrap();
        let r1 = g.add(run(a, "one")).unwrap();
        let r2 = g.add(run(r1, "two")).unwrap();
        let mut h = BuildGraph::new();
        let a2 = h.add(image("busybox")).unwrap();
        let s1 = h.add(run(a2, "ONE")).unwrap();
        let s2 = h.add(run(s1, "two")).unwrap();
        assert_eq!(g.digest(a), h.digest(a2));
        assert_ne!(g.digest(r1), h.digest(s1));
        assert_ne!(g.digest(r2), h.digest(s2));
    }

    #[test]
    fn names_and_locations_are_not_in_the_digest() {
        let mut g = BuildGraph::new();
        let mut op = image("busybox");
        let a = g.add(op.clone()).unwrap();
        op.name = "other".into();
        op.location = Some(SourceLocation {
            file: "x".into(),
            start_line: 3,
            end_line: 3,
        });
        let mut h = BuildGraph::new();
        let b = h.add(op).unwrap();
        assert_eq!(g.digest(a), h.digest(b));
    }

    #[test]
    fn subgraphs_keep_digests() {
        let mut g = BuildGraph::new();
        let a = g.add(image("a")).unwrap();
        let b = g.add(image("b")).unwrap();
        let ra = g.add(run(a, "x")).unwrap();
        let _rb = g.add(run(b, "y")).unwrap();
        let want = g.digest(ra).clone();
        let (sub, root) = g.into_subgraph(ra);
        assert_eq!(sub.len(), 2);
        assert_eq!(sub.digest(root), &want);
        assert_eq!(sub.op(root).inputs, vec![OpId(0)]);
    }

    #[test]
    fn a_walk_stops_where_asked_and_sees_each_op_once() {
        let mut g = BuildGraph::new();
        let a = g.add(image("a")).unwrap();
        let r1 = g.add(run(a, "one")).unwrap();
        let r2 = g.add(run(r1, "two")).unwrap();
        let mut asked = Vec::new();
        let got = g.reachable(r2, |id| {
            asked.push(id);
            id == r1
        });
        assert_eq!(got, vec![r1, r2]);
        assert_eq!(asked, vec![r2, r1]);
        assert_eq!(g.ancestors(r2), vec![a, r1, r2]);
        assert_eq!(g.users(r1), vec![r2]);
    }

    #[test]
    fn merged_graphs_share_what_is_equal() {
        let mut one = BuildGraph::new();
        let a = one.add(image("a")).unwrap();
        let shared = one.add(run(a, "make")).unwrap();
        let mut two = BuildGraph::new();
        let a2 = two.add(image("a")).unwrap();
        let shared2 = two.add(run(a2, "make")).unwrap();
        let own = two.add(run(shared2, "only in two")).unwrap();
        let map = one.merge(&two);
        assert_eq!(map[a2.0], a);
        assert_eq!(map[shared2.0], shared);
        assert_eq!(one.len(), 3);
        assert_eq!(one.op(map[own.0]).inputs, vec![shared]);
        assert_eq!(one.digest(map[own.0]), two.digest(own));
    }

    #[test]
    fn unknown_inputs_are_rejected() {
        let mut g = BuildGraph::new();
        assert_eq!(g.add(run(OpId(3), "x")), Err(GraphError::UnknownInput(3)));
    }

    #[test]
    fn platforms_normalize() {
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//").is_err());
    }

    #[test]
    fn digest_is_stable() {
        // The digest of a fixed op must never change between versions or machines: cache
        // keys shared through registries depend on it.
        let mut g = BuildGraph::new();
        let a = g.add(image("docker.io/library/busybox:latest")).unwrap();
        assert_eq!(g.digest(a).as_str().len(), 71);
        let again = {
            let mut h = BuildGraph::new();
            let id = h.add(image("docker.io/library/busybox:latest")).unwrap();
            h.digest(id).clone()
        };
        assert_eq!(g.digest(a), &again);
    }
}
