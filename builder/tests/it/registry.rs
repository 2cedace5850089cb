//! Registries: a real one (Debian's docker-registry, started on loopback by the tests) and a
//! scripted one in this file for the cases a real registry will not play (500s, bad digests,
//! bearer tokens, multi-platform indexes).

use crate::support::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

fn base_tar() -> Option<&'static Path> {
    static TAR: OnceLock<Option<PathBuf>> = OnceLock::new();
    base_tar_in(&TAR, "strata-registry-tests")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's docker-registry on a free loopback port, stopped on drop.
pub(crate) struct Registry {
    child: Child,
    pub(crate) addr: String,
}

impl Registry {
    pub(crate) fn start(dir: &Path) -> Option<Registry> {
        Self::start_with(dir, "")
    }

    /// With `extra` appended to the `http:`/top-level config (TLS, auth).
    pub(crate) fn start_with(dir: &Path, extra: &str) -> Option<Registry> {
        if Command::new("docker-registry")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI installs docker-registry"
            );
            eprintln!("skipping: docker-registry is not installed");
            return None;
        }
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        std::fs::create_dir_all(dir).unwrap();
        let cfg = dir.join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{extra}",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut reg = Registry { child, addr };
        for _ in 0..100 {
            if TcpStream::connect(&reg.addr).is_ok() {
                return Some(reg);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = reg.child.kill();
        panic!("docker-registry did not start on {}", reg.addr);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test's state root, its registry credentials in `dir/docker`.
struct Root {
    fx: Fixture,
}

deref_to_fixture!(Root);

impl Root {
    fn new(name: &str, with_busybox: bool) -> Option<Root> {
        let tar = base_tar()?;
        let fx = Fixture::new(tar, name).own_docker_config();
        if with_busybox {
            fx.import_busybox(tar, None);
        }
        Some(Root { fx })
    }

    /// `strata args`' standard output and error, after asserting that it succeeded.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.strata(args);
        assert!(
            out.status.success(),
            "strata {args:?}:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        format!("{}{}", stdout(&out), stderr(&out))
    }
}

#[test]
fn push_pull_and_build_through_a_real_registry() {
    let Some(a) = Root::new("reg-a", true) else {
        return;
    };
    let Some(reg) = Registry::start(&a.dir.join("registry")) else {
        return;
    };
    let r = &reg.addr;
    let ctx = a.context(
        "app",
        "FROM busybox\nRUN echo pushed > /pushed\nCMD [\"cat\", \"/pushed\"]\n",
    );
    let image = format!("{r}/team/app:v1");
    a.ok(&["build", "-q", "-t", &image, "--push", &ctx]);
    // Large blobs go up in chunks (the threshold lowered to 64 KiB here); they come back whole.
    let chunked = format!("{r}/team/chunked:v1");
    let out = a
        .cmd(&["push", &image, &chunked])
        .env("STRATA_UPLOAD_CHUNK", "65536")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Pushing again uploads nothing.
    let again = a.ok(&["push", &image]);
    assert!(!again.contains("pushed "), "{again}");
    assert_eq!(again.matches("already in").count(), 3, "{again}");
    // A fresh root builds FROM it, pulling it, and pushes the result to another repository.
    let Some(b) = Root::new("reg-b", false) else {
        return;
    };
    let ctx2 = b.context(
        "derived",
        &format!("FROM {image}\nRUN cat /pushed > /derived\n"),
    );
    let derived = format!("{r}/team/derived:v1");
    let out = b.ok(&[
        "build",
        "--progress",
        "plain",
        "-t",
        &derived,
        "--push",
        &ctx2,
    ]);
    assert!(out.contains("pulling"), "{out}");
    // The base layers were mounted from team/app, not uploaded again.
    assert_eq!(out.matches("mounted from team/app").count(), 2, "{out}");
    let run = b.ok(&["run", "--rm", &derived, "cat", "/derived"]);
    assert!(run.starts_with("pushed\n"), "{run}");
    // FROM pulls lazily: a build whose every step is cached downloads no layer at all.
    let Some(l) = Root::new("reg-lazy", false) else {
        return;
    };
    let df_lazy = format!("FROM {image}\nLABEL lazy=yes\n");
    let ctx_l = l.context("lazy", &df_lazy);
    l.ok(&["build", "-q", "-t", "lazy", &ctx_l]);
    assert_eq!(
        std::fs::read_dir(l.root.join("snapshots")).unwrap().count(),
        0,
        "no layer was downloaded for a build that runs nothing"
    );
    // Running it fetches them.
    assert!(l.ok(&["run", "--rm", "lazy"]).starts_with("pushed\n"));
    assert_eq!(
        std::fs::read_dir(l.root.join("snapshots")).unwrap().count(),
        2
    );
    let Some(k) = Root::new("reg-chunked", false) else {
        return;
    };
    k.ok(&["pull", &chunked]);
    assert!(k.ok(&["run", "--rm", &chunked]).starts_with("pushed\n"));
    // A third root pulls the derived image by tag, then by digest, and runs it.
    let Some(c) = Root::new("reg-c", false) else {
        return;
    };
    let pulled = c.ok(&["pull", &derived]);
    let digest = pulled
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap()
        .to_string();
    assert!(c.ok(&["run", "--rm", &derived]).starts_with("pushed\n"));
    c.ok(&["pull", &format!("{r}/team/derived@{digest}")]);
    // Layers already there are not downloaded again.
    let again = c.ok(&["pull", &derived]);
    assert!(again.contains("0 of 3 layers to download"), "{again}");
}

/// GET over plain HTTP/1.0 from the loopback registry; the body.
fn http_get(addr: &str, path: &str, accept: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// `-o type=image,push=true,compression=zstd`: the output's compression reaches the registry.
#[test]
fn a_pushed_output_keeps_its_compression() {
    let Some(a) = Root::new("reg-zstd", true) else {
        return;
    };
    let Some(reg) = Registry::start(&a.dir.join("registry")) else {
        return;
    };
    let r = &reg.addr;
    let ctx = a.context("z", "FROM busybox\nRUN echo zstd > /z\n");
    for comp in ["zstd", "gzip"] {
        a.ok(&[
            "build",
            "-q",
            "-o",
            &format!("type=image,name={r}/z:{comp},push=true,compression={comp}"),
            &ctx,
        ]);
        let m = http_get(
            r,
            &format!("/v2/z/manifests/{comp}"),
            "application/vnd.oci.image.manifest.v1+json",
        );
        let m: serde_json::Value = serde_json::from_str(&m).unwrap();
        let types: Vec<&str> = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["mediaType"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            vec![format!("application/vnd.oci.image.layer.v1.tar+{comp}"); 2],
            "{m}"
        );
    }
    // A fresh root pulls the zstd image and runs it.
    let Some(b) = Root::new("reg-zstd-b", false) else {
        return;
    };
    let image = format!("{r}/z:zstd");
    b.ok(&["pull", &image]);
    assert!(
        b.ok(&["run", "--rm", &image, "cat", "/z"])
            .starts_with("zstd\n")
    );
}

#[test]
fn a_docker_io_mirror_serves_docker_io_names() {
    let Some(a) = Root::new("mirror-a", true) else {
        return;
    };
    let Some(reg) = Registry::start(&a.dir.join("registry")) else {
        return;
    };
    // What the mirror holds under library/…, as a docker.io mirror does.
    a.ok(&[
        "push",
        "busybox",
        &format!("{}/library/strata-mirrored:1", reg.addr),
    ]);
    let Some(b) = Root::new("mirror-b", false) else {
        return;
    };
    std::fs::create_dir_all(&b.root).unwrap();
    std::fs::write(
        b.root.join("config.toml"),
        format!("[registry.\"docker.io\"]\nmirrors = [\"{}\"]\n", reg.addr),
    )
    .unwrap();
    let ctx = b.context(
        "m",
        "FROM strata-mirrored:1\nRUN echo through-mirror > /m\n",
    );
    b.ok(&["build", "-q", "-t", "m", &ctx]);
    assert_eq!(
        stdout(&b.strata(&["run", "--rm", "m", "cat", "/m"])),
        "through-mirror\n"
    );
}

/// A scripted registry: answers each request with what `handler` returns.
struct Fake {
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

type Handler = dyn Fn(
        &str,
        &str,
        &std::collections::HashMap<String, String>,
    ) -> (u16, Vec<(String, String)>, Vec<u8>)
    + Send
    + Sync;

impl Fake {
    fn start(handler: Arc<Handler>) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let h = handler.clone();
                let log = log2.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut line = String::new();
                    if r.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_string();
                    let path = parts.next().unwrap_or("").to_string();
                    let mut headers = std::collections::HashMap::new();
                    loop {
                        let mut l = String::new();
                        if r.read_line(&mut l).is_err() || l.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':') {
                            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                        }
                    }
                    if let Some(n) = headers
                        .get("content-length")
                        .and_then(|n| n.parse::<usize>().ok())
                    {
                        let mut body = vec![0u8; n];
                        let _ = r.read_exact(&mut body);
                    }
                    log.lock().unwrap().push(format!(
                        "{method} {path} {}",
                        headers.get("authorization").cloned().unwrap_or_default()
                    ));
                    let (code, hs, body) = h(&method, &path, &headers);
                    if code == 0 {
                        // A registry that stops: the connection drops without an answer.
                        let _ = s.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    let mut resp = format!(
                        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        body.len()
                    );
                    for (k, v) in hs {
                        resp.push_str(&format!("{k}: {v}\r\n"));
                    }
                    resp.push_str("\r\n");
                    let _ = s.write_all(resp.as_bytes());
                    if method != "HEAD" {
                        let _ = s.write_all(&body);
                    }
                });
            }
        });
        Fake { addr, log }
    }
}

/// A digest through the image model, as a string.
fn sha(b: &[u8]) -> String {
    strata_oci::Digest::of(b).to_string()
}

/// A one-layer image (a file /hello) for `arch`: (config, layer blob, manifest).
fn tiny_image(arch: &str, text: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, "hello", text.as_bytes()).unwrap();
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let layer = gz.finish().unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["cat", "/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(&tar)]},
        "history": [{"created_by": "test"}],
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(&layer), "size": layer.len()}],
    }))
    .unwrap();
    (config, layer, manifest)
}

/// A scripted answer (status, headers, body) that overrides the normal one.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);
type Quirk =
    dyn Fn(&str, &std::collections::HashMap<String, String>) -> Option<Answer> + Send + Sync;

/// Serves a two-platform index under `repo:tag` (arm64 first), with `quirk` deciding extra
/// behaviour per request (status override).
fn scripted(quirk: Arc<Quirk>, corrupt_layer: bool) -> Fake {
    let (c_arm, l_arm, m_arm) = tiny_image("arm64", "wrong platform\n");
    let (c_amd, l_amd, m_amd) = tiny_image("amd64", "right platform\n");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&m_arm), "size": m_arm.len(), "platform": {"os": "linux", "architecture": "arm64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&m_amd), "size": m_amd.len(), "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    }))
    .unwrap();
    let mut blobs = std::collections::HashMap::new();
    for b in [&c_arm, &l_arm, &c_amd] {
        blobs.insert(sha(b), b.clone());
    }
    let mut served_layer = l_amd.clone();
    if corrupt_layer {
        served_layer = b"not the layer".to_vec();
    }
    blobs.insert(sha(&l_amd), served_layer);
    let manifests: std::collections::HashMap<String, (Vec<u8>, &str)> = [
        (
            "t/img/manifests/v1".to_string(),
            (index.clone(), "application/vnd.oci.image.index.v1+json"),
        ),
        (
            format!("t/img/manifests/{}", sha(&m_arm)),
            (m_arm.clone(), "application/vnd.oci.image.manifest.v1+json"),
        ),
        (
            format!("t/img/manifests/{}", sha(&m_amd)),
            (m_amd.clone(), "application/vnd.oci.image.manifest.v1+json"),
        ),
    ]
    .into_iter()
    .collect();
    Fake::start(Arc::new(move |_method, path, headers| {
        if let Some(r) = quirk(path, headers) {
            return r;
        }
        let p = path.trim_start_matches("/v2/");
        if let Some((b, mt)) = manifests.get(p) {
            return (
                200,
                vec![("Content-Type".into(), mt.to_string())],
                b.clone(),
            );
        }
        if let Some(d) = p.strip_prefix("t/img/blobs/")
            && let Some(b) = blobs.get(d)
        {
            return (200, vec![], b.clone());
        }
        (404, vec![], b"{}".to_vec())
    }))
}

#[test]
fn indexes_resolve_to_this_platform_and_5xx_are_retried() {
    let Some(a) = Root::new("fake-index", false) else {
        return;
    };
    let fails = Arc::new(Mutex::new(2));
    let f2 = fails.clone();
    let fake = scripted(
        Arc::new(move |path, _| {
            let mut n = f2.lock().unwrap();
            if path.ends_with("/manifests/v1") && *n > 0 {
                *n -= 1;
                return Some((503, vec![], b"busy".to_vec()));
            }
            None
        }),
        false,
    );
    let image = format!("{}/t/img:v1", fake.addr);
    a.ok(&["pull", &image]);
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&a.strata(&["inspect", &image]))).unwrap();
    assert_eq!(v[0]["Architecture"], "amd64");
    let ctx = a.context("x", &format!("FROM {image}\n"));
    let dest = a.dir.join("fs");
    a.ok(&[
        "build",
        "-q",
        "-o",
        &format!("type=local,dest={}", dest.display()),
        &ctx,
    ]);
    assert_eq!(
        std::fs::read_to_string(dest.join("hello")).unwrap(),
        "right platform\n"
    );
    assert_eq!(*fails.lock().unwrap(), 0, "the 503s were answered");
    let log = fake.log.lock().unwrap().clone();
    assert_eq!(
        log.iter().filter(|l| l.contains("/manifests/v1")).count(),
        3,
        "{log:?}"
    );
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused() {
    let Some(a) = Root::new("fake-corrupt", false) else {
        return;
    };
    let fake = scripted(Arc::new(|_, _| None), true);
    let out = a.strata(&["pull", &format!("{}/t/img:v1", fake.addr)]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not match"), "{}", stderr(&out));
    let images = a.ok(&["images", "--format", "json"]);
    assert!(!images.contains("t/img"), "{images}");
}

#[test]
fn bearer_tokens_from_the_challenge() {
    let Some(a) = Root::new("fake-token", false) else {
        return;
    };
    let port = Arc::new(Mutex::new(String::new()));
    let p2 = port.clone();
    let fake = scripted(
        Arc::new(move |path, headers| {
            if path.starts_with("/token") {
                // The token server checks the scope and the credentials `strata login` stored.
                if !path.contains("scope=repository%3At%2Fimg%3Apull") {
                    return Some((400, vec![], b"bad scope".to_vec()));
                }
                if headers.get("authorization").map(String::as_str) != Some("Basic dTpw") {
                    return Some((401, vec![], b"who are you".to_vec()));
                }
                return Some((200, vec![], br#"{"token":"t0k3n"}"#.to_vec()));
            }
            if headers.get("authorization").map(String::as_str) != Some("Bearer t0k3n") {
                let realm = format!("http://{}/token", p2.lock().unwrap());
                return Some((
                    401,
                    vec![(
                        "WWW-Authenticate".into(),
                        format!(
                            "Bearer realm=\"{realm}\",service=\"fake\",scope=\"repository:t/img:pull\""
                        ),
                    )],
                    b"{}".to_vec(),
                ));
            }
            None
        }),
        false,
    );
    *port.lock().unwrap() = fake.addr.clone();
    let image = format!("{}/t/img:v1", fake.addr);
    // Without credentials the token server refuses: a clear error.
    let out = a.strata(&["pull", &image]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("strata login"), "{}", stderr(&out));
    a.ok(&["login", "-u", "u", "-p", "p", &fake.addr]);
    a.ok(&["pull", &image]);
    let log = fake.log.lock().unwrap().clone();
    assert!(log.iter().any(|l| l.contains("Bearer t0k3n")), "{log:?}");
    a.ok(&["logout", &fake.addr]);
}

#[test]
fn build_cache_shared_through_a_registry_and_a_directory() {
    let Some(a) = Root::new("cache-a", false) else {
        return;
    };
    let Some(b) = Root::new("cache-b", false) else {
        return;
    };
    let Some(c) = Root::new("cache-c", false) else {
        return;
    };
    // The same base image in every root (as a registry pull would give).
    for r in [&a, &b, &c] {
        r.import_busybox(base_tar().unwrap(), Some("1600000000"));
    }
    let Some(reg) = Registry::start(&a.dir.join("registry")) else {
        return;
    };
    let df = "FROM busybox AS deps\nRUN echo deps > /deps\n\nFROM busybox\nCOPY --from=deps /deps /deps\nRUN echo app > /app\nCMD [\"cat\", \"/deps\", \"/app\"]\n";
    let ctx_a = a.context("app", df);
    let cache_ref = format!("{}/cache/app:buildcache", reg.addr);
    let dir = a.dir.join("cache-dir").to_string_lossy().into_owned();
    a.ok(&[
        "build",
        "-q",
        "--cache-to",
        &format!("type=registry,ref={cache_ref},mode=max"),
        "--cache-to",
        &format!("type=local,dest={dir}"),
        &ctx_a,
    ]);
    // A fresh root with the registry cache runs no step.
    let ctx_b = b.context("app", df);
    let out = b.ok(&[
        "build",
        "--progress",
        "plain",
        "-t",
        "app",
        "--cache-from",
        &format!("type=registry,ref={cache_ref}"),
        &ctx_b,
    ]);
    assert!(out.contains("0 steps run"), "{out}");
    assert_eq!(stdout(&b.strata(&["run", "--rm", "app"])), "deps\napp\n");
    // Only the layers the result needs came: the deps stage's RUN layer did not.
    let snaps = std::fs::read_dir(b.root.join("snapshots")).unwrap().count();
    assert_eq!(snaps, 3, "base, COPY and RUN layers only");
    // The same through a directory (mode=min: the final image's steps).
    let ctx_c = c.context("app", df);
    let out = c.ok(&[
        "build",
        "--progress",
        "plain",
        "--cache-from",
        &format!("type=local,src={dir}"),
        &ctx_c,
    ]);
    assert!(out.contains("0 steps run"), "{out}");
    // A cache that cannot be read is a warning, not a failure.
    let out = c.ok(&[
        "build",
        "--progress",
        "plain",
        "--cache-from",
        "type=local,src=/nonexistent",
        &ctx_c,
    ]);
    assert!(out.contains("importing a cache failed"), "{out}");
}

#[test]
fn basic_auth_over_tls_with_a_generated_certificate() {
    let Some(a) = Root::new("tls", true) else {
        return;
    };
    let have = |t: &str, arg: &str| Command::new(t).arg(arg).output().is_ok();
    if !have("openssl", "version") || !have("htpasswd", "-h") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs openssl and apache2-utils"
        );
        eprintln!("skipping: openssl or htpasswd is missing");
        return;
    }
    let d = a.dir.join("tls");
    std::fs::create_dir_all(&d).unwrap();
    let (ca, ca_key, cert, key, pw) = (
        d.join("ca.pem"),
        d.join("ca.key"),
        d.join("cert.pem"),
        d.join("key.pem"),
        d.join("htpasswd"),
    );
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(&d)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    // A CA, and the registry's certificate signed by it.
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=strata test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    std::fs::write(d.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    let _ = &ca_key;
    let out = Command::new("htpasswd")
        .args(["-Bbn", "alice", "s3cret"])
        .output()
        .unwrap();
    std::fs::write(&pw, &out.stdout).unwrap();
    let extra = format!(
        "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
        cert.display(),
        key.display(),
        pw.display()
    );
    let Some(reg) = Registry::start_with(&d.join("registry"), &extra) else {
        return;
    };
    std::fs::write(
        a.root.join("config.toml"),
        format!("[registry.\"{}\"]\nca = [\"{}\"]\n", reg.addr, ca.display()),
    )
    .unwrap();
    let image = format!("{}/secure/busybox:1", reg.addr);
    // No credentials: refused, and the message says how to log in.
    let out = a.strata(&["push", "busybox", &image]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("strata login"), "{}", stderr(&out));
    // Wrong password, then the right one (from stdin).
    a.ok(&["login", "-u", "alice", "-p", "wrong", &reg.addr]);
    assert!(!a.strata(&["push", "busybox", &image]).status.success());
    let mut c = a
        .cmd(&["login", "-u", "alice", "--password-stdin", &reg.addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    assert!(c.wait_with_output().unwrap().status.success());
    a.ok(&["push", "busybox", &image]);
    // Another root with the same CA and credentials pulls it over TLS.
    let Some(b) = Root::new("tls-b", false) else {
        return;
    };
    std::fs::create_dir_all(&b.root).unwrap();
    std::fs::copy(a.root.join("config.toml"), b.root.join("config.toml")).unwrap();
    let out = b
        .cmd(&["pull", &image])
        .env("DOCKER_CONFIG", a.dir.join("docker"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Without the CA the registry's certificate is not trusted.
    std::fs::write(
        b.root.join("config.toml"),
        format!(
            "[registry.\"{}\"]\ninsecure = false\nca = [\"{}\"]\n",
            reg.addr,
            cert.display()
        ),
    )
    .unwrap();
    let out = b
        .cmd(&["pull", &image])
        .env("DOCKER_CONFIG", a.dir.join("docker"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "pulled without trusting the CA");
}

#[test]
fn a_registry_that_stops_mid_push_then_a_push_that_succeeds() {
    let Some(a) = Root::new("stop-push", true) else {
        return;
    };
    let up = Arc::new(Mutex::new(false));
    let stored = Arc::new(Mutex::new(std::collections::HashSet::<String>::new()));
    let (up2, st2) = (up.clone(), stored.clone());
    let fake = Fake::start(Arc::new(move |method, path, _| {
        let digest = path.split("digest=").nth(1).map(str::to_string);
        match method {
            "HEAD" => {
                let d = path.rsplit('/').next().unwrap_or("");
                if st2.lock().unwrap().contains(d) {
                    (200, vec![], vec![])
                } else {
                    (404, vec![], vec![])
                }
            }
            "POST" => (
                202,
                vec![("Location".into(), "/v2/x/app/blobs/uploads/u1".into())],
                vec![],
            ),
            "PUT" if path.contains("/blobs/uploads/") => {
                if !*up2.lock().unwrap() {
                    return (0, vec![], vec![]); // stops mid-push
                }
                st2.lock().unwrap().insert(digest.unwrap_or_default());
                (201, vec![], vec![])
            }
            "PUT" => (201, vec![], vec![]),
            _ => (404, vec![], vec![]),
        }
    }));
    let image = format!("{}/x/app:1", fake.addr);
    let out = a.strata(&["push", "busybox", &image]);
    assert!(!out.status.success(), "pushed to a stopped registry");
    let err = stderr(&out);
    assert!(err.contains("pushing") && err.contains("blob"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    *up.lock().unwrap() = true;
    let out = a.ok(&["push", "busybox", &image]);
    assert!(out.contains("pushed"), "{out}");
    let log = fake.log.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|l| l.starts_with("PUT /v2/x/app/manifests/1")),
        "{log:?}"
    );
}

#[test]
fn run_pulls_an_image_the_store_lacks_as_docker_run_does() {
    let Some(a) = Root::new("reg-run-a", true) else {
        return;
    };
    let Some(reg) = Registry::start(&a.dir.join("registry")) else {
        return;
    };
    let image = format!("{}/team/runme:1", reg.addr);
    let ctx = a.context(
        "runme",
        "FROM busybox\nRUN echo v1 > /v\nCMD [\"cat\", \"/v\"]\n",
    );
    a.ok(&["build", "-q", "-t", &image, "--push", &ctx]);
    // --pull=never on a root without it: refused, nothing pulled.
    let Some(b) = Root::new("reg-run-b", false) else {
        return;
    };
    let out = b.strata(&["run", "--pull", "never", &image]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no such image"), "{}", stderr(&out));
    // The default (missing): pulled, then run.
    let out = b.strata(&["run", &image]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "v1\n");
    assert!(
        stderr(&out).contains("Unable to find image"),
        "{}",
        stderr(&out)
    );
    // Now it is local: no pull.
    let out = b.strata(&["run", &image]);
    assert_eq!(stdout(&out), "v1\n");
    assert!(!stderr(&out).contains("pulling"), "{}", stderr(&out));
    // --pull=always sees a newer push.
    let ctx2 = a.context(
        "runme2",
        "FROM busybox\nRUN echo v2 > /v\nCMD [\"cat\", \"/v\"]\n",
    );
    a.ok(&["build", "-q", "-t", &image, "--push", &ctx2]);
    let out = b.strata(&["run", &image]);
    assert_eq!(stdout(&out), "v1\n", "missing does not pull what is local");
    let out = b.strata(&["run", "--pull", "always", &image]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "v2\n");
    // --platform: an image for this machine's platform is found; another is pulled for it
    // (and the registry has none).
    let host = strata_oci::Platform::host().to_string();
    let out = b.strata(&["run", "--platform", &host, &image]);
    assert_eq!(stdout(&out), "v2\n", "{}", stderr(&out));
    let out = b.strata(&["run", "--platform", "linux/s390x", &image]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("linux/s390x"), "{}", stderr(&out));
}
