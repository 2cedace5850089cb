//! `-o`/`--output` (docker buildx syntax), `strata save`, `strata load` and `strata history`.

use super::config::Global;
use super::images::{familiar, find, normalize_tag, open_store};
use crate::export::{self, Dest, Format};
use crate::timefmt::{ago, human_size, parse_rfc3339};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use strata_cache::compress::Compression;
use strata_cache::images::ImageStore;

/// One `--output`.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// The local store, tagged with `names`; pushed to their registries with `push`.
    Image {
        names: Vec<String>,
        push: bool,
    },
    Oci {
        dest: String,
        tar: bool,
    },
    Docker {
        dest: String,
    },
    Local {
        dest: String,
    },
    Tar {
        dest: String,
    },
}

/// A parsed `--output`: where, and in which format.
#[derive(Debug, Clone)]
pub struct OutputSpec {
    pub output: Output,
    pub format: Format,
}

fn bool_opt(k: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => bail!("--output {k}={v}: expected true or false"),
    }
}

/// Parses `type=oci,dest=out.tar,compression=zstd,…` (or a bare path, which means
/// `type=local,dest=PATH`, as in buildx; `-` means a tar on standard output).
pub fn parse_output(s: &str) -> Result<OutputSpec> {
    if !s.contains('=') {
        if s.trim().is_empty() {
            bail!(
                "--output {s:?}: the destination is empty; give a directory (-o DIR or type=local,dest=DIR), a file (type=tar|oci|docker,dest=FILE) or - for standard output"
            );
        }
        let output = if s == "-" {
            Output::Tar { dest: "-".into() }
        } else {
            Output::Local { dest: s.into() }
        };
        return Ok(OutputSpec {
            output,
            format: Format::default(),
        });
    }
    let mut kv: BTreeMap<String, String> = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for part in s.split(',') {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        if !seen.insert(k.trim()) {
            bail!(
                "--output {s}: {} is given more than once; give each option once",
                k.trim()
            );
        }
        if let Some(a) = k.strip_prefix("annotation.") {
            annotations.insert(a.to_string(), v.to_string());
        } else {
            kv.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let mut format = Format {
        annotations,
        ..Format::default()
    };
    if let Some(c) = kv.remove("compression") {
        format.compression = Compression::parse(&c).with_context(|| {
            format!("--output compression={c}: expected gzip, zstd or uncompressed")
        })?;
        format.level = format.compression.default_level();
    }
    if let Some(l) = kv.remove("compression-level") {
        let n: i32 = l
            .parse()
            .with_context(|| format!("--output compression-level={l}: not a number"))?;
        if !format.compression.levels().contains(&n) {
            bail!(
                "--output compression-level={n}: {} takes {:?}",
                format.compression.name(),
                format.compression.levels()
            );
        }
        format.level = n;
    }
    if let Some(f) = kv.remove("force-compression") {
        format.force = bool_opt("force-compression", &f)?;
    }
    let ty = kv.remove("type").unwrap_or_else(|| "local".into());
    if let Some(o) = kv.remove("oci-mediatypes") {
        format.oci_media_types = bool_opt("oci-mediatypes", &o)?;
    } else if ty == "docker" {
        format.oci_media_types = false;
    }
    let dest = kv.remove("dest");
    let need_dest = |d: Option<String>| -> Result<String> {
        d.filter(|d| !d.is_empty()).with_context(|| {
            format!("--output type={ty} needs dest=PATH (or dest=- for standard output)")
        })
    };
    let output = match ty.as_str() {
        "image" | "registry" => {
            let names = match kv.remove("name") {
                Some(n) => n
                    .split(',')
                    .filter(|n| !n.is_empty())
                    .map(normalize_tag)
                    .collect::<Result<_>>()?,
                None => vec![],
            };
            let push = match kv.remove("push") {
                Some(p) => bool_opt("push", &p)?,
                None => ty == "registry",
            };
            Output::Image { names, push }
        }
        "oci" => Output::Oci {
            dest: need_dest(dest)?,
            tar: match kv.remove("tar") {
                Some(t) => bool_opt("tar", &t)?,
                None => true,
            },
        },
        "docker" => Output::Docker {
            dest: need_dest(dest)?,
        },
        "local" => Output::Local {
            dest: need_dest(dest)?,
        },
        "tar" => Output::Tar {
            dest: need_dest(dest)?,
        },
        other => bail!("--output type={other}: strata knows image, oci, docker, local and tar"),
    };
    kv.remove("name");
    if let Some(k) = kv.keys().next() {
        bail!("--output {k}=…: not an option of type={ty}");
    }
    Ok(OutputSpec { output, format })
}

/// A tar destination: a file (written beside and renamed into place) or standard output.
fn tar_dest(dest: &str) -> Result<(Dest, Option<(tempfile::NamedTempFile, PathBuf)>)> {
    if dest.trim().is_empty() {
        bail!("the destination is empty: give a file, or - for standard output");
    }
    if dest == "-" {
        if std::io::stdout().is_terminal() {
            bail!("refusing to write an archive to a terminal: give dest=FILE or redirect stdout");
        }
        return Ok((Dest::Tar(Box::new(std::io::stdout())), None));
    }
    let path = PathBuf::from(dest);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file beside {dest}"))?;
    let f = tmp.reopen()?;
    Ok((
        Dest::Tar(Box::new(std::io::BufWriter::new(f))),
        Some((tmp, path)),
    ))
}

fn finish_tar(t: Option<(tempfile::NamedTempFile, PathBuf)>) -> Result<()> {
    if let Some((tmp, path)) = t {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Runs one output for a stored image. `names` are the build's `-t` names. Returns the
/// digest the output gave the image, when it has its own: the manifest or index pushed, or
/// the index an archive holds.
pub fn export(
    g: &Global,
    store: &mut ImageStore,
    image_id: &str,
    names: &[String],
    spec: &OutputSpec,
) -> Result<Option<strata_cache::Digest>> {
    if let Some(idx) = store.index(image_id)? {
        return export_index(g, store, &idx.record, names, spec);
    }
    let img = store.image(image_id)?;
    if !matches!(spec.output, Output::Image { push: false, .. }) {
        super::registry::ensure_image(g, store, &img)?;
    }
    match &spec.output {
        Output::Image { names: extra, push } => {
            for n in names.iter().chain(extra) {
                store.meta.tag(n, &img.record.id)?;
            }
            if *push {
                if names.is_empty() && extra.is_empty() {
                    bail!("pushing needs a name: give -t REGISTRY/NAME:TAG or name=…");
                }
                let mut pushed = None;
                for n in names.iter().chain(extra) {
                    pushed = Some(super::registry::push_image(
                        g,
                        store,
                        img.record.id.as_str(),
                        n,
                        &spec.format,
                        false,
                    )?);
                }
                return Ok(pushed);
            }
        }
        Output::Oci { dest, tar: true } | Output::Docker { dest } => {
            let (d, t) = tar_dest(dest)?;
            let imgs = [(img, names.to_vec())];
            if matches!(spec.output, Output::Docker { .. }) {
                export::write_docker(store, &imgs, &spec.format, d)?;
            } else {
                export::write_oci(store, &imgs, &spec.format, d)?;
            }
            finish_tar(t)?;
        }
        Output::Oci { dest, tar: false } => {
            export::write_oci(
                store,
                &[(img, names.to_vec())],
                &spec.format,
                Dest::Dir(PathBuf::from(dest)),
            )?;
        }
        Output::Local { dest } => export::write_local(store, &img, std::path::Path::new(dest))?,
        Output::Tar { dest } => rootfs_tar(g, dest, |scratch, w| {
            export::write_rootfs_tar(store, &img, scratch, w)
        })?,
    }
    Ok(None)
}

/// `type=tar`: what `write` puts in the tar (made in a scratch directory under the state
/// root), to `dest`.
fn rootfs_tar(
    g: &Global,
    dest: &str,
    write: impl FnOnce(&std::path::Path, &mut dyn Write) -> Result<()>,
) -> Result<()> {
    let (d, t) = tar_dest(dest)?;
    let Dest::Tar(mut w) = d else {
        bail!("type=tar writes a tar");
    };
    let scratch = g
        .root
        .join("containers")
        .join(format!("export-{}", strata_executor::random_id()));
    write(&scratch, &mut w)?;
    w.flush()?;
    drop(w);
    finish_tar(t)
}

/// Runs one output for a stored multi-platform image: archives hold the index and every
/// platform, directories and tars one subdirectory per platform (`linux_amd64/`), pushes send
/// each platform's manifest and then the index.
fn export_index(
    g: &Global,
    store: &mut ImageStore,
    idx: &strata_cache::metadata::IndexRecord,
    names: &[String],
    spec: &OutputSpec,
) -> Result<Option<strata_cache::Digest>> {
    let mut members = Vec::new();
    for m in &idx.members {
        let id = m.image_id.as_ref().with_context(|| {
            format!(
                "the image for {} of {} is not in the local store",
                m.platform, idx.digest
            )
        })?;
        let img = store.image(id.as_str())?;
        if !matches!(spec.output, Output::Image { push: false, .. }) {
            super::registry::ensure_image(g, store, &img)?;
        }
        members.push(img);
    }
    match &spec.output {
        Output::Image { names: extra, push } => {
            let all: Vec<String> = names.iter().chain(extra).cloned().collect();
            let mut rec = idx.clone();
            rec.tags = all.clone();
            store.meta.put_index(&rec, crate::timefmt::now())?;
            if *push {
                if all.is_empty() {
                    bail!("pushing needs a name: give -t REGISTRY/NAME:TAG or name=…");
                }
                let ids: Vec<_> = members.iter().map(|i| i.record.id.clone()).collect();
                let mut pushed = None;
                for n in &all {
                    pushed = Some(super::registry::push_index_image(
                        g,
                        store,
                        &ids,
                        n,
                        &spec.format,
                    )?);
                }
                return Ok(pushed);
            }
        }
        Output::Oci { dest, tar: true } | Output::Docker { dest } => {
            let (d, t) = tar_dest(dest)?;
            let docker = matches!(spec.output, Output::Docker { .. });
            let digest = export::write_index(store, &members, names, &spec.format, d, docker)?;
            finish_tar(t)?;
            return Ok(Some(digest));
        }
        Output::Oci { dest, tar: false } => {
            let digest = export::write_index(
                store,
                &members,
                names,
                &spec.format,
                Dest::Dir(PathBuf::from(dest)),
                false,
            )?;
            return Ok(Some(digest));
        }
        Output::Local { dest } => {
            export::write_local_platforms(store, &members, std::path::Path::new(dest))?
        }
        Output::Tar { dest } => rootfs_tar(g, dest, |scratch, w| {
            export::write_rootfs_tar_platforms(store, &members, scratch, w)
        })?,
    }
    Ok(None)
}

/// `strata save`.
pub fn save(g: &Global, a: &super::args::SaveArgs) -> Result<i32> {
    let mut store = open_store(g)?;
    let _lock = strata_cache::lock::RootLock::shared(&g.root)?;
    let platform = a
        .platform
        .as_deref()
        .map(|p| {
            strata_solver::graph::Platform::parse(p)
                .map_err(|e| anyhow::anyhow!("--platform {p:?}: {e}"))
        })
        .transpose()?;
    let mut imgs = Vec::new();
    for name in &a.images {
        let img = super::images::find_for(&store, name, platform.as_ref())?;
        super::registry::ensure_image(g, &mut store, &img)?;
        // Saved under the name given, as docker save does (all tags when given an ID).
        let names = match normalize_tag(name) {
            Ok(n) if img.record.tags.contains(&n) => vec![n],
            _ => img.record.tags.clone(),
        };
        imgs.push((img, names));
    }
    let dest = a.output.clone().unwrap_or_else(|| "-".into());
    let (d, t) = tar_dest(&dest)?;
    let mut fmt = Format::default();
    if let Some(c) = &a.compression {
        fmt.compression = Compression::parse(c)
            .with_context(|| format!("--compression {c}: expected gzip, zstd or uncompressed"))?;
        fmt.level = fmt.compression.default_level();
    }
    match a.format.as_str() {
        "docker" => {
            fmt.oci_media_types = false;
            export::write_docker(&mut store, &imgs, &fmt, d)?
        }
        "oci" => export::write_oci(&mut store, &imgs, &fmt, d)?,
        f => bail!("--format {f}: expected docker or oci"),
    }
    finish_tar(t)?;
    Ok(0)
}

/// `strata load`.
pub fn load(g: &Global, a: &super::args::LoadArgs) -> Result<i32> {
    let mut store = open_store(g)?;
    let _lock = strata_cache::lock::RootLock::shared(&g.root)?;
    let scratch = strata_executor::ContainerDir::create(
        &g.root.join("containers"),
        &format!("load-{}", strata_executor::random_id()),
    )?;
    let src = a.input.clone().unwrap_or_else(|| "-".into());
    let loaded = crate::load::load(&mut store, &src, &scratch.path().join("archive"))
        .with_context(|| format!("loading {src}"))?;
    for l in loaded {
        if l.tags.is_empty() {
            println!("Loaded image ID: {}", l.id);
        }
        for t in l.tags {
            println!("Loaded image: {}", familiar(&t));
        }
    }
    Ok(0)
}

/// `strata history`.
pub fn history(g: &Global, a: &super::args::HistoryArgs) -> Result<i32> {
    let store = open_store(g)?;
    let img = find(&store, &a.image)?;
    let now = crate::timefmt::now();
    let mut layers = img.config.rootfs.diff_ids.iter().rev();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<14} {:<24} {:<45} {:>8}   COMMENT",
        "IMAGE", "CREATED", "CREATED BY", "SIZE"
    )?;
    for (i, h) in img.config.history.iter().rev().enumerate() {
        let id = if i == 0 {
            img.record.id.hex()[..12].to_string()
        } else {
            "<missing>".into()
        };
        let created = h
            .created
            .as_deref()
            .and_then(parse_rfc3339)
            .map(|t| ago(t, now))
            .unwrap_or_default();
        let by = h.created_by.as_str();
        let by = if a.no_trunc || by.chars().count() <= 45 {
            by.to_string()
        } else {
            format!("{}…", by.chars().take(44).collect::<String>())
        };
        let size = if h.empty_layer {
            0
        } else {
            layers
                .next()
                .and_then(|d| store.meta.layer(d).ok().flatten())
                .map(|l| l.size)
                .unwrap_or(0)
        };
        writeln!(
            out,
            "{id:<14} {created:<24} {by:<45} {:>8}   {}",
            human_size(size),
            h.comment
        )?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_like_buildx() {
        let o = parse_output("type=oci,dest=out.tar,compression=zstd,compression-level=5").unwrap();
        assert_eq!(
            o.output,
            Output::Oci {
                dest: "out.tar".into(),
                tar: true
            }
        );
        assert_eq!(
            (o.format.compression, o.format.level),
            (Compression::Zstd, 5)
        );
        let d = parse_output("type=docker,dest=-").unwrap();
        assert!(!d.format.oci_media_types);
        assert_eq!(
            parse_output("./out").unwrap().output,
            Output::Local {
                dest: "./out".into()
            }
        );
        let i = parse_output("type=image,name=app:v1,annotation.x=y").unwrap();
        assert_eq!(
            i.output,
            Output::Image {
                names: vec!["docker.io/library/app:v1".into()],
                push: false
            }
        );
        assert_eq!(i.format.annotations.get("x").map(String::as_str), Some("y"));
        for bad in [
            "type=oci",
            "type=nope,dest=x",
            "type=oci,dest=x,compression=lz4",
            "type=oci,dest=x,compression=gzip,compression-level=12",
            "type=local,dest=x,bogus=1",
        ] {
            assert!(parse_output(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_destinations_are_refused() {
        let e = |s: &str| format!("{:#}", parse_output(s).unwrap_err());
        assert!(e("").contains("the destination is empty"), "{}", e(""));
        assert!(e("  ").contains("the destination is empty"));
        for ty in ["local", "tar", "oci", "docker"] {
            let msg = e(&format!("type={ty}"));
            assert!(msg.contains(&format!("type={ty} needs dest=PATH")), "{msg}");
            let msg = e(&format!("type={ty},dest="));
            assert!(msg.contains(&format!("type={ty} needs dest=PATH")), "{msg}");
        }
    }

    #[test]
    fn repeated_keys_are_refused() {
        let msg = format!(
            "{:#}",
            parse_output("type=local,dest=A,dest=B").unwrap_err()
        );
        assert!(msg.contains("dest is given more than once"), "{msg}");
        assert!(parse_output("type=oci,type=tar,dest=x").is_err());
        assert!(parse_output("type=image,annotation.a=1,annotation.a=2").is_err());
        assert!(parse_output("type=image,annotation.a=1,annotation.b=2").is_ok());
    }
}
