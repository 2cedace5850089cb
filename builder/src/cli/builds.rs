//! `strata builds`: the record of every build (when, what, how long, which steps ran and
//! why, what failed), as `docker buildx history` keeps them; the newest `[history] keep`
//! (100 by default) are kept.

use super::args::{BuildsArgs, BuildsCommand, ListFormat};
use super::config::Global;
use super::images::open_store;
use crate::build::progress::StepSummary;
use crate::timefmt::{ago, rfc3339};
use anyhow::{Result, bail};
use std::collections::HashMap;
use std::io::Write;
use strata_cache::metadata::BuildRecord;

/// What the command line knows of a build, for its record.
pub struct BuildFacts<'a> {
    pub context: String,
    pub dockerfile: String,
    pub target: String,
    pub platforms: String,
    /// Unix milliseconds.
    pub started: i64,
    pub image: Option<String>,
    pub executed: usize,
    pub cached: usize,
    pub failed: bool,
    pub steps: &'a [StepSummary],
}

/// Milliseconds since the epoch, now (a build's start).
pub fn started() -> i64 {
    crate::timefmt::now_millis()
}

/// The longest chain of steps by time (each step after the one it waited for longest).
pub fn critical_path(steps: &[StepSummary]) -> Vec<String> {
    let by_id: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    // Steps are shown after their inputs: one pass in display order is enough.
    let mut best: Vec<(f64, Option<usize>)> = Vec::with_capacity(steps.len());
    for s in steps {
        let prev = s
            .inputs
            .iter()
            .filter_map(|i| by_id.get(i.as_str()).copied())
            .filter(|&i| i < best.len())
            .max_by(|a, b| best[*a].0.total_cmp(&best[*b].0));
        let base = prev.map(|p| best[p].0).unwrap_or(0.0);
        best.push((base + s.seconds.unwrap_or(0.0), prev));
    }
    let Some(mut at) = (0..best.len()).max_by(|a, b| best[*a].0.total_cmp(&best[*b].0)) else {
        return vec![];
    };
    let mut path = vec![steps[at].name.clone()];
    while let Some(p) = best[at].1 {
        path.push(steps[p].name.clone());
        at = p;
    }
    path.reverse();
    path
}

/// Records a finished build (a failed one too) in `store`, or (`None`) in a store opened
/// for it; a record that cannot be written is a warning.
pub fn record(
    g: &Global,
    store: Option<&mut strata_cache::images::ImageStore>,
    f: &BuildFacts<'_>,
) {
    let finished = crate::timefmt::now_millis();
    let detail = serde_json::json!({
        "steps": f.steps,
        "critical_path": critical_path(f.steps),
    });
    let rec = BuildRecord {
        id: strata_executor::random_id()[..20].to_string(),
        started: f.started,
        finished,
        status: if f.failed { "failed" } else { "completed" }.into(),
        context: f.context.clone(),
        dockerfile: f.dockerfile.clone(),
        target: f.target.clone(),
        platforms: f.platforms.clone(),
        executed: f.executed as u64,
        cached: f.cached as u64,
        image: f.image.clone(),
        detail: detail.to_string(),
    };
    let keep = g.config.history.keep;
    let res = match store {
        Some(s) => s.meta.put_build(&rec, keep).map_err(anyhow::Error::from),
        None => open_store(g)
            .and_then(|mut s| s.meta.put_build(&rec, keep).map_err(anyhow::Error::from)),
    };
    if let Err(e) = res {
        tracing::warn!("recording the build: {e:#}");
    }
}

pub fn run(g: &Global, a: &BuildsArgs) -> Result<i32> {
    let mut store = open_store(g)?;
    let mut out = std::io::stdout().lock();
    match &a.command {
        BuildsCommand::Ls { format } => {
            let builds = store.meta.builds()?;
            match format {
                ListFormat::Json => {
                    for b in &builds {
                        writeln!(out, "{}", summary_json(b))?;
                    }
                }
                ListFormat::Table => {
                    let now = crate::timefmt::now();
                    writeln!(
                        out,
                        "{:<20}  {:<10}  {:<14}  {:>9}  {:>5}  {:>6}  {:<12}  CONTEXT",
                        "BUILD ID", "STATUS", "CREATED", "DURATION", "RUN", "CACHED", "PLATFORMS"
                    )?;
                    for b in &builds {
                        writeln!(
                            out,
                            "{:<20}  {:<10}  {:<14}  {:>8.1}s  {:>5}  {:>6}  {:<12}  {} ({}{})",
                            b.id,
                            b.status,
                            ago(b.started / 1000, now),
                            (b.finished - b.started) as f64 / 1000.0,
                            b.executed,
                            b.cached,
                            b.platforms,
                            b.context,
                            b.dockerfile,
                            if b.target.is_empty() {
                                String::new()
                            } else {
                                format!(", target {}", b.target)
                            }
                        )?;
                    }
                }
            }
        }
        BuildsCommand::Inspect { id, format } => {
            let b = one(&store, id)?;
            let detail: serde_json::Value =
                serde_json::from_str(&b.detail).unwrap_or(serde_json::Value::Null);
            match format {
                ListFormat::Json => {
                    let mut j = summary_json(&b);
                    j["steps"] = detail["steps"].clone();
                    j["critical_path"] = detail["critical_path"].clone();
                    writeln!(out, "{}", serde_json::to_string_pretty(&j)?)?;
                }
                ListFormat::Table => inspect_table(&mut out, &b, &detail)?,
            }
        }
        BuildsCommand::Rm { ids, all } => {
            let targets: Vec<String> = if *all {
                store.meta.builds()?.into_iter().map(|b| b.id).collect()
            } else {
                if ids.is_empty() {
                    bail!("strata builds rm: give build IDs, or --all");
                }
                ids.iter()
                    .map(|i| one(&store, i).map(|b| b.id))
                    .collect::<Result<_>>()?
            };
            for id in targets {
                if store.meta.delete_build(&id)? {
                    writeln!(out, "{id}")?;
                }
            }
        }
    }
    Ok(0)
}

/// The build `id` names (a unique prefix will do).
fn one(store: &strata_cache::images::ImageStore, id: &str) -> Result<BuildRecord> {
    let mut found = store.meta.builds_by_prefix(id)?;
    match found.len() {
        0 => bail!("no build {id}: `strata builds ls` lists them"),
        1 => Ok(found.remove(0)),
        n => bail!("{id} names {n} builds: give more of the ID"),
    }
}

fn summary_json(b: &BuildRecord) -> serde_json::Value {
    serde_json::json!({
        "id": b.id,
        "status": b.status,
        "started": rfc3339(b.started / 1000),
        "duration_ms": b.finished - b.started,
        "context": b.context,
        "dockerfile": b.dockerfile,
        "target": b.target,
        "platforms": b.platforms,
        "steps_run": b.executed,
        "steps_cached": b.cached,
        "image": b.image,
    })
}

fn inspect_table(out: &mut dyn Write, b: &BuildRecord, detail: &serde_json::Value) -> Result<()> {
    writeln!(out, "Build:       {}", b.id)?;
    writeln!(out, "Status:      {}", b.status)?;
    writeln!(out, "Started:     {}", rfc3339(b.started / 1000))?;
    writeln!(
        out,
        "Duration:    {:.1}s",
        (b.finished - b.started) as f64 / 1000.0
    )?;
    writeln!(out, "Context:     {}", b.context)?;
    writeln!(out, "Dockerfile:  {}", b.dockerfile)?;
    if !b.target.is_empty() {
        writeln!(out, "Target:      {}", b.target)?;
    }
    writeln!(out, "Platforms:   {}", b.platforms)?;
    if let Some(i) = &b.image {
        writeln!(out, "Image:       {i}")?;
    }
    writeln!(out, "Steps:       {} run, {} cached", b.executed, b.cached)?;
    writeln!(out)?;
    for s in detail["steps"].as_array().into_iter().flatten() {
        let state = if s["failed"] == true {
            "ERROR".to_string()
        } else if s["cached"] == true {
            "CACHED".to_string()
        } else {
            match s["seconds"].as_f64() {
                Some(t) => format!("{t:.1}s"),
                None => "-".to_string(),
            }
        };
        writeln!(
            out,
            "{state:>8}  {}",
            s["name"].as_str().unwrap_or_default()
        )?;
        if let Some(m) = s["miss"].as_str() {
            writeln!(out, "          cache miss: {m}")?;
        }
        for l in s["tail"].as_array().into_iter().flatten() {
            writeln!(out, "          | {}", l.as_str().unwrap_or_default())?;
        }
    }
    let path: Vec<&str> = detail["critical_path"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    if !path.is_empty() {
        writeln!(out, "\nCritical path: {}", path.join(" → "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, inputs: &[&str], secs: f64) -> StepSummary {
        StepSummary {
            id: id.into(),
            name: format!("step {id}"),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            cached: false,
            failed: false,
            seconds: Some(secs),
            miss: None,
            tail: vec![],
        }
    }

    #[test]
    fn the_critical_path_is_the_longest_chain() {
        let steps = [
            step("a", &[], 1.0),
            step("b", &["a"], 5.0),
            step("c", &["a"], 1.0),
            step("d", &["b", "c"], 1.0),
        ];
        assert_eq!(critical_path(&steps), ["step a", "step b", "step d"]);
        assert!(critical_path(&[]).is_empty());
    }
}
