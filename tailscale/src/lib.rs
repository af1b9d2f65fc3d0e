//! Clients of Tailscale's two APIs, as `../shared/reference/tailscale.md` documents them: the
//! node's LocalAPI over its unix socket ([`LocalApi`]: whois, certificates, status, serve
//! config) and the admin API of the control plane ([`admin_api::AdminApi`]: devices, Services,
//! host approval), and the records file format of `tailcfg.DNSRecord` ([`records`]). Used by the shims and by the proxy; depends on nothing of ours.

#![warn(missing_docs)]

pub mod admin_api;
pub mod localapi;
pub mod records;

pub use admin_api::AdminApiError;
pub use localapi::{CertPair, LocalApi, LocalApiError, Reply};
