//! The proxy's admin protocol, spoken over its admin socket (HTTP/1.1 on a unix socket, JSON
//! bodies): the endpoints and the bodies they take and give, defined once for the proxy's
//! server and apply's client. Whole tables go in and out; the proxy is the one writer of
//! `routes.json`.

use serde::{Deserialize, Serialize};

/// `GET`: `{"status":"ok"}` while the proxy serves.
pub const HEALTHZ: &str = "/healthz";
/// `GET`: the Prometheus text exposition.
pub const METRICS: &str = "/metrics";
/// `GET`: every upstream of the current table, checked now ([`UpstreamHealth`] list).
pub const UPSTREAMS: &str = "/upstreams";
/// `GET`: the current table ([`crate::Route`] list). `PUT`: replaces it whole ([`Installed`] or
/// [`ErrorReply`]).
pub const ROUTES: &str = "/routes";

/// The largest `PUT /routes` body the proxy reads (a 10,000-route table is about 9 MB).
pub const MAX_TABLE_BYTES: usize = 32 * 1024 * 1024;

/// The answer to an accepted `PUT /routes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// How many routes the new table holds.
    pub routes: usize,
}

/// The body of every refusal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What is wrong, for people.
    pub error: String,
}

/// One upstream of the current table, as last checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamHealth {
    /// The service.
    pub service: String,
    /// What was dialed.
    pub upstream: String,
    /// Whether a connection could be opened.
    pub healthy: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When (seconds since the Unix epoch).
    pub checked_at: u64,
    /// How long the connection took, in milliseconds.
    pub connect_ms: u64,
}
