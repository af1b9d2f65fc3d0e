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
    /// tailscaled is rate-limited by the ACME server (429); try again after the delay.
    #[error("LocalAPI {path}: rate limited (429), retry after {retry_after:?}")]
    RateLimited {
        /// The endpoint.
        path: String,
        /// The `Retry-After` delay, when given in seconds.
        retry_after: Option<Duration>,
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

/// A LocalAPI answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A certificate and its key, as PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPair {
    /// The private key.
    pub key_pem: String,
    /// The leaf certificate and its chain.
    pub chain_pem: String,
}

/// `Retry-After` as seconds (an HTTP date is not worth a date parser here: it gives `None`,
/// and the caller backs off on its own).
fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
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
        let r = self.request("GET", path, &[], None)?;
        Ok((r.status, r.body))
    }

    /// Any method on an endpoint under `/localapi/v0/`, with extra headers and a body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Reply, LocalApiError> {
        let unreachable = |e: std::io::Error| LocalApiError::Unreachable {
            socket: self.socket.display().to_string(),
            message: e.to_string(),
        };
        let mut s = UnixStream::connect(&self.socket).map_err(unreachable)?;
        s.set_read_timeout(Some(Duration::from_secs(TIMEOUT_SEC))).map_err(unreachable)?;
        s.set_write_timeout(Some(Duration::from_secs(TIMEOUT_SEC))).map_err(unreachable)?;
        // HTTP/1.1 with Connection: close: the body ends at EOF (or is chunked).
        let mut req = format!(
            "{method} /localapi/v0/{path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        req.push_str("\r\n");
        let mut out = req.into_bytes();
        out.extend_from_slice(body.unwrap_or_default());
        s.write_all(&out).map_err(unreachable)?;
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
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
        let body = &raw[head_end + 4..];
        let body = if chunked {
            decode_chunked(body).ok_or_else(|| malformed("bad chunked body"))?
        } else {
            body.to_vec()
        };
        Ok(Reply { status, headers, body })
    }

    /// A certificate for a name from tailscaled (`cert/<domain>?type=pair`): the key PEM and
    /// the chain PEM. tailscaled renews it itself; `min_validity` (a Go duration such as
    /// `720h`) makes it renew first if the current one expires sooner. A 429 becomes
    /// [`LocalApiError::RateLimited`] with the `Retry-After` delay.
    pub fn cert_pair(
        &self,
        domain: &str,
        min_validity: Option<&str>,
    ) -> Result<CertPair, LocalApiError> {
        let mut path = format!("cert/{domain}?type=pair");
        if let Some(v) = min_validity {
            path.push_str(&format!("&min_validity={v}"));
        }
        let r = self.request("GET", &path, &[], None)?;
        if r.status == 429 {
            let retry_after = r.header("retry-after").and_then(parse_retry_after);
            return Err(LocalApiError::RateLimited { path, retry_after });
        }
        if !(200..300).contains(&r.status) {
            return Err(LocalApiError::Status {
                path,
                status: r.status,
                body: String::from_utf8_lossy(&r.body).trim().to_string(),
            });
        }
        let text = String::from_utf8(r.body).map_err(|_| LocalApiError::Malformed {
            path: path.clone(),
            message: "not UTF-8 PEM".into(),
        })?;
        // The key PEM comes first, then the chain; split where the key's block ends.
        let split = text.find("--\n--").map(|i| i + 3).ok_or_else(|| LocalApiError::Malformed {
            path: path.clone(),
            message: "no key PEM followed by a certificate PEM".into(),
        })?;
        let (key, chain) = text.split_at(split);
        if !key.contains("PRIVATE KEY") || !chain.contains("CERTIFICATE") {
            return Err(LocalApiError::Malformed {
                path,
                message: "expected the key PEM first, then the certificate chain".into(),
            });
        }
        Ok(CertPair { key_pem: key.to_string(), chain_pem: chain.to_string() })
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
