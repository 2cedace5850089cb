//! `ADD https://…`: a file fetched over HTTP(S), streamed to disk while hashed, with its
//! Last-Modified time.

use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;
use strata_cache::Digest;

/// What was fetched.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub digest: Digest,
    pub size: u64,
    /// From Last-Modified (seconds since the epoch).
    pub mtime: Option<i64>,
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 7231's IMF-fixdate) as seconds since the epoch.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, mon, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|x| x == mon)? + 1;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, mi, sec] = t.as_slice() else {
        return None;
    };
    let text = format!(
        "{year}-{m:02}-{:02}T{h:02}:{mi:02}:{sec:02}Z",
        day.parse::<u32>().ok()?
    );
    crate::timefmt::parse_rfc3339(&text)
}

/// Fetches `url` into `dest`, verifying `checksum` (`sha256:…`) when given.
pub fn fetch(url: &str, checksum: Option<&str>, dest: &Path) -> Result<Fetched> {
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let mut attempt = 0;
    let mut r = loop {
        match client.get(url).send() {
            Ok(r) if r.status().is_server_error() && attempt < 3 => {}
            Ok(r) => break r,
            Err(e) if attempt < 3 && (e.is_connect() || e.is_timeout()) => {}
            Err(e) => return Err(e).with_context(|| format!("fetching {url}")),
        }
        attempt += 1;
        std::thread::sleep(Duration::from_millis(200 << attempt));
    };
    if !r.status().is_success() {
        bail!("fetching {url}: the server answered {}", r.status());
    }
    let mtime = r
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    let mut f =
        std::fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut w = strata_oci::DigestWriter::new(&mut f);
    loop {
        let n = r
            .read(&mut buf)
            .with_context(|| format!("fetching {url}"))?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n])?;
    }
    let size = w.len();
    let (_, digest) = w.finish();
    f.sync_all()?;
    if let Some(want) = checksum
        && want != digest.as_str()
    {
        bail!("ADD {url}: checksum mismatch: --checksum says {want}, the content is {digest}");
    }
    Ok(Fetched {
        digest,
        size,
        mtime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
