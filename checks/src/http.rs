//! The HTTP check: a service reached through its old name, the way its users reach it. The
//! name resolved ([`crate::resolve`]), HTTPS to each address in turn with the name as SNI and
//! Host, the certificate verified ([`crate::client_config`]). The caller compares the answer's
//! status with the baseline it took before anything moved.

use crate::{CheckConfig, ResolveError, TrustError, client_config, resolve};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;

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
    /// No answer (resolution, trust, connection, TLS, timeout), and why.
    Error(CheckError),
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

/// Why a check got no HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The name did not resolve.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The configured CA file is not usable.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The name resolved to no address at all.
    #[error("{name}: no address")]
    NoAddress {
        /// The name.
        name: String,
    },
    /// The name is not a valid TLS server name.
    #[error("{name}: not a TLS server name: {reason}")]
    ServerName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Connecting, the TLS handshake, writing or reading failed (or timed out).
    #[error("{addr}: {reason}")]
    Io {
        /// The address tried.
        addr: SocketAddr,
        /// What failed.
        reason: String,
    },
    /// The answer was not HTTP.
    #[error("{addr}: no HTTP answer")]
    NotHttp {
        /// The address tried.
        addr: SocketAddr,
    },
}

/// GETs `path` from `name` over HTTPS.
pub fn check(cfg: &CheckConfig, name: &str, path: &str) -> Outcome {
    check_with(cfg, name, path, &[])
}

/// The same, with extra request headers (`Name: value` lines, the check's credentials). Every
/// address of the name is tried in turn; the first HTTP answer is the outcome, else the last
/// address's error.
pub fn check_with(cfg: &CheckConfig, name: &str, path: &str, headers: &[String]) -> Outcome {
    let attempt = || -> Result<Outcome, CheckError> {
        let addrs = resolve(cfg, name)?;
        let tls = client_config(cfg)?;
        let server = rustls_pki_types::ServerName::try_from(name.to_string())
            .map_err(|e| CheckError::ServerName { name: name.into(), reason: e.to_string() })?;
        let mut last = CheckError::NoAddress { name: name.into() };
        for addr in addrs {
            let request = Request { cfg, name, path, headers, server: server.clone() };
            match request.send(&tls, addr) {
                Ok(o) => return Ok(o),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    attempt().unwrap_or_else(Outcome::Error)
}

/// One GET, to one address.
struct Request<'a> {
    cfg: &'a CheckConfig,
    name: &'a str,
    path: &'a str,
    headers: &'a [String],
    server: rustls_pki_types::ServerName<'static>,
}

impl Request<'_> {
    fn send(self, tls: &Arc<rustls::ClientConfig>, addr: IpAddr) -> Result<Outcome, CheckError> {
        let sa = SocketAddr::new(addr, self.cfg.port);
        let io = |e: &dyn std::fmt::Display| CheckError::Io { addr: sa, reason: e.to_string() };
        let timeout = self.cfg.timeout();
        let tcp = TcpStream::connect_timeout(&sa, timeout).map_err(|e| io(&e))?;
        tcp.set_read_timeout(Some(timeout)).map_err(|e| io(&e))?;
        tcp.set_write_timeout(Some(timeout)).map_err(|e| io(&e))?;
        let conn = rustls::ClientConnection::new(tls.clone(), self.server).map_err(|e| io(&e))?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        let extra: String = self.headers.iter().map(|h| format!("{}\r\n", h.trim())).collect();
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tailshift-check\r\n{extra}Connection: close\r\n\r\n",
            self.path, self.name
        );
        s.write_all(req.as_bytes()).map_err(|e| io(&e))?;
        let head = read_head(&mut s).map_err(|e| io(&e))?;
        let text = String::from_utf8_lossy(&head);
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or(CheckError::NotHttp { addr: sa })?;
        let location = text.lines().find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim().to_string())
        });
        Ok(Outcome::Status { code, addr, location })
    }
}

/// The response head, up to its blank line (at most 64 KiB; less if the peer closes first).
fn read_head(s: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() <= 64 * 1024 {
        match s.read(&mut byte)? {
            1 => head.push(byte[0]),
            _ => break,
        }
    }
    Ok(head)
}
