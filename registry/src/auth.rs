//! Registry credentials, where docker keeps them: `~/.docker/config.json` (`$DOCKER_CONFIG`),
//! with `auths` entries (base64 `user:password`) and credential helpers
//! (`credHelpers` per host, `credsStore` for all) run as `docker-credential-NAME get`.

use base64::Engine as _;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The config file's JSON (empty when there is none).
    file: serde_json::Value,
    /// Extra entries (tests, `--creds`): host → (user, password).
    extra: BTreeMap<String, (String, String)>,
}

/// The docker config file: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
pub fn config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => PathBuf::from(d).join("config.json"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".docker/config.json"),
    }
}

/// The keys docker uses for a host in `auths` (docker.io's historic URL included).
fn keys(host: &str) -> Vec<String> {
    let mut v = vec![
        host.to_string(),
        format!("https://{host}"),
        format!("http://{host}"),
    ];
    if host == "docker.io" {
        v.push("https://index.docker.io/v1/".into());
        v.push("index.docker.io".into());
    }
    v
}

impl Credentials {
    pub fn load() -> Credentials {
        let file = std::fs::read(config_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        Credentials {
            file,
            extra: BTreeMap::new(),
        }
    }

    pub fn with(mut self, host: &str, user: &str, password: &str) -> Self {
        self.extra
            .insert(host.to_string(), (user.to_string(), password.to_string()));
        self
    }

    /// The user name and password for `host`, if any are known.
    pub fn get(&self, host: &str) -> Option<(String, String)> {
        if let Some(c) = self.extra.get(host) {
            return Some(c.clone());
        }
        let helper = self.file["credHelpers"][host]
            .as_str()
            .or_else(|| self.file["credsStore"].as_str());
        if let Some(h) = helper
            && let Some(c) = run_helper(h, host)
        {
            return Some(c);
        }
        for k in keys(host) {
            let a = &self.file["auths"][&k];
            if let Some(enc) = a["auth"].as_str()
                && let Ok(dec) = base64::engine::general_purpose::STANDARD.decode(enc)
                && let Some((u, p)) = String::from_utf8_lossy(&dec).split_once(':')
            {
                return Some((u.to_string(), p.to_string()));
            }
        }
        None
    }
}

fn run_helper(name: &str, host: &str) -> Option<(String, String)> {
    let mut c = Command::new(format!("docker-credential-{name}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = if host == "docker.io" {
        "https://index.docker.io/v1/"
    } else {
        host
    };
    c.stdin.take()?.write_all(server.as_bytes()).ok()?;
    let out = c.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some((
        v["Username"].as_str()?.to_string(),
        v["Secret"].as_str()?.to_string(),
    ))
}

/// `strata login`: stores `user:password` for `host` in the docker config file.
pub fn store_login(host: &str, user: &str, password: &str) -> std::io::Result<PathBuf> {
    edit(|v| {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        v["auths"][host] = serde_json::json!({ "auth": auth });
    })
}

/// `strata logout`: removes what the config file holds for `host`.
pub fn remove_login(host: &str) -> std::io::Result<PathBuf> {
    edit(|v| {
        if let Some(a) = v["auths"].as_object_mut() {
            for k in keys(host) {
                a.remove(&k);
            }
        }
    })
}

fn edit(f: impl FnOnce(&mut serde_json::Value)) -> std::io::Result<PathBuf> {
    let path = config_path();
    let mut v: serde_json::Value = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    if !v.is_object() {
        v = serde_json::json!({});
    }
    if !v["auths"].is_object() {
        v["auths"] = serde_json::json!({});
    }
    f(&mut v);
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = path.with_extension("json.tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&serde_json::to_vec_pretty(&v)?)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_entries_decode() {
        let c = Credentials {
            file: serde_json::json!({"auths": {"https://index.docker.io/v1/": {"auth": "dTpw"}, "reg:5000": {"auth": "YWxpY2U6czNjcjN0"}}}),
            extra: BTreeMap::new(),
        };
        assert_eq!(c.get("docker.io"), Some(("u".into(), "p".into())));
        assert_eq!(c.get("reg:5000"), Some(("alice".into(), "s3cr3t".into())));
        assert_eq!(c.get("other"), None);
    }
}
