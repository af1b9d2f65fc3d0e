//! Checks through a service's old name, the way its users reach it: the name resolved (through
//! the configured resolver, or the system's), HTTPS to that address with the name as SNI and
//! Host, the certificate verified (system roots plus the configured CA). The answer's status is
//! compared with the baseline taken before anything moved.

use super::config::CheckConfig;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// What one check saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP answer from this address.
    Status {
        /// The status code.
        code: u16,
        /// The address the name resolved to.
        addr: IpAddr,
        /// `Location`, for redirects.
        location: Option<String>,
    },
    /// No answer (resolution, connection, TLS, timeout), and why.
    Error(String),
}

impl Outcome {
    /// The status class (2 for 2xx), if there was an answer.
    pub fn class(&self) -> Option<u16> {
        match self {
            Outcome::Status { code, .. } => Some(code / 100),
            Outcome::Error(_) => None,
        }
    }
}

/// The addresses `name` resolves to, through the configured resolver or the system's.
pub(crate) fn resolve(cfg: &CheckConfig, name: &str) -> Result<Vec<IpAddr>, String> {
    match cfg.resolver {
        Some(server) => {
            match tailshift_shims::dns::query(server, name, Duration::from_millis(cfg.timeout_ms)) {
                Ok(tailshift_shims::dns::Answer::Addrs(a)) if !a.is_empty() => Ok(a),
                Ok(other) => Err(format!("{name}: {other:?} from {server}")),
                Err(e) => Err(format!("{name}: DNS {server}: {e}")),
            }
        }
        None => {
            use std::net::ToSocketAddrs;
            (name, cfg.port)
                .to_socket_addrs()
                .map(|i| i.map(|a| a.ip()).collect())
                .map_err(|e| format!("{name}: {e}"))
        }
    }
}

/// The TLS client of the checks (the proxy's trust: system roots plus the CA file), built once
/// per process: reading the system store for every check would be work done again and again.
pub(crate) fn tls_config(cfg: &CheckConfig) -> Result<Arc<rustls::ClientConfig>, String> {
    type Cached = (Option<std::path::PathBuf>, Arc<rustls::ClientConfig>);
    static CACHE: std::sync::Mutex<Option<Cached>> = std::sync::Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((ca, c)) = cache.as_ref()
        && *ca == cfg.ca_file
    {
        return Ok(c.clone());
    }
    let roots =
        tailshift_util::trust::root_store(cfg.ca_file.as_deref()).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let c = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    *cache = Some((cfg.ca_file.clone(), c.clone()));
    Ok(c)
}

/// GETs `path` from `name` over HTTPS.
pub fn check(cfg: &CheckConfig, name: &str, path: &str) -> Outcome {
    check_with(cfg, name, path, &[])
}

/// The same, with extra request headers (`Name: value` lines, the check's credentials).
pub fn check_with(cfg: &CheckConfig, name: &str, path: &str, headers: &[String]) -> Outcome {
    let addrs = match resolve(cfg, name) {
        Ok(a) => a,
        Err(e) => return Outcome::Error(e),
    };
    let tls = match tls_config(cfg) {
        Ok(t) => t,
        Err(e) => return Outcome::Error(e),
    };
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let mut last = String::from("no address");
    for addr in addrs {
        let sa = SocketAddr::new(addr, cfg.port);
        let result = (|| -> Result<Outcome, String> {
            let tcp = TcpStream::connect_timeout(&sa, timeout).map_err(|e| format!("{sa}: {e}"))?;
            tcp.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
            tcp.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
            let server = rustls_pki_types::ServerName::try_from(name.to_string())
                .map_err(|e| e.to_string())?;
            let conn =
                rustls::ClientConnection::new(tls.clone(), server).map_err(|e| e.to_string())?;
            let mut s = rustls::StreamOwned::new(conn, tcp);
            let extra: String = headers.iter().map(|h| format!("{}\r\n", h.trim())).collect();
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: {name}\r\nUser-Agent: tailshift-check\r\n{extra}Connection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes()).map_err(|e| format!("{sa}: {e}"))?;
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match s.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    Ok(_) => break,
                    Err(e) => return Err(format!("{sa}: {e}")),
                }
                if head.len() > 64 * 1024 {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&head);
            let code = text
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("{sa}: no HTTP answer"))?;
            let location = text.lines().find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                    .map(|(_, v)| v.trim().to_string())
            });
            Ok(Outcome::Status { code, addr, location })
        })();
        match result {
            Ok(o) => return o,
            Err(e) => last = e,
        }
    }
    Outcome::Error(last)
}
