//! The route: everything the proxy needs to serve one service, as the plan sealed it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A name the route answers for, optionally under a path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteHost {
    /// DNS name (lower case).
    pub name: String,
    /// Path prefix the route is mounted at (`/` for the whole name); longest mount wins.
    pub mount: String,
}

/// Which listener serves the route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Listen {
    /// TLS with SNI.
    Https {
        /// Port.
        port: u16,
    },
    /// Plain HTTP (tsnsrv's `plaintext`).
    Plaintext {
        /// Port.
        port: u16,
    },
}

/// Which Host header the upstream sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostHeader {
    /// The client's Host (tsnsrv's `recommendedProxyHeaders`, its CLI default).
    Keep,
    /// The upstream URL's host (the fork's `tsnsrv-all` YAML mode).
    Upstream,
}

/// Where requests go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Destination URL: scheme (`http` or `https`), host (the Host the upstream sees when
    /// the client's is not kept), port, base path. Parsed once, when the route is read.
    pub url: url::Url,
    /// Always dial this unix socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix: Option<String>,
    /// Always dial this TCP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_addr: Option<String>,
}

/// Forward auth, as the fork does it (with its bugs fixed by the proxy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuth {
    /// The auth service's URL (its path is ignored, as the fork ignores it).
    pub url: url::Url,
    /// The endpoint path.
    pub path: String,
    /// Request timeout.
    pub timeout_ms: u64,
    /// Response headers copied to the upstream request (names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy_headers: Vec<String>,
    /// Skip certificate verification toward the auth service.
    #[serde(default)]
    pub insecure_https: bool,
    /// Identified tailnet users skip auth (never Funnel, never tagged devices).
    #[serde(default)]
    pub bypass_for_tailnet: bool,
}

/// One allow rule: a request passes if any rule matches (no rules: every tailnet peer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum AccessRule {
    /// A user login (`alice@example.com`).
    User(String),
    /// A group from the whois capabilities.
    Group(String),
    /// A tag of the source node (`tag:admin`).
    Tag(String),
}

/// Identity lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Whois {
    /// Send `X-Tailscale-*` identity headers.
    pub enabled: bool,
    /// Deadline of each lookup (0: none).
    pub timeout_ms: u64,
}

/// Upstream timeouts (tsnsrv had none; `None` keeps that).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Connect timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<u64>,
    /// Time to the upstream's response headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_ms: Option<u64>,
}

/// One service's route.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The service (`host/name`).
    pub service: String,
    /// Names and mounts.
    pub hosts: Vec<RouteHost>,
    /// Listener.
    pub listen: Listen,
    /// Destination.
    pub upstream: Upstream,
    /// tsnsrv-style path allowlist (`/x`, `tailnet:/x`, `funnel:/x`; plain string match).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    /// Cut the matched prefix before forwarding.
    pub strip_prefix: bool,
    /// Which Host the upstream sees.
    pub host_header: HostHeader,
    /// Send X-Scheme, X-Real-Ip, X-Forwarded-Server/Port.
    pub proxy_headers: bool,
    /// Headers set on every upstream request (replacing the client's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upstream_headers: BTreeMap<String, String>,
    /// Skip upstream certificate verification.
    #[serde(default)]
    pub insecure_https: bool,
    /// Allow every cipher suite toward the upstream.
    #[serde(default)]
    pub insecure_ciphers: bool,
    /// Forward auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ForwardAuth>,
    /// Reachable through Funnel.
    pub funnel: bool,
    /// Reachable from the tailnet (false: tsnsrv's `funnelOnly`).
    pub tailnet: bool,
    /// Allow rules (empty: every tailnet peer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<AccessRule>,
    /// Identity lookup.
    pub whois: Whois,
    /// Upstream timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Answer 308 to this URL (path and query kept) instead of proxying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_to: Option<String>,
    /// The wave that added it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<usize>,
}
