//! The proxy's admin socket, as the engine uses it: whole route tables in and out (the proxy is
//! the one writer of `routes.json`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use tailshift_routes::{Route, admin};

fn request(
    sock: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut s = UnixStream::connect(sock)
        .map_err(|e| anyhow::anyhow!("the proxy's admin socket {}: {e}", sock.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    // The admin socket answers with Content-Length bodies (hyper, full bodies).
    Ok((status, rest.to_string()))
}

/// Whether the proxy answers.
pub fn healthy(sock: &Path) -> anyhow::Result<()> {
    let (status, body) = request(sock, "GET", admin::HEALTHZ, None)?;
    if status != 200 {
        anyhow::bail!("the proxy's admin socket {} answered {status}: {body}", sock.display());
    }
    Ok(())
}

/// The proxy's current table.
pub fn routes(sock: &Path) -> anyhow::Result<Vec<Route>> {
    let (status, body) = request(sock, "GET", admin::ROUTES, None)?;
    if status != 200 {
        anyhow::bail!("GET /routes answered {status}: {body}");
    }
    Ok(serde_json::from_str(&body)?)
}

/// Replaces the whole table.
pub fn put_routes(sock: &Path, routes: &[Route]) -> anyhow::Result<()> {
    let body = serde_json::to_string(routes)?;
    let (status, answer) = request(sock, "PUT", admin::ROUTES, Some(&body))?;
    if status != 200 {
        anyhow::bail!("the proxy refused the table ({status}): {}", answer.trim());
    }
    Ok(())
}
