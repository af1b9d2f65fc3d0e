//! Keeps old hostnames working while services move: the continuity backends, and the Tailscale
//! clients they (and the proxy) use. This version holds the LocalAPI client; the backends arrive
//! with their issue.

#![warn(missing_docs)]

pub mod localapi;

pub use localapi::{CertPair, LocalApi, LocalApiError, Reply};
