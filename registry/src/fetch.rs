//! `ADD https://…`: a file fetched over HTTP(S), streamed to disk while hashed, with its
//! Last-Modified time.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;
use strata_oci::Digest;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("fetching {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("fetching {url}: the server answered {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("ADD {url}: checksum mismatch: --checksum says {want}, the content is {got}")]
    Checksum {
        url: String,
        want: String,
        got: Digest,
    },
    #[error("fetching {url} into {path}: {source}")]
    Io {
        url: String,
        path: String,
        source: std::io::Error,
    },
}

/// What was fetched.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub digest: Digest,
    pub size: u64,
    /// The Last-Modified header, as the server sent it.
    pub last_modified: Option<String>,
}

/// Fetches `url` into `dest`, verifying `checksum` (`sha256:…`) when given.
pub fn fetch(url: &str, checksum: Option<&str>, dest: &Path) -> Result<Fetched, FetchError> {
    let http = |source| FetchError::Http {
        url: url.to_string(),
        source,
    };
    let io = |source| FetchError::Io {
        url: url.to_string(),
        path: dest.display().to_string(),
        source,
    };
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(http)?;
    let mut attempt = 0;
    let mut r = loop {
        match client.get(url).send() {
            Ok(r) if r.status().is_server_error() && attempt < 3 => {}
            Ok(r) => break r,
            Err(e) if attempt < 3 && (e.is_connect() || e.is_timeout()) => {}
            Err(e) => return Err(http(e)),
        }
        attempt += 1;
        std::thread::sleep(Duration::from_millis(200 << attempt));
    };
    if !r.status().is_success() {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: r.status(),
        });
    }
    let last_modified = r
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut f = std::fs::File::create(dest).map_err(io)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut w = strata_oci::DigestWriter::new(&mut f);
    loop {
        let n = r.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n]).map_err(io)?;
    }
    let size = w.len();
    let (_, digest) = w.finish();
    f.sync_all().map_err(io)?;
    if let Some(want) = checksum
        && want != digest.as_str()
    {
        return Err(FetchError::Checksum {
            url: url.to_string(),
            want: want.to_string(),
            got: digest,
        });
    }
    Ok(Fetched {
        digest,
        size,
        last_modified,
    })
}
