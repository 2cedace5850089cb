//! Why a step missed the cache: each step's key inputs are recorded (instruction, stage,
//! platform, parents' keys, base image, the variables it sees, the context files it selects,
//! what ADD fetched), and a step that runs is compared with the same step's last record in
//! the same build scope (Dockerfile, context, target, platform). The first difference is the
//! step's own cause; a step whose own inputs are unchanged but whose parent missed follows
//! it (`upstream`), so one changed file is named once, not once per step after it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most context entries a step's record lists file by file; a larger selection keeps its
/// digest only (a miss then says how many files it selects, not which changed).
pub const MAX_LISTED_FILES: usize = 100_000;

/// What a step's cache key was made of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInputs {
    /// The step as progress names it (`[build 3/6] RUN make`).
    pub step: String,
    /// The instruction as written (`RUN make`).
    pub instruction: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub stage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The parents' keys, in order.
    pub parents: Vec<String>,
    /// A base image step: its reference and image ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<(String, String)>,
    /// Build arguments the step sees (names and values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// Environment variables the step sees that are not build arguments.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Context files the step reads: path → checksum (at most [`MAX_LISTED_FILES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextInputs>,
    /// RUN mounts whose source is another stage or an image (`from=`): target → the key of
    /// what they show (a secret mount never: it contributes its id only, in the definition).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mounts: BTreeMap<String, String>,
    /// ADD of a URL: its checksum; of Git: the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched: Option<(String, String)>,
    /// `--no-cache` or `--no-cache-filter` made the step run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_cache: bool,
}

/// The context files a step selects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextInputs {
    /// The digest of the whole selection.
    pub digest: String,
    pub count: usize,
    /// path → checksum, when the selection has at most [`MAX_LISTED_FILES`] entries (filled
    /// in only for the records compared or written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<BTreeMap<String, String>>,
    /// The selection, as positions in the context's checksummed entries.
    #[serde(skip)]
    pub selected: Vec<usize>,
}

/// Why a step ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Miss {
    /// `[build 3/6] RUN make`.
    pub step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// `context`, `arg`, `env`, `base`, `instruction`, `platform`, `upstream`, `no-cache`,
    /// `new`, `evicted`, `mount-source`, `url` or `git`.
    pub kind: &'static str,
    /// The sentence shown to the user.
    pub reason: String,
    /// The kind's data (paths, name/old/new, digests, the step followed).
    #[serde(flatten)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl Miss {
    fn new(now: &StepInputs, kind: &'static str, reason: String) -> Miss {
        Miss {
            step: now.step.clone(),
            line: now.line,
            kind,
            reason: printable(reason),
            data: serde_json::Map::new(),
        }
    }

    fn with(mut self, k: &str, v: serde_json::Value) -> Miss {
        self.data.insert(k.to_string(), v);
        self
    }

    /// Says the miss in other words (made printable as every reason is).
    pub fn set_reason(&mut self, reason: String) {
        self.reason = printable(reason);
    }

    /// Whether the step follows another's miss rather than having a cause of its own.
    pub fn is_upstream(&self) -> bool {
        self.kind == "upstream"
    }
}

/// How many names a sentence lists before "…".
const LISTED: usize = 3;

fn short(d: &str) -> String {
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    format!("sha256:{}…", hex.chars().take(4).collect::<String>())
}

/// A reason as it is shown: what a record or an imported cache says (instruction text,
/// variable values) may hold control characters, which never reach the terminal.
fn printable(s: String) -> String {
    if !s.chars().any(char::is_control) {
        return s;
    }
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Why the step with inputs `now` missed, given the same step's last record (`before`) and
/// the name of a parent step that missed in this build, if one did.
pub fn explain(before: Option<&StepInputs>, now: &StepInputs, missed_parent: Option<&str>) -> Miss {
    if now.no_cache {
        return Miss::new(now, "no-cache", "--no-cache".into()).with("flag", "--no-cache".into());
    }
    let Some(b) = before else {
        return Miss::new(
            now,
            "new",
            "no earlier build of this step in this state root".into(),
        );
    };
    if b.instruction != now.instruction {
        return Miss::new(
            now,
            "instruction",
            format!(
                "instruction changed: {} → {}",
                b.instruction, now.instruction
            ),
        )
        .with("old", b.instruction.clone().into())
        .with("new", now.instruction.clone().into());
    }
    if b.platform != now.platform {
        let p = |x: &Option<String>| x.clone().unwrap_or_else(|| "none".into());
        return Miss::new(
            now,
            "platform",
            format!(
                "platform changed: {} → {}",
                p(&b.platform),
                p(&now.platform)
            ),
        );
    }
    // A step after one that missed runs anyway: it follows that one, whatever else changed.
    if let Some(p) = missed_parent {
        return Miss::new(now, "upstream", format!("follows {p}")).with("follows", p.into());
    }
    if let (Some((r, old)), Some((_, new))) = (&b.base, &now.base)
        && old != new
    {
        return Miss::new(
            now,
            "base",
            format!("base {r} changed ({} → {})", short(old), short(new)),
        )
        .with("reference", r.clone().into())
        .with("old", old.clone().into())
        .with("new", new.clone().into());
    }
    if let Some((target, new)) = now
        .mounts
        .iter()
        .find(|(t, k)| b.mounts.get(*t).is_some_and(|old| old != *k))
    {
        let old = b.mounts.get(target).cloned().unwrap_or_default();
        return Miss::new(
            now,
            "mount-source",
            format!(
                "the source of mount {target} changed ({} → {})",
                short(&old),
                short(new)
            ),
        )
        .with("mount", target.clone().into())
        .with("old", old.into())
        .with("new", new.clone().into());
    }
    if let Some(m) = changed_var(now, "arg", "ARG", &b.args, &now.args) {
        return m;
    }
    if let Some(m) = changed_var(now, "env", "ENV", &b.env, &now.env) {
        return m;
    }
    if let (Some(old), Some(new)) = (&b.context, &now.context)
        && old.digest != new.digest
    {
        return context_miss(now, old, new);
    }
    if b.fetched != now.fetched
        && let Some((kind, new)) = &now.fetched
    {
        let old = b.fetched.as_ref().map(|f| f.1.clone()).unwrap_or_default();
        let what = if kind == "git" {
            "Git commit"
        } else {
            "URL content"
        };
        return Miss::new(
            now,
            if kind == "git" { "git" } else { "url" },
            format!("{what} changed: {} → {}", short(&old), short(new)),
        )
        .with("old", old.into())
        .with("new", new.clone().into());
    }
    if b.parents != now.parents {
        return Miss::new(now, "upstream", "an earlier step's result changed".into());
    }
    Miss::new(
        now,
        "evicted",
        "its result was built before but is no longer in the cache (pruned)".into(),
    )
}

/// A changed, added or removed variable, as `ARG VERSION changed: 1.2 → 1.3`.
fn changed_var(
    now: &StepInputs,
    kind: &'static str,
    word: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Option<Miss> {
    let names: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let name = names.into_iter().find(|k| old.get(*k) != new.get(*k))?;
    let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(unset)".into());
    let (o, n) = (show(old.get(name)), show(new.get(name)));
    Some(
        Miss::new(now, kind, format!("{word} {name} changed: {o} → {n}"))
            .with("name", name.clone().into())
            .with("old", o.into())
            .with("new", n.into()),
    )
}

/// Which context files changed, were added or removed.
fn context_miss(now: &StepInputs, old: &ContextInputs, new: &ContextInputs) -> Miss {
    let (Some(o), Some(n)) = (&old.files, &new.files) else {
        return Miss::new(
            now,
            "context",
            format!(
                "context files changed ({} files selected, too many to compare one by one)",
                new.count
            ),
        );
    };
    let changed: Vec<&String> = n
        .iter()
        .filter(|(p, d)| o.get(*p).is_some_and(|od| od != *d))
        .map(|(p, _)| p)
        .collect();
    let added: Vec<&String> = n.keys().filter(|p| !o.contains_key(*p)).collect();
    let removed: Vec<&String> = o.keys().filter(|p| !n.contains_key(*p)).collect();
    let mut parts = Vec::new();
    for (list, verb) in [
        (&changed, "changed"),
        (&added, "added"),
        (&removed, "removed"),
    ] {
        match list.len() {
            0 => {}
            1 => parts.push(format!("context file {} {verb}", list[0])),
            k => {
                let shown: Vec<&str> = list.iter().take(LISTED).map(|s| s.as_str()).collect();
                let more = if k > LISTED { ", …" } else { "" };
                parts.push(format!(
                    "{k} context files {verb} ({}{more})",
                    shown.join(", ")
                ));
            }
        }
    }
    let reason = if parts.is_empty() {
        "context files changed".to_string()
    } else {
        parts.join("; ")
    };
    let few = |v: &Vec<&String>| -> serde_json::Value {
        v.iter()
            .take(50)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into()
    };
    Miss::new(now, "context", reason).with(
        "paths",
        serde_json::json!({ "changed": few(&changed), "added": few(&added), "removed": few(&removed) }),
    )
}

/// The summary of a build's misses: the root causes, each once, with how many steps followed.
pub fn summary(misses: &[Miss]) -> Option<String> {
    let roots: Vec<&Miss> = misses.iter().filter(|m| !m.is_upstream()).collect();
    if roots.is_empty() {
        return None;
    }
    let followers = misses.len() - roots.len();
    // The same cause for several steps (a first build: `new` for each) is said once.
    let mut causes: Vec<(String, usize)> = Vec::new();
    for m in &roots {
        match causes.iter_mut().find(|(r, _)| *r == m.reason) {
            Some((_, n)) => *n += 1,
            None => causes.push((m.reason.clone(), 1)),
        }
    }
    let mut s: Vec<String> = causes
        .iter()
        .take(3)
        .map(|(r, n)| {
            if *n > 1 {
                format!("{r} ({n} steps)")
            } else {
                r.clone()
            }
        })
        .collect();
    if causes.len() > 3 {
        s.push(format!("and {} more", causes.len() - 3));
    }
    let mut line = format!("cache misses: {}", s.join("; "));
    if followers > 0 {
        line.push_str(&format!(
            " ({followers} step{} after {})",
            if followers == 1 { "" } else { "s" },
            if roots.len() == 1 { "it" } else { "them" }
        ));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(instruction: &str) -> StepInputs {
        StepInputs {
            step: format!("[build 2/3] {instruction}"),
            instruction: instruction.into(),
            line: Some(2),
            stage: "build".into(),
            ..StepInputs::default()
        }
    }

    #[test]
    fn each_kind_is_named_with_its_data() {
        let a = step("RUN make");
        assert_eq!(explain(None, &a, None).kind, "new");
        let mut b = a.clone();
        b.instruction = "RUN make all".into();
        let m = explain(Some(&a), &b, None);
        assert_eq!(
            (m.kind, m.reason.as_str()),
            (
                "instruction",
                "instruction changed: RUN make → RUN make all"
            )
        );
        let mut b = a.clone();
        let mut old = a.clone();
        old.args.insert("VERSION".into(), "1.2".into());
        b.args.insert("VERSION".into(), "1.3".into());
        let m = explain(Some(&old), &b, None);
        assert_eq!(m.reason, "ARG VERSION changed: 1.2 → 1.3");
        assert_eq!(m.data["name"], "VERSION");
        let mut e = a.clone();
        e.env.insert("MODE".into(), "prod".into());
        assert_eq!(
            explain(Some(&a), &e, None).reason,
            "ENV MODE changed: (unset) → prod"
        );
        let (mut x, mut y) = (a.clone(), a.clone());
        x.base = Some(("debian:bookworm-slim".into(), "sha256:1a2b3c".into()));
        y.base = Some(("debian:bookworm-slim".into(), "sha256:9f8e7d".into()));
        assert_eq!(
            explain(Some(&x), &y, None).reason,
            "base debian:bookworm-slim changed (sha256:1a2b… → sha256:9f8e…)"
        );
        let mut nc = a.clone();
        nc.no_cache = true;
        assert_eq!(explain(Some(&a), &nc, None).kind, "no-cache");
    }

    #[test]
    fn context_changes_name_the_files() {
        let files = |v: &[(&str, &str)]| ContextInputs {
            digest: format!("{v:?}"),
            count: v.len(),
            files: Some(
                v.iter()
                    .map(|(p, d)| (p.to_string(), d.to_string()))
                    .collect(),
            ),
            selected: vec![],
        };
        let mut a = step("COPY . .");
        a.context = Some(files(&[("src/main.c", "1"), ("src/x.h", "2")]));
        let mut b = a.clone();
        b.context = Some(files(&[("src/main.c", "9"), ("src/x.h", "2")]));
        let m = explain(Some(&a), &b, None);
        assert_eq!(
            (m.kind, m.reason.as_str()),
            ("context", "context file src/main.c changed")
        );
        assert_eq!(m.data["paths"]["changed"][0], "src/main.c");
        let mut c = a.clone();
        c.context = Some(files(&[
            ("src/a.c", "1"),
            ("src/b.c", "1"),
            ("src/c.c", "1"),
            ("src/d.c", "1"),
            ("src/main.c", "1"),
            ("src/x.h", "2"),
        ]));
        assert_eq!(
            explain(Some(&a), &c, None).reason,
            "4 context files added (src/a.c, src/b.c, src/c.c, …)"
        );
    }

    #[test]
    fn what_records_say_is_shown_safely() {
        // Digests and values from an imported cache are any text: never sliced mid-character,
        // never a control character on the terminal.
        assert_eq!(short("sha256:ééééé"), "sha256:éééé…");
        let mut a = step("RUN make");
        a.instruction = "RUN \u{1b}[2Jclear".into();
        let m = explain(Some(&a), &step("RUN make"), None);
        assert_eq!(m.reason, "instruction changed: RUN ?[2Jclear → RUN make");
    }

    #[test]
    fn a_cascade_has_one_root_cause() {
        let a = step("RUN make");
        let m = explain(Some(&a), &a, Some("[build 2/6] COPY . ."));
        assert!(m.is_upstream());
        assert_eq!(m.reason, "follows [build 2/6] COPY . .");
        let root = Miss::new(&a, "context", "context file src/main.c changed".into());
        let s = summary(&[root, m.clone(), m]).unwrap();
        assert_eq!(
            s,
            "cache misses: context file src/main.c changed (2 steps after it)"
        );
    }
}
