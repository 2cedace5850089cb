//! `strata import`, `images`, `tag`, `rmi`, `inspect`: the local image store from the command
//! line, shaped like their docker counterparts.

use super::args::{ImagesArgs, ImportArgs, InspectArgs, ListFormat, RmiArgs, TagArgs};
use super::config::Global;
use crate::timefmt::{ago, human_size, parse_rfc3339, rfc3339};
use anyhow::{Context, Result, bail};
use std::io::Write;
use strata_cache::images::{ImageConfig, ImageStore, RootFs};
use strata_cache::sys::RealFs;
use strata_cache::unpack::UnpackOptions;
use strata_oci::config::History;
use strata_oci::reference::Reference;
use strata_solver::Platform;

use crate::timefmt::now;

/// Opens the store and removes what killed strata processes left in `<root>/tmp`.
pub fn open_store(g: &Global) -> Result<ImageStore> {
    let store = open_store_as_found(g)?;
    store.content.clean_leftovers();
    Ok(store)
}

/// Opens the store and leaves `<root>/tmp` as it is (`du` shows it, `prune` reports it).
fn open_store_as_found(g: &Global) -> Result<ImageStore> {
    strata_cache::root::create_root(&g.root)
        .with_context(|| format!("creating the state root {}", g.root.display()))?;
    ImageStore::open(&g.root)
        .with_context(|| format!("opening the image store in {}", g.root.display()))
}

/// The stored form of a user's image name: normalized as docker does.
pub fn normalize_tag(name: &str) -> Result<String> {
    let r = Reference::parse(name).with_context(|| format!("invalid image name {name:?}"))?;
    if r.digest.is_some() {
        bail!("{name}: a tag cannot contain a digest");
    }
    Ok(r.to_string())
}

/// The short form docker prints: `busybox:latest` for `docker.io/library/busybox:latest`.
pub fn familiar(tag: &str) -> String {
    let t = tag.strip_prefix("docker.io/").unwrap_or(tag);
    t.strip_prefix("library/").unwrap_or(t).to_string()
}

/// Looks an image up by what the user typed: a tag (short or full) or an ID prefix.
pub fn find(store: &ImageStore, name: &str) -> Result<strata_cache::images::Image> {
    if let Ok(full) = normalize_tag(name)
        && let Ok(img) = store.image(&full)
    {
        return Ok(img);
    }
    store
        .image(name)
        .map_err(|_| anyhow::anyhow!("no such image: {name}"))
}

/// The multi-platform image `name` names, as [`find`] finds images: by its full name, else
/// as given (a digest, `name:latest`).
pub fn find_index(
    store: &ImageStore,
    name: &str,
) -> Result<Option<strata_cache::images::StoredIndex>> {
    if let Ok(full) = normalize_tag(name)
        && let Some(idx) = store.index(&full)?
    {
        return Ok(Some(idx));
    }
    Ok(store.index(name)?)
}

/// [`find`] for a platform: a multi-platform image's member for it (the best ranked), or
/// the image itself.
pub fn find_for(
    store: &ImageStore,
    name: &str,
    platform: Option<&Platform>,
) -> Result<strata_cache::images::Image> {
    if let Some(p) = platform
        && let Some(idx) = find_index(store, name)?
    {
        return match store.index_member_for(&idx.record, p)? {
            strata_cache::images::ForPlatform::Image(img) => Ok(*img),
            strata_cache::images::ForPlatform::NotHere { .. } => {
                bail!(
                    "no such image: {name} for {p} (not in the local store: pull it with --platform {p})"
                )
            }
            strata_cache::images::ForPlatform::NoMatch(have) => {
                bail!("no such image: {name} for {p} (it has {})", have.join(", "))
            }
        };
    }
    find(store, name)
}

pub fn import(g: &Global, a: &ImportArgs) -> Result<i32> {
    let platforms: Vec<Platform> = match &a.platform {
        None => vec![Platform::host()],
        Some(list) => list
            .split(',')
            .map(|p| {
                Platform::parse(p.trim())
                    .map(Platform::normalized)
                    .map_err(|e| anyhow::anyhow!("--platform {p:?}: {e}: write os/arch[/variant]"))
            })
            .collect::<Result<_>>()?,
    };
    let n = platforms.len();
    if a.args.len() < n || a.args.len() > n + 1 {
        bail!(
            "strata import takes {n} tarball{} (one per --platform) and then an optional NAME; got {} arguments",
            if n == 1 { "" } else { "s" },
            a.args.len()
        );
    }
    let tag = a.args.get(n).map(|r| normalize_tag(r)).transpose()?;
    let tags: Vec<String> = tag.into_iter().collect();
    let mut store = open_store(g)?;
    let _lock = strata_cache::lock::RootLock::shared(&g.root).context("locking the state root")?;
    if n == 1 {
        let id = import_one(&mut store, &a.args[0], &platforms[0], &tags)?;
        println!("{id}");
        return Ok(0);
    }
    let mut members = Vec::new();
    for (file, p) in a.args.iter().zip(&platforms) {
        members.push((p.clone(), import_one(&mut store, file, p, &[])?));
    }
    let index = store.put_index(&members, &tags, now())?;
    println!("{index}");
    Ok(0)
}

/// One root filesystem tarball as a one-layer image for `platform`.
fn import_one(
    store: &mut strata_cache::images::ImageStore,
    file: &str,
    platform: &Platform,
    tags: &[String],
) -> Result<strata_cache::Digest> {
    let input: Box<dyn std::io::Read> = if file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("opening {file}"))?)
    };
    let layer = store
        .import_layer(input, &RealFs, &UnpackOptions::default())
        .with_context(|| format!("importing {file}"))?;
    // SOURCE_DATE_EPOCH makes imports reproducible too.
    let created = rfc3339(
        std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(now),
    );
    let config = ImageConfig {
        created: Some(created.clone()),
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        rootfs: RootFs::layers(vec![layer.diff_id.clone()]),
        history: vec![History {
            created: Some(created),
            created_by: format!("strata import {file}"),
            comment: "Imported from a root filesystem tarball".into(),
            ..Default::default()
        }],
        ..ImageConfig::default()
    };
    Ok(store.put_image(&config, tags, now())?)
}

pub fn images(g: &Global, a: &ImagesArgs) -> Result<i32> {
    let store = open_store(g)?;
    let now = now();
    let mut rows = Vec::new();
    let in_indexes = store.meta.images_in_indexes()?;
    let mut entries: Vec<(strata_cache::metadata::ImageRecord, Vec<String>)> = Vec::new();
    // A multi-platform image is one entry: its index, sized and dated by the members here.
    for idx in store.meta.indexes()? {
        let members: Vec<_> = idx
            .members
            .iter()
            .filter_map(|m| m.image_id.as_ref())
            .filter_map(|id| store.meta.resolve(id.as_str()).ok().flatten())
            .collect();
        let rec = strata_cache::metadata::ImageRecord {
            id: idx.digest.clone(),
            config_digest: idx.digest.clone(),
            manifest_digest: Some(idx.digest.clone()),
            created: members.iter().filter_map(|m| m.created.clone()).max(),
            size: members.iter().map(|m| m.size).sum(),
            layers: vec![],
            tags: idx.tags.clone(),
        };
        let platforms = idx
            .members
            .iter()
            .map(|m| {
                if m.image_id.is_some() {
                    m.platform.clone()
                } else {
                    format!("({})", m.platform)
                }
            })
            .collect();
        entries.push((rec, platforms));
    }
    for img in store.meta.images()? {
        if img.tags.is_empty() && in_indexes.contains(&img.id) {
            continue;
        }
        entries.push((img, vec![]));
    }
    let with_platforms = entries.iter().any(|(_, p)| !p.is_empty());
    for (img, platforms) in entries {
        let created = img.created.as_deref().and_then(parse_rfc3339);
        let tags: Vec<Option<String>> = if img.tags.is_empty() {
            vec![None]
        } else {
            img.tags.iter().cloned().map(Some).collect()
        };
        for t in tags {
            let (repo, tag) = match &t {
                Some(t) => {
                    let f = familiar(t);
                    match f.rfind(':').filter(|i| !f[*i..].contains('/')) {
                        Some(i) => (f[..i].to_string(), f[i + 1..].to_string()),
                        None => (f.clone(), "<none>".into()),
                    }
                }
                None => ("<none>".into(), "<none>".into()),
            };
            rows.push((repo, tag, img.clone(), created, platforms.clone()));
        }
    }
    let mut out = std::io::stdout().lock();
    match a.format {
        ListFormat::Json => {
            for (repo, tag, img, created, platforms) in &rows {
                let mut j = serde_json::json!({
                    "Repository": repo,
                    "Tag": tag,
                    "ID": img.id.to_string(),
                    "Digest": img.manifest_digest.as_ref().map(|d| d.to_string()).unwrap_or_else(|| "<none>".into()),
                    "CreatedAt": img.created,
                    "CreatedSince": created.map(|c| ago(c, now)).unwrap_or_else(|| "N/A".into()),
                    "Size": human_size(img.size),
                    "VirtualSize": img.size,
                });
                if !platforms.is_empty() {
                    j["Platforms"] = platforms.clone().into();
                }
                writeln!(out, "{j}")?;
            }
        }
        ListFormat::Table => {
            let mut table: Vec<Vec<String>> = vec![];
            let mut header = vec!["REPOSITORY", "TAG"];
            if a.digests {
                header.push("DIGEST");
            }
            header.extend(["IMAGE ID", "CREATED", "SIZE"]);
            if with_platforms {
                // Members not in the store are in parentheses.
                header.push("PLATFORMS");
            }
            table.push(header.iter().map(|s| s.to_string()).collect());
            for (repo, tag, img, created, platforms) in &rows {
                let mut r = vec![repo.clone(), tag.clone()];
                if a.digests {
                    r.push(
                        img.manifest_digest
                            .as_ref()
                            .map(|d| d.to_string())
                            .unwrap_or_else(|| "<none>".into()),
                    );
                }
                r.push(img.id.short().to_string());
                r.push(created.map(|c| ago(c, now)).unwrap_or_else(|| "N/A".into()));
                r.push(human_size(img.size));
                if with_platforms {
                    r.push(platforms.join(","));
                }
                table.push(r);
            }
            let widths: Vec<usize> = (0..table[0].len())
                .map(|i| {
                    table
                        .iter()
                        .map(|r| r[i].chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for r in table {
                let line: Vec<String> = r
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if i + 1 == widths.len() {
                            c.clone()
                        } else {
                            format!("{c:<w$}", w = widths[i])
                        }
                    })
                    .collect();
                writeln!(out, "{}", line.join("   ").trim_end())?;
            }
        }
    }
    Ok(0)
}

pub fn tag(g: &Global, a: &TagArgs) -> Result<i32> {
    let mut store = open_store(g)?;
    let img = find(&store, &a.source)?;
    let t = normalize_tag(&a.target)?;
    store.meta.tag(&t, &img.record.id)?;
    Ok(0)
}

pub fn rmi(g: &Global, a: &RmiArgs) -> Result<i32> {
    let mut store = open_store(g)?;
    let _lock = exclusive_lock(g)?;
    let mut code = 0;
    for name in &a.images {
        let key = match normalize_tag(name) {
            Ok(full) if store.image(&full).is_ok() => full,
            _ => name.clone(),
        };
        match store.remove(&key, a.force) {
            Ok(lines) => {
                for l in lines {
                    let l = match l.strip_prefix("Untagged: ") {
                        Some(t) => format!("Untagged: {}", familiar(t)),
                        None => l,
                    };
                    println!("{l}");
                }
            }
            Err(e) => {
                eprintln!("error: {name}: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub fn inspect(g: &Global, a: &InspectArgs) -> Result<i32> {
    let store = open_store(g)?;
    let mut out = Vec::new();
    let mut code = 0;
    for name in &a.images {
        if let Some(idx) = find_index(&store, name)? {
            out.push(inspect_index(&store, &idx)?);
            continue;
        }
        match find(&store, name) {
            Ok(img) => {
                out.push(image_json(&store, &img));
            }
            Err(e) => {
                eprintln!("error: {e}");
                code = 1;
            }
        }
    }
    let mut o = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut o, &out)?;
    writeln!(o)?;
    Ok(code)
}

/// What `inspect` shows of one image (docker's shape).
fn image_json(store: &ImageStore, img: &strata_cache::images::Image) -> serde_json::Value {
    let c = &img.config;
    // As docker: each repository's name with the digest of the manifest the
    // image was pulled or loaded with.
    let mut repo_digests: Vec<String> = Vec::new();
    if let Ok(Some((d, _))) = store.meta.distributed_manifest(&img.record.id) {
        for t in &img.record.tags {
            if let Ok(r) = strata_oci::Reference::parse(t) {
                let rd = format!("{}@{d}", familiar(&r.repository()));
                if !repo_digests.contains(&rd) {
                    repo_digests.push(rd);
                }
            }
        }
    }
    serde_json::json!({
        "Id": img.record.id.to_string(),
        "RepoTags": img.record.tags.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
        "RepoDigests": repo_digests,
        "Created": c.created,
        "Author": c.author.clone().unwrap_or_default(),
        "Architecture": c.architecture,
        "Variant": c.variant,
        "Os": c.os,
        "Config": c.config,
        "RootFS": {
            "Type": c.rootfs.kind,
            "Layers": c.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "History": c.history,
        "Size": img.record.size,
        "Metadata": { "ManifestDigest": img.record.manifest_digest.as_ref().map(|d| d.to_string()) },
    })
}

/// `inspect` of a multi-platform image: this machine's image as for any image, plus the
/// index (`Descriptor`) and each platform's manifest, with the image's ID, architecture and
/// size when it is here.
fn inspect_index(
    store: &ImageStore,
    idx: &strata_cache::images::StoredIndex,
) -> Result<serde_json::Value> {
    let mut manifests = Vec::new();
    for m in &idx.record.members {
        let mut j = serde_json::json!({
            "Platform": m.platform,
            "Digest": m.manifest_digest.to_string(),
            "Available": m.image_id.is_some(),
        });
        if let Some(id) = &m.image_id {
            let img = store.image(id.as_str())?;
            j["Id"] = id.to_string().into();
            j["Architecture"] = img.config.architecture.clone().into();
            j["Os"] = img.config.os.clone().into();
            if let Some(v) = &img.config.variant {
                j["Variant"] = v.clone().into();
            }
            j["Created"] = img.config.created.clone().into();
            j["Size"] = img.record.size.into();
        }
        manifests.push(j);
    }
    // As docker's containerd store shows one: this machine's image (when it is here), with
    // the index and its manifests beside.
    let mut v = match store.index_member_for(&idx.record, &Platform::host())? {
        strata_cache::images::ForPlatform::Image(img) => image_json(store, &img),
        _ => serde_json::json!({ "Id": idx.record.digest.to_string() }),
    };
    v["RepoTags"] = idx
        .record
        .tags
        .iter()
        .map(|t| familiar(t))
        .collect::<Vec<_>>()
        .into();
    v["Descriptor"] = serde_json::json!({
        "mediaType": idx.record.media_type,
        "digest": idx.record.digest.to_string(),
        "size": idx.bytes.len(),
    });
    v["Manifests"] = manifests.into();
    Ok(v)
}

/// The root lock, exclusively: waits (saying so) while builds or containers use the root.
pub fn exclusive_lock(g: &Global) -> Result<strata_cache::lock::RootLock> {
    use strata_cache::lock::RootLock;
    if let Some(l) = RootLock::try_exclusive(&g.root).context("locking the state root")? {
        return Ok(l);
    }
    eprintln!("waiting for running builds and containers to finish…");
    RootLock::exclusive(&g.root).context("locking the state root")
}

/// `500MB`, `2GB`, `1.5g`, `1024` (bytes): decimal units as docker's.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid size {s:?}: write e.g. 500MB or 2GB"))?;
    let mult: f64 = match unit.trim().trim_end_matches('b').trim_end_matches('i') {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        _ => bail!("invalid size {s:?}: write e.g. 500MB or 2GB"),
    };
    Ok((n * mult) as u64)
}

/// `90s`, `30m`, `24h`, `7d`, or Go's composite `1h30m`.
pub fn parse_duration(s: &str) -> Result<i64> {
    let mut total = 0f64;
    let mut num = String::new();
    let bad = || anyhow::anyhow!("invalid duration {s:?}: write e.g. 24h, 30m or 90s");
    for c in s.trim().chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += n * match c {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86400.0,
            _ => return Err(bad()),
        };
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(total as i64)
}

pub fn du(g: &Global) -> Result<i32> {
    let store = open_store_as_found(g)?;
    let u = strata_cache::gc::usage(&store)?;
    println!(
        "{:<15} {:>7} {:>10} {:>12}",
        "TYPE", "TOTAL", "SIZE", "RECLAIMABLE"
    );
    println!(
        "{:<15} {:>7} {:>10} {:>12}",
        "Images",
        u.images,
        human_size(u.image_bytes),
        format!("{} untagged", u.dangling_images)
    );
    println!(
        "{:<15} {:>7} {:>10} {:>12}",
        "Build cache",
        u.cache_entries,
        human_size(u.cache_only_bytes),
        human_size(u.cache_only_bytes)
    );
    println!(
        "{:<15} {:>7} {:>10} {:>12}",
        "Shared layers",
        u.shared_layers,
        human_size(u.shared_bytes),
        "-"
    );
    println!(
        "{:<15} {:>7} {:>10} {:>12}",
        "All layers",
        u.layers,
        human_size(u.layer_bytes),
        human_size(u.layer_bytes.saturating_sub(u.image_bytes))
    );
    println!(
        "{:<15} {:>7} {:>10} {:>12}",
        "Temporary",
        u.tmp.entries,
        human_size(u.tmp.bytes),
        human_size(u.tmp.unheld_bytes)
    );
    Ok(0)
}

/// `keep-storage` in bytes: a size, or a share of the filesystem `root` is on.
fn keep_bytes(spec: &str, root: &std::path::Path) -> Result<u64> {
    match spec.trim().strip_suffix('%') {
        Some(p) => {
            let share: f64 = p.trim().parse().map_err(|_| {
                anyhow::anyhow!("[gc] keep-storage {spec:?}: write e.g. 10% or 20GB")
            })?;
            let fs = rustix::fs::statvfs(root)
                .with_context(|| format!("the size of the filesystem of {}", root.display()))?;
            let total = fs.f_blocks.saturating_mul(fs.f_frsize);
            Ok((total as f64 * share / 100.0) as u64)
        }
        None => parse_size(spec),
    }
}

/// `[[gc.rule]] type = "exec.cachemount"`: RUN cache mounts over `keep-storage` go, those
/// unused for `keep-duration` first, then the least recently used (a mount's lock file is
/// made anew at each use). Looked at once an hour at most: sizing a cache mount walks it.
fn collect_cache_mounts(g: &Global, rule: &super::config::GcRule) -> Result<()> {
    let dir = g.root.join("cachemounts");
    if !dir.is_dir() {
        return Ok(());
    }
    let stamp = dir.join(".gc");
    let recent = std::fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|e| e.as_secs() < 3600));
    if recent && std::env::var_os("STRATA_GC_NOW").is_none() {
        return Ok(());
    }
    std::fs::write(&stamp, b"").with_context(|| format!("writing {}", stamp.display()))?;
    let keep = keep_bytes(&rule.keep_storage, &g.root)?;
    let idle = parse_duration(&rule.keep_duration)?;
    let now = std::time::SystemTime::now();
    let mut mounts: Vec<(i64, u64, std::path::PathBuf)> = Vec::new();
    for e in std::fs::read_dir(&dir)?.flatten() {
        let p = e.path();
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let used = std::fs::metadata(dir.join(format!("{name}.lock")))
            .or_else(|_| e.metadata())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .map_or(0, |d| d.as_secs() as i64);
        mounts.push((used, tree_size(&p), p));
    }
    let mut total: u64 = mounts.iter().map(|m| m.1).sum();
    // Idle longest first.
    mounts.sort_by_key(|m| std::cmp::Reverse(m.0));
    for pass_idle in [true, false] {
        for (used, size, p) in &mounts {
            if total <= keep {
                return Ok(());
            }
            if (pass_idle && *used < idle) || !p.exists() {
                continue;
            }
            std::fs::remove_dir_all(p).with_context(|| format!("removing {}", p.display()))?;
            total = total.saturating_sub(*size);
        }
    }
    Ok(())
}

/// The bytes of the files under `p` (not following symlinks).
fn tree_size(p: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            }
        }
    }
    total
}

/// The store's garbage collection after a build (`[gc]`): when the layers only the build
/// cache keeps are over `keep-storage`, entries unused for `keep-duration` go, then the least
/// recently used, until they fit. Skipped while another process uses the root (a build, a
/// container): nothing in use is removed. Returns what was removed.
pub fn collect_garbage(
    g: &Global,
    store: &mut ImageStore,
) -> Result<Option<strata_cache::gc::PruneReport>> {
    let gc = &g.config.gc;
    if !gc.enabled {
        return Ok(None);
    }
    let keep = keep_bytes(&gc.keep_storage, &g.root)?;
    let until = parse_duration(&gc.keep_duration)?;
    let Some(_lock) = strata_cache::lock::RootLock::try_exclusive(&g.root)? else {
        return Ok(None);
    };
    for rule in &gc.rule {
        match rule.kind {
            super::config::GcKind::CacheMount => collect_cache_mounts(g, rule)?,
        }
    }
    // Every layer together within the bound: what only the cache keeps is too.
    if store.meta.total_layer_bytes()? <= keep {
        return Ok(None);
    }
    let why = format!(
        "gc policy: keep-storage {} ({}), keep-duration {}",
        gc.keep_storage,
        human_size(keep),
        gc.keep_duration
    );
    let mut total = strata_cache::gc::PruneReport::default();
    for until_secs in [Some(until), None] {
        let r = strata_cache::gc::prune(
            store,
            &strata_cache::gc::PruneOptions {
                all: false,
                keep_storage: Some(keep),
                until_secs,
                why: why.clone(),
            },
            now(),
        )?;
        total.entries += r.entries;
        total.layers += r.layers;
        total.bytes += r.bytes;
    }
    Ok(Some(total))
}

pub fn prune(g: &Global, a: &super::args::PruneArgs) -> Result<i32> {
    let mut until = None;
    let mut only_cache_mounts = false;
    for f in &a.filter {
        match f.split_once('=') {
            Some(("until", d)) => until = Some(parse_duration(d)?),
            Some(("type", "exec.cachemount")) => only_cache_mounts = true,
            _ => bail!(
                "unsupported --filter {f:?}: strata knows until=DURATION and type=exec.cachemount"
            ),
        }
    }
    // RUN cache mounts: removed by `-a` or `--filter type=exec.cachemount` (and then only).
    if only_cache_mounts || a.all {
        let _lock = exclusive_lock(g)?;
        let dir = g.root.join("cachemounts");
        let n = std::fs::read_dir(&dir)
            .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
            .unwrap_or(0);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        println!("Removed {n} cache mounts");
        if only_cache_mounts {
            return Ok(0);
        }
    }
    let opts = strata_cache::gc::PruneOptions {
        all: a.all,
        keep_storage: a.keep_storage.as_deref().map(parse_size).transpose()?,
        until_secs: until,
        why: "strata prune".into(),
    };
    let mut store = open_store_as_found(g)?;
    let _lock = exclusive_lock(g)?;
    let r = strata_cache::gc::prune(&mut store, &opts, now())?;
    println!(
        "Removed {} build cache entries, {} untagged images, {} layers",
        r.entries, r.images, r.layers
    );
    if r.tmp.entries > 0 {
        println!(
            "Removed {} leftover temporary files ({})",
            r.tmp.entries,
            human_size(r.tmp.bytes)
        );
    }
    println!(
        "Total reclaimed space: {}",
        human_size(r.bytes + r.tmp.bytes)
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("2g").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_duration("24h").unwrap(), 86400);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration("90s").unwrap(), 90);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
