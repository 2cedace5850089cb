//! The compatibility corpus (`testdata/compat`): image configs, manifests and indexes as other
//! tools write them. Every case is made into a real image (its templates filled in with real
//! layers), then:
//! - loaded from an OCI layout (and, for a single manifest, a docker archive), its config
//!   checked against what the case says, used as a FROM base with a RUN, run, and saved;
//! - pushed as it is to a registry, used as a FROM base from there (the build pulls it), run,
//!   and pushed to another repository, which must receive the very manifest bytes;
//! - or, for a case that must be refused, refused with the message the case names, both ways.

use crate::registry::Registry;
use crate::support::*;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use strata_oci::media_type as mt;
use strata_oci::{Descriptor, Digest, Document, Index, Platform};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    tool: String,
    what: String,
    entry: String,
    expect: String,
    #[serde(default)]
    refuse: Option<String>,
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    workdir: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    layers: Option<usize>,
    #[serde(default)]
    history: Option<usize>,
}

/// The layers the templates name: 0 is the busybox root filesystem, N ≥ 1 adds `/compat/N`.
struct Layers {
    busybox: Vec<u8>,
    made: HashMap<(usize, String), Vec<u8>>,
}

impl Layers {
    fn plain(&self, n: usize) -> Vec<u8> {
        if n == 0 {
            return self.busybox.clone();
        }
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        h.set_cksum();
        b.append_data(&mut h, "compat/", std::io::empty()).unwrap();
        let data = format!("{n}\n");
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, format!("compat/{n}"), data.as_bytes())
            .unwrap();
        b.into_inner().unwrap()
    }

    fn blob(&mut self, n: usize, c: &str) -> Vec<u8> {
        if let Some(b) = self.made.get(&(n, c.to_string())) {
            return b.clone();
        }
        let plain = self.plain(n);
        let b = match c {
            "tar" => plain,
            "gzip" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&plain).unwrap();
                e.finish().unwrap()
            }
            "zstd" => zstd::encode_all(&plain[..], 3).unwrap(),
            other => panic!("unknown compression {other:?} in a layer token"),
        };
        self.made.insert((n, c.to_string()), b.clone());
        b
    }
}

/// A case made real: its documents filled in, and every blob they name.
struct Made {
    name: String,
    case: Case,
    /// File → (bytes, digest).
    docs: BTreeMap<String, (Vec<u8>, Digest)>,
    /// File → the files it references.
    refs: BTreeMap<String, Vec<String>>,
    /// Digest → bytes, every blob (documents and layers).
    blobs: BTreeMap<Digest, Vec<u8>>,
}

fn media_type_of(bytes: &[u8]) -> String {
    if let Some(m) = Document::declared_media_type(bytes) {
        return m;
    }
    let text = String::from_utf8_lossy(bytes);
    if text.contains("\"fsLayers\"") {
        mt::DOCKER_MANIFEST_V1_SIGNED.into()
    } else if text.contains("\"manifests\"") {
        mt::OCI_INDEX.into()
    } else {
        mt::OCI_MANIFEST.into()
    }
}

fn is_manifest(bytes: &[u8]) -> bool {
    matches!(
        mt::kind(&media_type_of(bytes)),
        mt::Kind::Index | mt::Kind::Manifest | mt::Kind::Schema1
    ) && serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes)
        .is_ok_and(|m| m.contains_key("schemaVersion"))
}

impl Made {
    fn new(dir: &Path, layers: &mut Layers) -> Made {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let case: Case = toml::from_str(&std::fs::read_to_string(dir.join("case.toml")).unwrap())
            .unwrap_or_else(|e| panic!("{name}/case.toml: {e}"));
        assert!(
            !case.tool.is_empty() && !case.what.is_empty(),
            "{name}: tool and what"
        );
        let mut m = Made {
            name,
            case,
            docs: BTreeMap::new(),
            refs: BTreeMap::new(),
            blobs: BTreeMap::new(),
        };
        let entry = m.case.entry.clone();
        m.doc(dir, &entry, layers, &mut Vec::new());
        m
    }

    /// Fills in one template (after the documents it names).
    fn doc(&mut self, dir: &Path, file: &str, layers: &mut Layers, visiting: &mut Vec<String>) {
        if self.docs.contains_key(file) {
            return;
        }
        assert!(
            !visiting.iter().any(|v| v == file),
            "{}: documents reference each other in a cycle through {file}",
            self.name
        );
        visiting.push(file.to_string());
        let text = std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("{}/{file}: {e}", self.name));
        let mut out = String::new();
        let mut rest = text.as_str();
        let mut refs = Vec::new();
        while let Some(i) = rest.find('@') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let j = after
                .find('@')
                .unwrap_or_else(|| panic!("{}/{file}: an unclosed @ token", self.name));
            let token = &after[..j];
            rest = &after[j + 1..];
            let parts: Vec<&str> = token.split(':').collect();
            let value = match parts.as_slice() {
                ["layer", n, "diffid"] => {
                    let n: usize = n.parse().unwrap();
                    let b = layers.plain(n);
                    Digest::of(&b).to_string()
                }
                ["layer", n, c, what @ ("digest" | "size")] => {
                    let n: usize = n.parse().unwrap();
                    let b = layers.blob(n, c);
                    let d = Digest::of(&b);
                    let len = b.len();
                    self.blobs.insert(d.clone(), b);
                    if *what == "digest" {
                        d.to_string()
                    } else {
                        len.to_string()
                    }
                }
                [what @ ("digest" | "size"), other] => {
                    self.doc(dir, other, layers, visiting);
                    refs.push(other.to_string());
                    let (b, d) = &self.docs[*other];
                    if *what == "digest" {
                        d.to_string()
                    } else {
                        b.len().to_string()
                    }
                }
                _ => panic!("{}/{file}: unknown token @{token}@", self.name),
            };
            out.push_str(&value);
        }
        out.push_str(rest);
        let bytes = out.into_bytes();
        let d = Digest::of(&bytes);
        self.blobs.insert(d.clone(), bytes.clone());
        self.docs.insert(file.to_string(), (bytes, d));
        refs.dedup();
        self.refs.insert(file.to_string(), refs);
        visiting.pop();
    }

    fn entry(&self) -> &(Vec<u8>, Digest) {
        &self.docs[&self.case.entry]
    }

    /// The image manifest a linux/amd64 machine gets from the entry (through indexes).
    fn chosen_manifest(&self) -> Vec<u8> {
        let mut bytes = self.entry().0.clone();
        for _ in 0..8 {
            match Document::parse(&bytes, Some(&media_type_of(&bytes))).unwrap() {
                Document::Manifest(_) => return bytes,
                Document::Index(i) => {
                    let pick = i.select(&Platform::parse("linux/amd64").unwrap()).unwrap();
                    bytes = self.blobs[&pick.digest].clone();
                }
            }
        }
        panic!("{}: indexes nest too deep", self.name)
    }

    /// An OCI layout holding every blob, its index naming the entry `name`.
    fn write_layout(&self, dir: &Path, name: &str) {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        for (d, b) in &self.blobs {
            std::fs::write(blobs.join(d.hex()), b).unwrap();
        }
        let (bytes, d) = self.entry();
        let mut desc = Descriptor::new(&media_type_of(bytes), d.clone(), bytes.len() as u64);
        desc.annotations
            .insert(mt::ANNOTATION_IMAGE_NAME.into(), name.into());
        desc.annotations
            .insert(mt::ANNOTATION_REF_NAME.into(), "v1".into());
        std::fs::write(dir.join("oci-layout"), strata_oci::archive::OCI_LAYOUT).unwrap();
        std::fs::write(dir.join("index.json"), Index::new(vec![desc]).encode().0).unwrap();
    }

    /// A `docker save`-style archive (directory) of the chosen image: manifest.json, config
    /// and layer files.
    fn write_docker_archive(&self, dir: &Path, name: &str) {
        let m = Document::parse_image_manifest(&self.chosen_manifest(), None).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let write = |d: &Digest| {
            std::fs::write(dir.join(d.hex()), &self.blobs[d]).unwrap();
            d.hex().to_string()
        };
        let entry = strata_oci::archive::ArchiveEntry {
            config: write(&m.config.digest),
            repo_tags: vec![name.into()],
            layers: m.layers.iter().map(|l| write(&l.digest)).collect(),
            layer_sources: Default::default(),
        };
        std::fs::write(
            dir.join("manifest.json"),
            serde_json::to_vec(&[entry]).unwrap(),
        )
        .unwrap();
    }

    /// Pushes every document and blob to `addr/repo`, the entry as `:v1`. `Err` when the
    /// registry refuses a document (a case with references to nothing).
    fn push(&self, addr: &str, repo: &str) -> Result<(), String> {
        let http = reqwest::blocking::Client::new();
        let put_blob = |d: &Digest, b: &[u8]| -> Result<(), String> {
            let head = http
                .head(format!("http://{addr}/v2/{repo}/blobs/{d}"))
                .send()
                .map_err(|e| e.to_string())?;
            if head.status().is_success() {
                return Ok(());
            }
            let r = http
                .post(format!("http://{addr}/v2/{repo}/blobs/uploads/"))
                .send()
                .map_err(|e| e.to_string())?;
            let loc = r
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .ok_or("no upload location")?
                .to_string();
            let loc = if loc.starts_with("http") {
                loc
            } else {
                format!("http://{addr}{loc}")
            };
            let sep = if loc.contains('?') { '&' } else { '?' };
            let r = http
                .put(format!("{loc}{sep}digest={d}"))
                .header("content-type", "application/octet-stream")
                .body(b.to_vec())
                .send()
                .map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("blob {d}: {}", r.status()));
            }
            Ok(())
        };
        // Layer blobs first (every blob that is not a document of the case).
        let docs: BTreeMap<&Digest, &str> = self
            .docs
            .iter()
            .map(|(f, (_, d))| (d, f.as_str()))
            .collect();
        for (d, b) in &self.blobs {
            if !docs.contains_key(d) {
                put_blob(d, b)?;
            }
        }
        // Documents, those referenced before those that reference them.
        let mut done: Vec<String> = Vec::new();
        fn order(m: &Made, f: &str, done: &mut Vec<String>) {
            if done.iter().any(|d| d == f) {
                return;
            }
            for r in &m.refs[f] {
                order(m, r, done);
            }
            done.push(f.to_string());
        }
        order(self, &self.case.entry, &mut done);
        for f in &done {
            let (b, d) = &self.docs[f];
            if !is_manifest(b) {
                put_blob(d, b)?;
                continue;
            }
            let reference = if *f == self.case.entry {
                "v1".to_string()
            } else {
                d.to_string()
            };
            let r = http
                .put(format!("http://{addr}/v2/{repo}/manifests/{reference}"))
                .header("content-type", media_type_of(b))
                .body(b.clone())
                .send()
                .map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!(
                    "manifest {f}: {} {}",
                    r.status(),
                    r.text().unwrap_or_default()
                ));
            }
        }
        Ok(())
    }
}

/// What went wrong with a case, or nothing.
type Outcome = Result<(), String>;

fn ok(o: &Output, what: &str) -> Result<String, String> {
    if o.status.success() {
        Ok(stdout(o))
    } else {
        Err(format!("{what} failed:\n{}{}", stdout(o), stderr(o)))
    }
}

fn refused(o: &Output, what: &str, want: &str) -> Outcome {
    let err = stderr(o).to_lowercase();
    if o.status.success() {
        return Err(format!("{what} succeeded; it must refuse ({want})"));
    }
    if !err.contains(&want.to_lowercase()) {
        return Err(format!("{what} refused, but without {want:?}:\n{err}"));
    }
    if err.contains("panicked") {
        return Err(format!("{what} panicked:\n{err}"));
    }
    Ok(())
}

/// The config `strata inspect` shows against what the case says.
fn check_config(m: &Made, r: &Fixture, name: &str) -> Outcome {
    let out = ok(&r.strata(&["inspect", name]), "inspect")?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
    let img = &v[0];
    let c = &img["Config"];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let case = &m.case;
    let mut diffs = Vec::new();
    let mut cmp = |what: &str, got: String, want: String| {
        if got != want {
            diffs.push(format!("{what}: strata has {got}, the case says {want}"));
        }
    };
    cmp(
        "Env",
        format!("{:?}", strings(&c["Env"])),
        format!("{:?}", case.env.clone().unwrap_or_default()),
    );
    cmp(
        "Cmd",
        format!("{:?}", strings(&c["Cmd"])),
        format!("{:?}", case.cmd.clone().unwrap_or_default()),
    );
    cmp(
        "Entrypoint",
        format!("{:?}", strings(&c["Entrypoint"])),
        format!("{:?}", case.entrypoint.clone().unwrap_or_default()),
    );
    cmp(
        "User",
        c["User"].as_str().unwrap_or_default().into(),
        case.user.clone().unwrap_or_default(),
    );
    cmp(
        "WorkingDir",
        c["WorkingDir"].as_str().unwrap_or_default().into(),
        case.workdir.clone().unwrap_or_default(),
    );
    let labels: BTreeMap<String, String> =
        serde_json::from_value(c["Labels"].clone()).unwrap_or_default();
    cmp(
        "Labels",
        format!("{labels:?}"),
        format!("{:?}", case.labels.clone().unwrap_or_default()),
    );
    if let Some(n) = case.layers {
        cmp(
            "layers",
            strings(&img["RootFS"]["Layers"]).len().to_string(),
            n.to_string(),
        );
    }
    if let Some(n) = case.history {
        let h = img["History"].as_array().map(Vec::len).unwrap_or(0);
        cmp("history", h.to_string(), n.to_string());
    }
    if let Some(p) = &case.platform {
        let got = Platform::new(
            img["Os"].as_str().unwrap_or_default(),
            img["Architecture"].as_str().unwrap_or_default(),
            img["Variant"].as_str(),
        );
        cmp(
            "platform",
            got.to_string(),
            Platform::parse(p).unwrap().to_string(),
        );
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n"))
    }
}

/// Builds FROM `base` (a RUN that sees every layer), runs the result; returns its name.
fn build_on(m: &Made, r: &Fixture, base: &str, tag: &str) -> Outcome {
    let n = m.case.layers.unwrap_or(1);
    let ctx = r.dir.join(format!("ctx-{}", m.name));
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base}\nUSER 0\nRUN test -x /bin/sh && i=1; while [ $i -lt {n} ]; do test -f /compat/$i || exit 1; i=$((i+1)); done; echo ok > /compat-ran\n"
        ),
    )
    .unwrap();
    ok(
        &r.strata(&[
            "build",
            "--progress",
            "plain",
            "-t",
            tag,
            &ctx.to_string_lossy(),
        ]),
        &format!("building FROM {base}"),
    )?;
    let out = ok(
        &r.strata(&["run", "--entrypoint", "cat", tag, "/compat-ran"]),
        &format!("running {tag}"),
    )?;
    if out.trim() != "ok" {
        return Err(format!("{tag} ran and printed {out:?}"));
    }
    Ok(())
}

fn through_archives(m: &Made, work: &Path, r: &Fixture, exported: &Fixture) -> Outcome {
    let name = format!("localhost/compat/{}:v1", m.name);
    let layout = work.join(format!("layout-{}", m.name));
    m.write_layout(&layout, &name);
    let load = r.strata(&["load", "-i", &layout.to_string_lossy()]);
    if m.case.expect == "refuse" {
        return refused(
            &load,
            "strata load of the OCI layout",
            m.case.refuse.as_deref().unwrap_or_default(),
        );
    }
    ok(&load, "strata load of the OCI layout")?;
    check_config(m, r, &name)?;
    // A single image: also as a docker archive.
    let single = matches!(
        Document::parse(&m.entry().0, None),
        Ok(Document::Manifest(_))
    );
    if single {
        let docker = work.join(format!("docker-{}", m.name));
        let dname = format!("localhost/compat-docker/{}:v1", m.name);
        m.write_docker_archive(&docker, &dname);
        ok(
            &r.strata(&["load", "-i", &docker.to_string_lossy()]),
            "strata load of the docker archive",
        )?;
        check_config(m, r, &dname)?;
    }
    let built = format!("localhost/compat-built/{}:v1", m.name);
    build_on(m, r, &name, &built)?;
    for format in ["oci", "docker"] {
        let out = work.join(format!("{}-{format}.tar", m.name));
        ok(
            &r.strata(&[
                "save",
                "--format",
                format,
                "-o",
                &out.to_string_lossy(),
                &built,
            ]),
            &format!("strata save --format {format}"),
        )?;
        ok(
            &exported.strata(&["load", "-i", &out.to_string_lossy()]),
            &format!("loading the {format} export again"),
        )?;
    }
    Ok(())
}

/// `Ok(false)`: a refused case the registry itself would not take (nothing checked).
fn through_registry(m: &Made, addr: &str, r: &Fixture) -> Result<bool, String> {
    let repo = format!("compat/{}", m.name);
    if let Err(e) = m.push(addr, &repo) {
        // The registry itself refuses documents no registry takes (schema 1, an index of
        // manifests that are not there): only a case that must be refused may be one.
        return if m.case.expect == "refuse" {
            eprintln!("{}: the registry refuses the case itself ({e})", m.name);
            Ok(false)
        } else {
            Err(format!("pushing the case to the registry: {e}"))
        };
    }
    let reference = format!("{addr}/{repo}:v1");
    if m.case.expect == "refuse" {
        return refused(
            &r.strata(&["pull", &reference]),
            "strata pull",
            m.case.refuse.as_deref().unwrap_or_default(),
        )
        .map(|()| true);
    }
    let built = format!("{addr}/compat-built/{}:v1", m.name);
    build_on(m, r, &reference, &built)?;
    check_config(m, r, &reference)?;
    // Pushed on unchanged: the same manifest bytes, so the same digest.
    let copy = format!("{addr}/copy/{}:v1", m.name);
    ok(
        &r.strata(&["push", &reference, &copy]),
        "strata push of the pulled base",
    )?;
    let got = reqwest::blocking::Client::new()
        .get(format!("http://{addr}/v2/copy/{}/manifests/v1", m.name))
        .header("accept", mt::MANIFEST_ACCEPT)
        .send()
        .and_then(|r| r.bytes())
        .map_err(|e| e.to_string())?;
    let want = m.chosen_manifest();
    if got[..] != want[..] {
        return Err(format!(
            "the pulled base pushed to another repository has manifest {} ({} bytes), not the original {} ({} bytes)",
            Digest::of(&got),
            got.len(),
            Digest::of(&want),
            want.len()
        ));
    }
    ok(
        &r.strata(&["push", &built]),
        "strata push of the built image",
    )?;
    Ok(true)
}

#[test]
fn images_other_tools_wrote_are_bases_or_refused_clearly() {
    let Some(tar) = busybox_tar("strata-compat") else {
        return;
    };
    let work = tar.parent().unwrap().to_path_buf();
    let mut layers = Layers {
        busybox: std::fs::read(&tar).unwrap(),
        made: HashMap::new(),
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(testdata().join("compat"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("case.toml").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 30, "the corpus has {} cases", dirs.len());
    let made: Vec<Made> = dirs.iter().map(|d| Made::new(d, &mut layers)).collect();
    for m in &made {
        assert!(
            matches!(m.case.expect.as_str(), "base" | "refuse"),
            "{}: expect is base or refuse",
            m.name
        );
        assert_eq!(
            m.case.refuse.is_some(),
            m.case.expect == "refuse",
            "{}: refuse names the message of a refused case",
            m.name
        );
    }
    let local = Fixture::fresh(work.join("local")).own_docker_config();
    let exported = Fixture::fresh(work.join("exported")).own_docker_config();
    let pulled = Fixture::fresh(work.join("pulled")).own_docker_config();
    // Non-distributable layers name URLs, which a registry takes only when told to.
    let registry = Registry::start_with(
        &work.join("registry"),
        "validation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n",
    );
    let mut failures = Vec::new();
    let mut refused_by_strata = 0;
    for m in &made {
        if let Err(e) = through_archives(m, &work, &local, &exported) {
            failures.push(format!("{} (archives): {e}", m.name));
        }
        if let Some(reg) = &registry {
            match through_registry(m, &reg.addr, &pulled) {
                Ok(true) if m.case.expect == "refuse" => refused_by_strata += 1,
                Ok(_) => {}
                Err(e) => failures.push(format!("{} (registry): {e}", m.name)),
            }
        }
    }
    // Some refused cases are ones a registry takes: strata's own refusal is checked there.
    if registry.is_some() {
        assert!(
            refused_by_strata > 0,
            "no refused case reached strata through the registry"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        made.len(),
        failures.join("\n\n")
    );
}
