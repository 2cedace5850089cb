//! `strata pull`, `push`, `login`, `logout`, and the registry side of `strata build`.

use super::args::{LoginArgs, LogoutArgs, PullArgs, PushArgs};
use super::config::Global;
use super::images::{familiar, find, open_store};
use crate::registry::{self, Client, auth::Credentials, config::RegistryConfig};
use anyhow::{Context, Result, bail};
use std::io::Read;
use strata_cache::images::ImageStore;
use strata_oci::reference::Reference;
use strata_solver::Platform;

/// The registry client for this configuration.
pub fn client(g: &Global) -> Result<Client> {
    let cfg = RegistryConfig::from_table(g.config.other.get("registry"))?;
    Ok(Client::new(cfg, Credentials::load()))
}

fn parse_ref(s: &str) -> Result<Reference> {
    Reference::parse(s).with_context(|| format!("invalid image reference {s:?}"))
}

fn say(line: &str) {
    eprintln!("{line}");
}

/// Pulls `reference` into the store.
pub fn pull_image(
    g: &Global,
    store: &mut ImageStore,
    reference: &str,
    platform: &Platform,
    lazy: bool,
) -> Result<registry::Pulled> {
    let r = parse_ref(reference)?;
    let c = client(g)?;
    registry::pull(&c, store, &r, platform, lazy, &mut |l| say(l))
        .with_context(|| format!("pulling {}", familiar(&r.to_string())))
}

pub fn pull(g: &Global, a: &PullArgs) -> Result<i32> {
    let mut store = open_store(g)?;
    let _lock = strata_cache::lock::RootLock::shared(&g.root)?;
    let platform = match &a.platform {
        Some(p) => Platform::parse(p).map_err(anyhow::Error::msg)?,
        None => Platform::host(),
    };
    let p = pull_image(g, &mut store, &a.reference, &platform, false)?;
    if a.all_platforms {
        // The index the first pull recorded names the others.
        let name = super::images::normalize_tag(&a.reference)?;
        if let Some(idx) = store.index(&name)? {
            for m in &idx.record.members {
                let Ok(other) = Platform::parse(&m.platform) else {
                    continue;
                };
                if m.image_id.is_none() {
                    let q = pull_image(g, &mut store, &a.reference, &other, false)?;
                    println!("{other}: {}", q.image_id);
                }
            }
            println!("Digest: {}", idx.record.digest);
            return Ok(0);
        }
    }
    println!("Digest: {}", p.manifest_digest);
    println!("{}", p.image_id);
    Ok(0)
}

/// Fetches the layers of an image that were pulled lazily (before running, exporting or
/// pushing it).
pub fn ensure_image(
    g: &Global,
    store: &mut ImageStore,
    img: &strata_cache::images::Image,
) -> Result<()> {
    let ids = &img.config.rootfs.diff_ids;
    if ids.iter().all(|d| store.snapshot_dir(d).is_dir()) {
        return Ok(());
    }
    let c = client(g)?;
    registry::ensure_layers(&c, store, ids, &mut |l| say(l))?;
    Ok(())
}

/// Pushes a stored image to `target`, its layers compressed as `fmt` says.
pub fn push_image(
    g: &Global,
    store: &mut ImageStore,
    image: &str,
    target: &str,
    fmt: &crate::export::Format,
    keep_distributed: bool,
) -> Result<strata_cache::Digest> {
    let r = parse_ref(target)?;
    let c = client(g)?;
    registry::push(&c, store, image, &r, fmt, keep_distributed, &mut |l| say(l))
        .with_context(|| format!("pushing {}", familiar(&r.to_string())))
}

/// Pushes a multi-platform image (its members' IDs) to `target`.
pub fn push_index_image(
    g: &Global,
    store: &mut ImageStore,
    members: &[strata_cache::Digest],
    target: &str,
    fmt: &crate::export::Format,
) -> Result<strata_cache::Digest> {
    let r = parse_ref(target)?;
    let c = client(g)?;
    registry::push_index(&c, store, members, None, &r, fmt, &mut |l| say(l))
        .with_context(|| format!("pushing {}", familiar(&r.to_string())))
}

pub fn push(g: &Global, a: &PushArgs) -> Result<i32> {
    let mut store = open_store(g)?;
    let _lock = strata_cache::lock::RootLock::shared(&g.root)?;
    // A multi-platform image: every platform, then the index.
    let idx = super::images::find_index(&store, &a.image)?;
    // A multi-platform image with every platform here goes whole; a partly pulled one, or
    // an index of one image, goes as docker's classic store pushes it: this machine's image.
    let whole = |i: &strata_cache::images::StoredIndex| {
        i.record.members.len() > 1 && i.record.members.iter().all(|m| m.image_id.is_some())
    };
    if let Some(idx) = idx.filter(whole) {
        let members: Vec<_> = idx
            .record
            .members
            .iter()
            .filter_map(|m| m.image_id.clone())
            .collect();
        for m in &members {
            let img = store.image(m.as_str())?;
            ensure_image(g, &mut store, &img)?;
        }
        let target = match &a.reference {
            Some(r) => r.clone(),
            None => super::images::normalize_tag(&a.image)?,
        };
        let r = parse_ref(&target)?;
        let c = client(g)?;
        let d = registry::push_index(
            &c,
            &mut store,
            &members,
            Some((&idx.bytes, &idx.record.media_type)),
            &r,
            &Default::default(),
            &mut |l| say(l),
        )
        .with_context(|| format!("pushing {}", familiar(&r.to_string())))?;
        println!("{d}");
        return Ok(0);
    }
    let img = find(&store, &a.image)?;
    let target = match &a.reference {
        Some(r) => r.clone(),
        None => {
            let full = super::images::normalize_tag(&a.image)?;
            if !img.record.tags.contains(&full) {
                bail!(
                    "{} has no name to push to: give one (strata push IMAGE REGISTRY/NAME:TAG)",
                    a.image
                );
            }
            full
        }
    };
    let _ = push_image(
        g,
        &mut store,
        img.record.id.as_str(),
        &target,
        &Default::default(),
        true,
    )?;
    Ok(0)
}

pub fn login(a: &LoginArgs) -> Result<i32> {
    let password = match (&a.password, a.password_stdin) {
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        _ => bail!("give the password with --password or --password-stdin (one of them)"),
    };
    let host = Reference::parse(&format!("{}/x", a.server.trim_end_matches('/')))
        .map(|r| r.domain)
        .unwrap_or_else(|_| a.server.clone());
    let path = registry::auth::store_login(&host, &a.username, &password)
        .context("writing the docker config file")?;
    eprintln!("Login Succeeded (credentials stored in {})", path.display());
    Ok(0)
}

pub fn logout(a: &LogoutArgs) -> Result<i32> {
    let host = Reference::parse(&format!("{}/x", a.server.trim_end_matches('/')))
        .map(|r| r.domain)
        .unwrap_or_else(|_| a.server.clone());
    registry::auth::remove_login(&host).context("writing the docker config file")?;
    eprintln!("Removing login credentials for {host}");
    Ok(0)
}
