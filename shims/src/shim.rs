//! The one trait every hostname-continuity backend implements (design section 3), and the small
//! input type they share. Backends know nothing of the engine or the proxy: what they are given
//! is here.

use std::net::IpAddr;

/// One service, as a shim sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShimService {
    /// `host/name`, for messages.
    pub service: String,
    /// The name clients already use (`jellyfin.tail1234.ts.net`), lower case, no trailing dot.
    pub legacy_name: String,
    /// New names the service also answers to.
    pub new_names: Vec<String>,
    /// The addresses of the node the proxy runs on (its tailnet IPv4 and IPv6).
    pub proxy_addrs: Vec<IpAddr>,
    /// The service is public (Funnel).
    pub funnel: bool,
}

impl ShimService {
    /// The first label of the legacy name (`jellyfin`): the old node's and the Service's name.
    pub fn label(&self) -> &str {
        self.legacy_name.split('.').next().unwrap_or(&self.legacy_name)
    }
}

/// What `verify` found, by looking at the real effect (a DNS answer, the resolver's view of a
/// hosts file, the control plane), never at the shim's own bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The old name leads to the proxy.
    Holds,
    /// It does not, and why.
    Missing(String),
}

impl Verification {
    /// Whether the effect holds.
    pub fn holds(&self) -> bool {
        matches!(self, Verification::Holds)
    }
}

/// Why a shim operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A file exists but is not in the expected format (it is left as it is).
    #[error("{path}: {message}; left unchanged")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The shim cannot serve this service, and why (for example Funnel on a Tailscale Service).
    #[error("{service}: {reason}")]
    Refused {
        /// The service.
        service: String,
        /// Why.
        reason: String,
    },
    /// A command or an API answered with an error.
    #[error("{what}: {message}")]
    External {
        /// The command or endpoint.
        what: String,
        /// What it said.
        message: String,
    },
    /// The LocalAPI failed.
    #[error(transparent)]
    LocalApi(#[from] tailshift_tailscale::LocalApiError),
    /// A records file is not in the records format (it is left as it is).
    #[error(transparent)]
    Records(#[from] tailshift_tailscale::records::RecordsError),
    /// The admin API failed.
    #[error(transparent)]
    AdminApi(#[from] tailshift_tailscale::AdminApiError),
}

/// A hostname-continuity backend. Every operation is idempotent: repeating it after a crash at
/// any point converges to the same state. `prepare` runs before the legacy node stops,
/// `complete` after it stopped; `unprepare` and `uncomplete` are their inverses.
pub trait Shim {
    /// The backend's name in `migrate.toml` (`split-dns`, `headscale`, ...).
    fn kind(&self) -> &'static str;
    /// What it will do for a service, in words, for the plan.
    fn describe(&self, s: &ShimService) -> Vec<String>;
    /// After a rollback started the legacy node again: whether it came back under its own name
    /// (a node whose name is still held, by a Service or a stale device, registers as
    /// `name-1`). Where the backend cannot tell, it holds.
    fn verify_restored(&self, _: &ShimService) -> Result<Verification, ShimError> {
        Ok(Verification::Holds)
    }
    /// What must hold before a wave uses it at all (a daemon new enough, a file writable), checked
    /// in pre-flight, before anything changes. By default nothing.
    fn preflight(&self) -> Result<(), ShimError> {
        Ok(())
    }
    /// Before the legacy node stops.
    fn prepare(&self, s: &ShimService) -> Result<(), ShimError>;
    /// After the legacy node stopped.
    fn complete(&self, s: &ShimService) -> Result<(), ShimError>;
    /// Checks the real effect.
    fn verify(&self, s: &ShimService) -> Result<Verification, ShimError>;
    /// Undoes `complete` (before the legacy node starts again).
    fn uncomplete(&self, s: &ShimService) -> Result<(), ShimError>;
    /// Undoes `prepare`.
    fn unprepare(&self, s: &ShimService) -> Result<(), ShimError>;
}
