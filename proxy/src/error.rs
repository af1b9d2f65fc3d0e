//! The proxy's errors: what stops it from starting, or a route table from being read or
//! written. Each names what it was about (the file, the address, the certificate).

use std::path::{Path, PathBuf};

/// Why the proxy, or one of its files, cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A file (configuration, route table, certificate, key) that cannot be read, parsed or
    /// written: the file and what is wrong with it.
    #[error("{}: {problem}", file.display())]
    File {
        /// The file.
        file: PathBuf,
        /// What is wrong, in words (line and column where the parser gave them).
        problem: String,
    },
    /// The configuration file's TOML, with its location.
    #[error(transparent)]
    Toml(#[from] tailshift_util::TomlError),
    /// A socket that cannot be bound (listener, metrics, admin, Service or DNS socket).
    #[error("bind {what}: {error}")]
    Bind {
        /// Which socket, and its address or path.
        what: String,
        /// The system's answer.
        error: std::io::Error,
    },
    /// Another system call failed (the state directory, a socket's mode).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The TLS stack refused its configuration or a key.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The development CA could not issue or load a certificate.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The trust roots for upstreams (`upstream_ca`) cannot be read.
    #[error("upstream_ca {}: {error}", file.display())]
    UpstreamCa {
        /// The `upstream_ca` file.
        file: PathBuf,
        /// Why it cannot be used.
        error: tailshift_util::trust::TrustError,
    },
    /// The system's trust roots cannot be read.
    #[error(transparent)]
    Trust(#[from] tailshift_util::trust::TrustError),
    /// The upstream DNS server cannot be used.
    #[error("DNS server {server}: {error}")]
    Dns {
        /// The server's address.
        server: std::net::SocketAddr,
        /// Why.
        error: String,
    },
    /// tailscaled's LocalAPI failed (certificates).
    #[error(transparent)]
    LocalApi(#[from] tailshift_tailscale::LocalApiError),
    /// A certificate pair from the LocalAPI that is not usable.
    #[error("certificate from the LocalAPI: {0}")]
    BadPair(String),
}

impl ProxyError {
    /// A problem with `file`.
    pub fn file(file: &Path, problem: impl std::fmt::Display) -> ProxyError {
        ProxyError::File { file: file.to_path_buf(), problem: problem.to_string() }
    }

    /// A socket that cannot be bound.
    pub fn bind(what: impl std::fmt::Display, error: std::io::Error) -> ProxyError {
        ProxyError::Bind { what: what.to_string(), error }
    }
}

/// The proxy's results.
pub type Result<T, E = ProxyError> = std::result::Result<T, E>;
