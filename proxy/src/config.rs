//! The proxy's own TOML (never the routes: those live in `routes.json`, written by the proxy).

use crate::error::ProxyError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One listener.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ListenerConfig {
    /// A unix socket tailscaled's serve (or a Tailscale Service) forwards to. Only here are
    /// tailscaled's `Tailscale-*` headers believed; routes are chosen by `X-Forwarded-Host`.
    Trusted {
        /// Socket path.
        path: PathBuf,
        /// File mode of the socket (tailscaled must be able to connect).
        #[serde(default = "default_trusted_mode")]
        mode: u32,
    },
    /// One trusted unix socket per Tailscale Service, `<dir>/<label>.sock`, for each route
    /// (`label`: the first label of its legacy name; `svc:<label>`): created and removed as
    /// routes come and go. The socket names the route, and whois asks for that Service's grants.
    Services {
        /// The directory of the sockets.
        dir: PathBuf,
        /// File mode of each socket (tailscaled must be able to connect).
        #[serde(default = "default_trusted_mode")]
        mode: u32,
    },
    /// Plain HTTP on TCP: serves `plaintext` routes by Host, redirects HTTPS routes (308).
    Http {
        /// Address to bind.
        addr: String,
    },
    /// HTTPS on TCP: SNI picks the certificate (from the development CA in the state
    /// directory); serves HTTPS routes, HTTP/2 and HTTP/1.1 by ALPN.
    Https {
        /// Address to bind.
        addr: String,
    },
}

fn default_trusted_mode() -> u32 {
    0o660
}

/// The split-DNS responder the proxy hosts (the `split-dns` shim writes its records files).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// UDP and TCP address to answer on (`100.64.0.1:53`, or a high port on loopback).
    pub listen: std::net::SocketAddr,
    /// The zone it is authoritative for (`home.example.com`); anything else is refused.
    pub zone: String,
    /// Records files (JSON, headscale's format), earliest first: the first naming a name wins
    /// (the moved names' file, then a legacy one). Re-read when they change.
    pub records: Vec<PathBuf>,
    /// TTL of the answers, in seconds (short: names move during a migration).
    #[serde(default = "default_dns_ttl")]
    pub ttl: u32,
}

fn default_dns_ttl() -> u32 {
    30
}

/// The proxy's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Where `routes.json` lives (and the admin socket by default).
    pub state_dir: PathBuf,
    /// The admin socket (mode 0600); default `<state_dir>/admin.sock`.
    #[serde(default)]
    pub admin_socket: Option<PathBuf>,
    /// Listeners.
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    /// A TCP address serving `/metrics` for Prometheus (pick one clear of every upstream port
    /// and of tsnsrv's own 9099+).
    #[serde(default)]
    pub metrics_addr: Option<String>,
    /// tailscaled's LocalAPI socket, for whois (full identity headers). Without it, identity
    /// comes from the `Tailscale-User-*` headers of tailscaled's serve only.
    #[serde(default)]
    pub localapi_socket: Option<PathBuf>,
    /// The tailnet's address ranges: with `localapi_socket`, a peer of the HTTP or HTTPS
    /// listeners inside them is looked up by whois (identity headers, access rules, auth
    /// bypass, as on the trusted sockets); peers outside get no identity. headscale lets them
    /// be changed.
    #[serde(default = "default_tailnet_ranges")]
    pub tailnet_ranges: Vec<String>,
    /// Certificates as `<name>.crt` (full chain) and `<name>.key` PEM files, re-read when they
    /// change. Without it, a development CA in the state directory issues them.
    #[serde(default)]
    pub cert_dir: Option<PathBuf>,
    /// Take HTTPS certificates from tailscaled's LocalAPI (`localapi_socket`): the node's and
    /// its Services' names. Exclusive with `cert_dir`.
    #[serde(default)]
    pub localapi_certificates: bool,
    /// The certificate name for TLS clients that send no SNI (those connecting by address).
    /// Without it they get no certificate, as with tsnsrv.
    #[serde(default)]
    pub fallback_server_name: Option<String>,
    /// How long a client may take to send request headers (every listener; routes are not
    /// known before the headers are read).
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Connections each listener holds at most (the `services` listener: all its sockets
    /// together). At the cap, the connection idle longest is closed for a new one; when none
    /// is idle, new connections wait in the kernel's accept queue until one closes or idles.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How long the proxy waits for more of a request body without a byte from the client
    /// before it fails the request and closes the connection (inactivity, not total time: a
    /// long upload that keeps sending is never cut; 0: off).
    #[serde(default = "default_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// Bytes per second a client must take of a response while the proxy has bytes waiting
    /// for it, over each `send_rate_window_ms`, or it is cut off (0: off). While the proxy has
    /// nothing unsent (server-sent events between events), no rate applies.
    #[serde(default = "default_min_send_rate")]
    pub min_send_rate: u64,
    /// The window `min_send_rate` is measured over.
    #[serde(default = "default_send_rate_window_ms")]
    pub send_rate_window_ms: u64,
    /// How long in-flight requests may finish after a stop signal.
    #[serde(default = "default_drain_ms")]
    pub drain_ms: u64,
    /// Extra CA certificates (PEM) trusted toward HTTPS upstreams and auth services, besides
    /// the system's roots.
    #[serde(default)]
    pub upstream_ca: Option<PathBuf>,
    /// A DNS server (`ip:port`) resolving upstream and auth names instead of the system
    /// resolver. Without it, names in the zone of the hosted responder (`[dns]`) resolve through
    /// that responder, and others through the system.
    #[serde(default)]
    pub upstream_dns: Option<std::net::SocketAddr>,
    /// Connect timeout toward upstreams when a route sets none.
    #[serde(default = "default_connect_timeout_ms")]
    pub upstream_connect_timeout_ms: u64,
    /// How long an idle pooled upstream connection is kept.
    #[serde(default = "default_idle_timeout_ms")]
    pub upstream_idle_timeout_ms: u64,
    /// At most this many idle connections are pooled per upstream.
    #[serde(default = "default_max_idle")]
    pub upstream_max_idle_per_host: usize,
    /// Seconds between active health checks of every upstream (one timer for all; 0: off).
    #[serde(default = "default_health_interval_s")]
    pub health_interval_s: u64,
    /// The split-DNS responder (optional).
    #[serde(default)]
    pub dns: Option<DnsConfig>,
    /// Write tsnsrv's `served ...` access-log line per request.
    #[serde(default = "default_true")]
    pub access_log: bool,
}

fn default_tailnet_ranges() -> Vec<String> {
    vec!["100.64.0.0/10".into(), "fd7a:115c:a1e0::/48".into()]
}

/// An address range `addr/bits`.
pub fn parse_range(r: &str) -> Option<(std::net::IpAddr, u8)> {
    let (a, b) = r.split_once('/')?;
    let ip: std::net::IpAddr = a.parse().ok()?;
    let bits: u8 = b.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

/// Whether `ip` lies in `range`.
pub fn in_range(ip: std::net::IpAddr, (net, bits): (std::net::IpAddr, u8)) -> bool {
    use std::net::IpAddr;
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn default_header_read_timeout_ms() -> u64 {
    10_000
}

/// Two descriptors per proxied connection: four listeners at the cap stay within the
/// `LimitNOFILE = 65536` of MIGRATION.md's unit.
fn default_max_connections() -> usize {
    4096
}

/// Longer than a lossy link's retransmission stalls; nginx's `client_body_timeout` is 60 s,
/// Apache's `RequestReadTimeout` body stage 20 s.
fn default_body_read_timeout_ms() -> u64 {
    30_000
}

/// 1 KiB/s: below any working link (2G's GPRS moves several KB/s), so only a client that has
/// all but stopped reading is cut.
fn default_min_send_rate() -> u64 {
    1024
}

fn default_send_rate_window_ms() -> u64 {
    30_000
}

fn default_drain_ms() -> u64 {
    10_000
}

fn default_connect_timeout_ms() -> u64 {
    10_000
}

/// Go's `http.DefaultTransport` keeps idle connections 90 s, as tsnsrv did.
fn default_idle_timeout_ms() -> u64 {
    90_000
}

fn default_max_idle() -> usize {
    32
}

fn default_health_interval_s() -> u64 {
    30
}

fn default_true() -> bool {
    true
}

impl ProxyConfig {
    /// Reads and validates a config file; errors name the file, line and column.
    pub fn load(path: &Path) -> crate::error::Result<ProxyConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| ProxyError::file(path, e))?;
        let cfg: ProxyConfig = tailshift_util::parse_toml(path, &text)?;
        if let Some(d) = &cfg.dns {
            if d.zone.trim().trim_matches('.').is_empty() {
                return Err(ProxyError::file(path, "[dns] zone is empty"));
            }
            if d.records.is_empty() {
                return Err(ProxyError::file(
                    path,
                    "[dns] records lists no file: the responder would answer nothing",
                ));
            }
        }
        if cfg.listeners.is_empty() && cfg.dns.is_none() {
            return Err(ProxyError::file(path, "no [[listener]]: the proxy would serve nothing"));
        }
        if cfg.localapi_certificates && cfg.cert_dir.is_some() {
            return Err(ProxyError::file(
                path,
                "`localapi_certificates` and `cert_dir` are two certificate sources; choose one",
            ));
        }
        // `upstream_ca` must exist, unless it is the development CA the proxy creates at start.
        if let Some(ca) = &cfg.upstream_ca
            && !ca.exists()
            && *ca != cfg.state_dir.join("dev-ca.crt")
        {
            return Err(ProxyError::file(
                path,
                format!("upstream_ca: {} does not exist", ca.display()),
            ));
        }
        if cfg.max_connections == 0 {
            return Err(ProxyError::file(
                path,
                format!(
                    "max_connections = 0 would refuse every connection (the default is {})",
                    default_max_connections()
                ),
            ));
        }
        if cfg.min_send_rate > 0 && cfg.send_rate_window_ms < 100 {
            return Err(ProxyError::file(
                path,
                format!(
                    "send_rate_window_ms = {} is too short to measure a rate over (at least 100; min_send_rate = 0 turns the rule off)",
                    cfg.send_rate_window_ms
                ),
            ));
        }
        for r in &cfg.tailnet_ranges {
            if parse_range(r).is_none() {
                return Err(ProxyError::file(
                    path,
                    format!(
                        "tailnet_ranges: {r:?} is not an address range such as \"100.64.0.0/10\""
                    ),
                ));
            }
        }
        if cfg.localapi_certificates && cfg.localapi_socket.is_none() {
            return Err(ProxyError::file(
                path,
                format!(
                    "`localapi_certificates = true` needs `localapi_socket` (tailscaled's socket, usually {})",
                    tailshift_tailscale::localapi::DEFAULT_SOCKET
                ),
            ));
        }
        for l in &cfg.listeners {
            if let ListenerConfig::Http { addr } | ListenerConfig::Https { addr } = l {
                addr.parse::<std::net::SocketAddr>().map_err(|e| {
                    ProxyError::file(path, format!("listener address {addr:?}: {e}"))
                })?;
            }
        }
        Ok(cfg)
    }

    /// The admin socket path.
    pub fn admin_socket(&self) -> PathBuf {
        self.admin_socket.clone().unwrap_or_else(|| self.state_dir.join("admin.sock"))
    }

    /// The route table file.
    pub fn routes_file(&self) -> PathBuf {
        self.state_dir.join("routes.json")
    }
}
