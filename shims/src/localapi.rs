//! A client for tailscaled's LocalAPI: HTTP over its unix socket, with the Host header the
//! daemon requires (`local-tailscaled.sock`; `reference/tailscale.md` section 9).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Linux default socket.
pub const DEFAULT_SOCKET: &str = "/var/run/tailscale/tailscaled.sock";
/// The only Host the LocalAPI accepts (besides none).
const HOST: &str = "local-tailscaled.sock";
/// How long a LocalAPI call may take.
const TIMEOUT_SEC: u64 = 10;

/// Why a LocalAPI call failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalApiError {
    /// The socket cannot be reached.
    #[error("cannot reach the LocalAPI at {socket}: {message}")]
    Unreachable {
        /// The socket path.
        socket: String,
        /// Why.
        message: String,
    },
    /// The daemon answered with an error status.
    #[error("LocalAPI {path} answered {status}: {body}")]
    Status {
        /// The endpoint.
        path: String,
        /// HTTP status.
        status: u16,
        /// The body (trimmed).
        body: String,
    },
    /// The answer does not have the documented shape.
    #[error("LocalAPI {path}: unexpected answer: {message}")]
    Malformed {
        /// The endpoint.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// A LocalAPI endpoint on a unix socket.
#[derive(Clone, Debug)]
pub struct LocalApi {
    socket: PathBuf,
}

fn decode_chunked(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

impl LocalApi {
    /// A client for the socket at `socket`.
    pub fn new(socket: impl AsRef<Path>) -> Self {
        LocalApi { socket: socket.as_ref().to_path_buf() }
    }

    /// GET an endpoint under `/localapi/v0/`; returns the status and body.
    pub fn get(&self, path: &str) -> Result<(u16, Vec<u8>), LocalApiError> {
        let unreachable = |e: std::io::Error| LocalApiError::Unreachable {
            socket: self.socket.display().to_string(),
            message: e.to_string(),
        };
        let mut s = UnixStream::connect(&self.socket).map_err(unreachable)?;
        s.set_read_timeout(Some(Duration::from_secs(TIMEOUT_SEC))).map_err(unreachable)?;
        s.set_write_timeout(Some(Duration::from_secs(TIMEOUT_SEC))).map_err(unreachable)?;
        // HTTP/1.1 with Connection: close: the body ends at EOF (or is chunked).
        let req = format!(
            "GET /localapi/v0/{path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).map_err(unreachable)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(unreachable)?;
        let malformed =
            |m: &str| LocalApiError::Malformed { path: path.to_string(), message: m.to_string() };
        let head_end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| malformed("no end of headers"))?;
        let head = std::str::from_utf8(&raw[..head_end])
            .map_err(|_| malformed("headers are not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| malformed("no status line"))?;
        let chunked = lines.any(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("transfer-encoding:") && l.contains("chunked")
        });
        let body = &raw[head_end + 4..];
        let body = if chunked {
            decode_chunked(body).ok_or_else(|| malformed("bad chunked body"))?
        } else {
            body.to_vec()
        };
        Ok((status, body))
    }

    /// GET a JSON endpoint; a non-2xx status is an error.
    pub fn get_json(&self, path: &str) -> Result<serde_json::Value, LocalApiError> {
        let (status, body) = self.get(path)?;
        if !(200..300).contains(&status) {
            return Err(LocalApiError::Status {
                path: path.to_string(),
                status,
                body: String::from_utf8_lossy(&body).trim().to_string(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| LocalApiError::Malformed {
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    /// Who is behind a tailnet address (`whois?addr=`); `None` for an address that is not a
    /// tailnet peer (404). `svc_name` asks for the capabilities granted toward a Service.
    pub fn whois(
        &self,
        addr: &str,
        svc_name: Option<&str>,
    ) -> Result<Option<serde_json::Value>, LocalApiError> {
        let enc = |s: &str| {
            s.replace('%', "%25").replace(':', "%3A").replace('[', "%5B").replace(']', "%5D")
        };
        let mut path = format!("whois?addr={}", enc(addr));
        if let Some(svc) = svc_name {
            path.push_str(&format!("&svc_name={}", enc(svc)));
        }
        let (status, body) = self.get(&path)?;
        match status {
            404 => Ok(None),
            200..=299 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| LocalApiError::Malformed { path, message: e.to_string() }),
            _ => Err(LocalApiError::Status {
                path,
                status,
                body: String::from_utf8_lossy(&body).trim().to_string(),
            }),
        }
    }

    /// The tailnet's MagicDNS suffix (`tail1234.ts.net`), from `status`.
    pub fn magic_dns_suffix(&self) -> Result<String, LocalApiError> {
        let st = self.get_json("status?peers=false")?;
        st.pointer("/CurrentTailnet/MagicDNSSuffix")
            .or_else(|| st.get("MagicDNSSuffix"))
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_end_matches('.').to_string())
            .ok_or_else(|| LocalApiError::Malformed {
                path: "status".into(),
                message:
                    "no CurrentTailnet.MagicDNSSuffix (is MagicDNS on, and is the node logged in?)"
                        .into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(decode_chunked(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(), b"abcde");
        assert!(decode_chunked(b"zz\r\n").is_none());
    }

    #[test]
    fn a_missing_socket_is_unreachable() {
        let e = LocalApi::new("/nonexistent/tailscaled.sock").magic_dns_suffix().unwrap_err();
        assert!(matches!(e, LocalApiError::Unreachable { .. }), "{e}");
    }
}
