//! An OCI distribution client on reqwest (blocking): manifests with the OCI and Docker media
//! types, blobs verified while streaming, uploads, and the authentication dance (anonymous,
//! basic, and bearer tokens from `WWW-Authenticate`), with retries on connection errors and 5xx.

use super::auth::Credentials;
use super::config::{HostConfig, RegistryConfig};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::Duration;
use strata_oci::Digest;

pub const ACCEPT: &str = strata_oci::media_type::MANIFEST_ACCEPT;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{url}: the registry answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: authentication failed ({reason}); log in with `strata login {host}`")]
    Auth {
        url: String,
        host: String,
        reason: String,
    },
    #[error("{what} {expected} does not match its content (it hashes to {got})")]
    DigestMismatch {
        what: String,
        expected: Digest,
        got: Digest,
    },
    #[error("{0}")]
    Protocol(String),
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, RegistryError>;

/// One registry host as reached: scheme and address (docker.io → registry-1.docker.io).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub base: String,
}

pub struct Client {
    config: RegistryConfig,
    creds: Credentials,
    clients: Mutex<HashMap<String, reqwest::blocking::Client>>,
    /// Bearer tokens by (host, scope).
    tokens: Mutex<HashMap<(String, String), String>>,
    pub retries: u32,
}

fn is_loopback(host: &str) -> bool {
    let h = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    h == "localhost" || h.starts_with("127.") || h == "[::1]"
}

/// The `WWW-Authenticate` challenge: scheme and parameters.
pub fn parse_challenge(h: &str) -> (String, HashMap<String, String>) {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some((k, v)) = s.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (val, rest) = if let Some(q) = v.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            match v.find(',') {
                Some(end) => (v[..end].trim().to_string(), &v[end..]),
                None => (v.trim().to_string(), ""),
            }
        };
        params.insert(k, val);
        s = rest.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_ascii_lowercase(), params)
}

impl Client {
    pub fn new(config: RegistryConfig, creds: Credentials) -> Client {
        Client {
            config,
            creds,
            clients: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            retries: 4,
        }
    }

    fn host_config(&self, host: &str) -> HostConfig {
        self.config.hosts.get(host).cloned().unwrap_or_default()
    }

    /// Where `host` is reached: mirrors first (for pulls), then the host itself.
    pub fn endpoints(&self, host: &str, pull: bool) -> Vec<Endpoint> {
        let mut out = Vec::new();
        if pull {
            for m in &self.host_config(host).mirrors {
                out.push(self.endpoint(m));
            }
        }
        out.push(self.endpoint(host));
        out
    }

    fn endpoint(&self, host: &str) -> Endpoint {
        let hc = self.host_config(host);
        let addr = if host == "docker.io" {
            "registry-1.docker.io"
        } else {
            host
        };
        // Loopback speaks plain HTTP unless TLS settings are given for it.
        let tls_configured = hc.insecure || !hc.ca.is_empty();
        let scheme = if hc.http || (is_loopback(host) && !tls_configured) {
            "http"
        } else {
            "https"
        };
        Endpoint {
            host: host.to_string(),
            base: format!("{scheme}://{addr}"),
        }
    }

    fn http(&self, host: &str) -> Result<reqwest::blocking::Client> {
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(host) {
            return Ok(c.clone());
        }
        let hc = self.host_config(host);
        let mut b = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .timeout(None)
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(hc.insecure);
        for ca in &hc.ca {
            let pem = std::fs::read(ca).map_err(|source| RegistryError::Io {
                op: "reading a registry CA",
                source,
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                RegistryError::Protocol(format!("{}: not a PEM certificate: {e}", ca.display()))
            })?;
            b = b.add_root_certificate(cert);
        }
        let c = b.build().map_err(|source| RegistryError::Http {
            url: host.to_string(),
            source,
        })?;
        map.insert(host.to_string(), c.clone());
        Ok(c)
    }

    /// Sends a request built by `make` (called again for each retry and after authenticating),
    /// with retries on connection errors and 5xx, and authentication on 401.
    pub fn send(
        &self,
        ep: &Endpoint,
        scope: &str,
        make: &dyn Fn(&reqwest::blocking::Client) -> reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response> {
        let client = self.http(&ep.host)?;
        let key = (ep.host.clone(), scope.to_string());
        let mut authed = false;
        let mut attempt = 0;
        loop {
            let mut req = make(&client);
            if let Some(t) = self
                .tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
            {
                req = req.header("Authorization", t.clone());
            }
            let built = req.build().map_err(|source| RegistryError::Http {
                url: ep.base.clone(),
                source,
            })?;
            let url = built.url().to_string();
            match client.execute(built) {
                Err(e) if attempt < self.retries && (e.is_connect() || e.is_timeout()) => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(100 << attempt));
                }
                Err(source) => return Err(RegistryError::Http { url, source }),
                Ok(r) if r.status().is_server_error() && attempt < self.retries => {
                    attempt += 1;
                    tracing::debug!("{url}: {}; retrying", r.status());
                    std::thread::sleep(Duration::from_millis(100 << attempt));
                }
                Ok(r) if r.status().as_u16() == 401 && !authed => {
                    authed = true;
                    let challenge = r
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let token = self.authenticate(ep, &challenge, scope, &url)?;
                    self.tokens
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key.clone(), token);
                }
                Ok(r) if r.status().as_u16() == 401 || r.status().as_u16() == 403 => {
                    return Err(RegistryError::Auth {
                        url,
                        host: ep.host.clone(),
                        reason: format!("{}", r.status()),
                    });
                }
                Ok(r) => return Ok(r),
            }
        }
    }

    /// The Authorization header value a challenge asks for.
    fn authenticate(
        &self,
        ep: &Endpoint,
        challenge: &str,
        scope: &str,
        url: &str,
    ) -> Result<String> {
        let (scheme, params) = parse_challenge(challenge);
        let login = self.creds.get(&ep.host);
        match scheme.as_str() {
            "basic" => {
                let (u, p) = login.ok_or_else(|| RegistryError::Auth {
                    url: url.to_string(),
                    host: ep.host.clone(),
                    reason: "the registry wants a user name and password".into(),
                })?;
                use base64::Engine as _;
                Ok(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                ))
            }
            "bearer" => {
                let realm = params.get("realm").ok_or_else(|| {
                    RegistryError::Protocol(format!("{url}: a bearer challenge without a realm"))
                })?;
                let client = self.http(&ep.host)?;
                let mut q: Vec<(&str, &str)> = Vec::new();
                if let Some(s) = params.get("service") {
                    q.push(("service", s));
                }
                q.push(("scope", scope));
                let mut req = client.get(realm).query(&q);
                if let Some((u, p)) = &login {
                    req = req.basic_auth(u, Some(p));
                }
                let r = req.send().map_err(|source| RegistryError::Http {
                    url: realm.clone(),
                    source,
                })?;
                if !r.status().is_success() {
                    return Err(RegistryError::Auth {
                        url: realm.clone(),
                        host: ep.host.clone(),
                        reason: format!("the token server answered {}", r.status()),
                    });
                }
                let v: TokenAnswer = r.json_value()?;
                let t = v.token.or(v.access_token).ok_or_else(|| {
                    RegistryError::Protocol(format!("{realm}: no token in the answer"))
                })?;
                Ok(format!("Bearer {t}"))
            }
            other => Err(RegistryError::Auth {
                url: url.to_string(),
                host: ep.host.clone(),
                reason: format!("unsupported authentication scheme {other:?}"),
            }),
        }
    }

    /// Checks a response's status; reads the body into the error when it is not a success.
    pub fn ok(r: reqwest::blocking::Response) -> Result<reqwest::blocking::Response> {
        if r.status().is_success() {
            return Ok(r);
        }
        let url = r.url().to_string();
        let status = r.status().as_u16();
        let body: String = r.text().unwrap_or_default().chars().take(300).collect();
        Err(RegistryError::Status { url, status, body })
    }

    /// A manifest (or index) by tag or digest: its bytes, media type and digest (checked when
    /// asked for by digest).
    pub fn get_manifest(
        &self,
        ep: &Endpoint,
        repo: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, String, Digest)> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", ep.base);
        let r = Self::ok(self.send(ep, &format!("repository:{repo}:pull"), &|c| {
            c.get(&url).header("Accept", ACCEPT)
        })?)?;
        let mt = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = read_limited(r, 16 << 20)?;
        let got = Digest::of(&bytes);
        if reference.starts_with("sha256:") && got.as_str() != reference {
            return Err(RegistryError::DigestMismatch {
                what: "manifest".into(),
                expected: reference
                    .parse()
                    .map_err(|e| RegistryError::Protocol(format!("{e}")))?,
                got,
            });
        }
        let mt = if mt.is_empty() || mt == "application/json" {
            strata_oci::Document::declared_media_type(&bytes).unwrap_or_default()
        } else {
            mt
        };
        Ok((bytes, mt, got))
    }

    /// Streams a blob into `w`, verifying its digest; returns its size.
    pub fn get_blob(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &Digest,
        w: &mut dyn Write,
    ) -> Result<u64> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", ep.base);
        let mut r = Self::ok(self.send(ep, &format!("repository:{repo}:pull"), &|c| c.get(&url))?)?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut w = strata_oci::DigestWriter::new(w);
        loop {
            let k = r.read(&mut buf).map_err(|source| RegistryError::Io {
                op: "downloading a blob",
                source,
            })?;
            if k == 0 {
                break;
            }
            w.write_all(&buf[..k]).map_err(|source| RegistryError::Io {
                op: "writing a blob",
                source,
            })?;
        }
        let n = w.len();
        let (_, got) = w.finish();
        if got != *digest {
            return Err(RegistryError::DigestMismatch {
                what: "blob".into(),
                expected: digest.clone(),
                got,
            });
        }
        Ok(n)
    }

    /// Whether the repository has the blob (HEAD).
    pub fn has_blob(&self, ep: &Endpoint, repo: &str, digest: &Digest) -> Result<bool> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", ep.base);
        let r = self.send(ep, &format!("repository:{repo}:pull,push"), &|c| {
            c.head(&url)
        })?;
        Ok(r.status().is_success())
    }

    /// Mounts a blob from another repository of the same registry; `false` when the registry
    /// would not (then the blob must be uploaded).
    pub fn mount_blob(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<bool> {
        let url = format!(
            "{}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}",
            ep.base
        );
        let scope = format!("repository:{repo}:pull,push repository:{from}:pull");
        let r = self.send(ep, &scope, &|c| c.post(&url))?;
        Ok(r.status().as_u16() == 201)
    }

    /// Uploads a blob: one POST for the session, one monolithic PUT with the bytes.
    pub fn put_blob(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &Digest,
        path: &std::path::Path,
    ) -> Result<()> {
        let scope = format!("repository:{repo}:pull,push");
        let url = format!("{}/v2/{repo}/blobs/uploads/", ep.base);
        let r = Self::ok(self.send(ep, &scope, &|c| c.post(&url))?)?;
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol(format!("{url}: no Location for the upload")))?
            .to_string();
        let loc = if loc.starts_with('/') {
            format!("{}{loc}", ep.base)
        } else {
            loc
        };
        let size = std::fs::metadata(path)
            .map_err(|source| RegistryError::Io {
                op: "reading a blob",
                source,
            })?
            .len();
        let chunk = upload_chunk();
        let mut loc = loc;
        if size > chunk {
            // Large blobs go in chunks (PATCH with Content-Range), each retried on its own.
            let mut f = std::fs::File::open(path).map_err(|source| RegistryError::Io {
                op: "reading a blob",
                source,
            })?;
            let mut start = 0u64;
            while start < size {
                let n = chunk.min(size - start);
                let mut buf = vec![0u8; n as usize];
                f.read_exact(&mut buf).map_err(|source| RegistryError::Io {
                    op: "reading a blob",
                    source,
                })?;
                let range = format!("{start}-{}", start + n - 1);
                let r = Self::ok(self.send(ep, &scope, &|c| {
                    c.patch(&loc)
                        .header("Content-Type", "application/octet-stream")
                        .header("Content-Range", range.clone())
                        .body(buf.clone())
                })?)?;
                if let Some(l) = r.headers().get("location").and_then(|v| v.to_str().ok()) {
                    loc = if l.starts_with('/') {
                        format!("{}{l}", ep.base)
                    } else {
                        l.to_string()
                    };
                }
                start += n;
            }
            let sep = if loc.contains('?') { '&' } else { '?' };
            let put = format!("{loc}{sep}digest={digest}");
            Self::ok(self.send(ep, &scope, &|c| c.put(&put).header("Content-Length", "0"))?)?;
            return Ok(());
        }
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put = format!("{loc}{sep}digest={digest}");
        Self::ok(self.send(ep, &scope, &|c| {
            let body = std::fs::File::open(path)
                .map(|f| reqwest::blocking::Body::sized(f, size))
                .unwrap_or_else(|_| reqwest::blocking::Body::from(Vec::new()));
            c.put(&put)
                .header("Content-Type", "application/octet-stream")
                .body(body)
        })?)?;
        Ok(())
    }

    /// Puts a manifest under a tag or digest, as the exact bytes given.
    pub fn put_manifest(
        &self,
        ep: &Endpoint,
        repo: &str,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<()> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", ep.base);
        let body = bytes.to_vec();
        Self::ok(
            self.send(ep, &format!("repository:{repo}:pull,push"), &|c| {
                c.put(&url)
                    .header("Content-Type", media_type)
                    .body(body.clone())
            })?,
        )?;
        Ok(())
    }
}

/// Blobs larger than this are uploaded in chunks of this size (32 MiB;
/// `STRATA_UPLOAD_CHUNK` overrides it, for tests).
fn upload_chunk() -> u64 {
    std::env::var("STRATA_UPLOAD_CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(32 << 20)
}

fn read_limited(r: reqwest::blocking::Response, max: u64) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    r.take(max + 1)
        .read_to_end(&mut v)
        .map_err(|source| RegistryError::Io {
            op: "reading a manifest",
            source,
        })?;
    if v.len() as u64 > max {
        return Err(RegistryError::Protocol(
            "a manifest larger than 16 MiB".into(),
        ));
    }
    Ok(v)
}

/// A token server's answer (Docker's token authentication).
#[derive(serde::Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

trait JsonValue {
    fn json_value<T: serde::de::DeserializeOwned>(self) -> Result<T>;
}

impl JsonValue for reqwest::blocking::Response {
    fn json_value<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        let b = read_limited(self, 1 << 20)?;
        serde_json::from_slice(&b)
            .map_err(|e| RegistryError::Protocol(format!("the token server's answer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(s, "bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/busybox:pull");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(
            (s.as_str(), p["realm"].as_str()),
            ("basic", "Registry Realm")
        );
    }

    #[test]
    fn loopback_is_plain_http() {
        let c = Client::new(RegistryConfig::default(), Credentials::default());
        assert_eq!(c.endpoint("127.0.0.1:5000").base, "http://127.0.0.1:5000");
        assert_eq!(c.endpoint("localhost:5000").base, "http://localhost:5000");
        assert_eq!(c.endpoint("docker.io").base, "https://registry-1.docker.io");
        assert_eq!(c.endpoint("ghcr.io").base, "https://ghcr.io");
    }
}
