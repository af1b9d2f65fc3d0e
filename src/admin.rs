//! The one route table shared by the engine (`apply`) and the proxy (design section 2), and the
//! conversion from an inventory service plus a [`Placement`] to a [`Route`].
//!
//! The conversion keeps every behaviour the service had under its tsnsrv flavour, because apps
//! depend on it (Syncthing refuses a foreign Host): which Host the upstream sees, which
//! X-Forwarded headers it gets, prefix allowlist and stripping, upstream headers, TLS laxness,
//! forward auth, Funnel, whois. tsnsrv's security bugs are not carried over (the proxy fixes
//! them at request time).

// The request path that consumes routes lands with the proxy (issue 4); `migrate plan --format
// routes` already uses the conversion.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tailshift_parsers::{Service, Sourced};

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
    /// Destination URL: scheme, host (Host when not kept), port, base path.
    pub url: String,
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
    pub url: String,
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

/// Where a service lands on the one node (derived by `apply` from the plan entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Names and mounts.
    pub hosts: Vec<RouteHost>,
    /// Listener.
    pub listen: Listen,
    /// A 308 target, when the service has a new canonical URL.
    pub redirect_to: Option<String>,
    /// The wave.
    pub wave: Option<usize>,
}

/// Why a route cannot be built or a table is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// An option the route needs is unknown.
    #[error("{service}: {option} is unknown ({reason}); resolve it before routing")]
    Unknown {
        /// The service.
        service: String,
        /// The option.
        option: String,
        /// Why it is unknown.
        reason: String,
    },
    /// A value does not parse.
    #[error("{service}: {option} = {value:?}: {message}")]
    Invalid {
        /// The service.
        service: String,
        /// The option.
        option: String,
        /// The value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// Two routes claim one name and mount on one listener.
    #[error("{first} and {second} both claim {name}{mount}")]
    Conflict {
        /// The first route.
        first: String,
        /// The second route.
        second: String,
        /// The name.
        name: String,
        /// The mount.
        mount: String,
    },
}

/// Parses a Go duration (`1s`, `500ms`, `1m30s`, `1.5h`, `0`) into milliseconds.
pub fn go_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let mut total = 0.0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_end..];
    }
    Some(total.round() as u64)
}

struct Reader<'a> {
    s: &'a Service,
    id: String,
}

impl Reader<'_> {
    fn known(&self, opt: &str) -> Result<Option<&serde_json::Value>, RouteError> {
        match self.s.effective.get(opt) {
            None => Ok(None),
            Some(Sourced::Known { value, .. }) => Ok((!value.is_null()).then_some(value)),
            Some(Sourced::Unknown { reason, .. }) => Err(RouteError::Unknown {
                service: self.id.clone(),
                option: opt.into(),
                reason: reason.clone(),
            }),
        }
    }

    fn string(&self, opt: &str) -> Result<Option<String>, RouteError> {
        Ok(self.known(opt)?.and_then(|v| v.as_str()).map(str::to_string))
    }

    fn boolean(&self, opt: &str, default: bool) -> Result<bool, RouteError> {
        Ok(self.known(opt)?.and_then(|v| v.as_bool()).unwrap_or(default))
    }

    fn duration(&self, opt: &str, default_ms: u64) -> Result<u64, RouteError> {
        match self.string(opt)? {
            None => Ok(default_ms),
            Some(v) => go_duration_ms(&v).ok_or_else(|| RouteError::Invalid {
                service: self.id.clone(),
                option: opt.into(),
                value: v,
                message: "not a Go duration".into(),
            }),
        }
    }
}

/// Builds a service's route from its effective options and its placement.
pub fn route_from_service(s: &Service, p: &Placement) -> Result<Route, RouteError> {
    let id = format!("{}/{}", s.host.known().map(String::as_str).unwrap_or("?"), s.name);
    let r = Reader { s, id: id.clone() };
    let url = r.string("toURL")?.ok_or_else(|| RouteError::Invalid {
        service: id.clone(),
        option: "toURL".into(),
        value: String::new(),
        message: "missing".into(),
    })?;
    let parsed = url::Url::parse(&url).map_err(|e| RouteError::Invalid {
        service: id.clone(),
        option: "toURL".into(),
        value: url.clone(),
        message: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(RouteError::Invalid {
            service: id,
            option: "toURL".into(),
            value: url,
            message: "only http:// and https:// upstreams are proxied".into(),
        });
    }
    let prefixes: Vec<String> = r
        .known("prefixes")?
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let keep_host = r.boolean("recommendedProxyHeaders", true)?;
    let upstream_headers: BTreeMap<String, String> = r
        .known("upstreamHeaders")?
        .and_then(|v| v.as_object())
        .map(|m| {
            m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()
        })
        .unwrap_or_default();
    let auth = match r.string("authURL")? {
        None => None,
        Some(auth_url) => Some(ForwardAuth {
            url: auth_url,
            path: r.string("authPath")?.unwrap_or_else(|| "/api/authz/forward-auth".into()),
            timeout_ms: r.duration("authTimeout", 5_000)?,
            copy_headers: r
                .known("authCopyHeaders")?
                .and_then(|v| v.as_object())
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
            insecure_https: r.boolean("authInsecureHTTPS", false)?,
            bypass_for_tailnet: r.boolean("authBypassForTailnet", false)?,
        }),
    };
    let suppress_whois = r.boolean("suppressWhois", false)?;
    Ok(Route {
        service: id,
        hosts: p.hosts.clone(),
        listen: p.listen,
        upstream: Upstream {
            url,
            unix: r.string("upstreamUnixAddr")?,
            tcp_addr: r.string("upstreamTCPAddr")?,
        },
        prefixes,
        strip_prefix: r.boolean("stripPrefix", true)?,
        host_header: if keep_host { HostHeader::Keep } else { HostHeader::Upstream },
        proxy_headers: keep_host,
        upstream_headers,
        insecure_https: r.boolean("insecureHTTPS", false)?,
        insecure_ciphers: r.boolean("upstreamAllowInsecureCiphers", false)?,
        auth,
        funnel: r.boolean("funnel", false)?,
        tailnet: !r.boolean("funnelOnly", false)?,
        access: Vec::new(),
        whois: Whois { enabled: !suppress_whois, timeout_ms: r.duration("whoisTimeout", 1_000)? },
        timeouts: Timeouts::default(),
        redirect_to: p.redirect_to.clone(),
        wave: p.wave,
    })
}

/// Validates a whole table: names lower case, mounts well formed, no two routes on one
/// listener claiming one name and mount.
/// Whether `name` is a DNS name a route can answer for: lower-case labels of letters, digits
/// and inner hyphens (1 to 63 characters each), at most 253 characters, one trailing dot
/// allowed. Anything else (a `/`, whitespace, an empty label) could not be asked for, and would
/// reach the file system where a name becomes a socket's name.
pub fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

pub fn validate_table(routes: &[Route]) -> Result<(), RouteError> {
    // One route per name and mount, whatever the listener: the router picks by name and path.
    let mut seen: BTreeMap<(String, String), &str> = BTreeMap::new();
    let mut services = BTreeSet::new();
    for r in routes {
        if !services.insert(&r.service) {
            return Err(RouteError::Invalid {
                service: r.service.clone(),
                option: "service".into(),
                value: r.service.clone(),
                message: "appears twice in the table".into(),
            });
        }
        for h in &r.hosts {
            if !is_dns_name(&h.name) || !h.mount.starts_with('/') {
                return Err(RouteError::Invalid {
                    service: r.service.clone(),
                    option: "hosts".into(),
                    value: format!("{}{}", h.name, h.mount),
                    message: "names are lower-case DNS names; mounts start with /".into(),
                });
            }
            let name = h.name.strip_suffix('.').unwrap_or(&h.name).to_string();
            if let Some(first) = seen.insert((name, h.mount.clone()), &r.service) {
                return Err(RouteError::Conflict {
                    first: first.to_string(),
                    second: r.service.clone(),
                    name: h.name.clone(),
                    mount: h.mount.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tailshift_parsers::{Flavour, Options};

    fn service(flavour: Flavour, opts: &[(&str, serde_json::Value)]) -> Service {
        let mut eff = Options::default();
        for (k, v) in opts {
            eff.set(k.to_string(), Sourced::declared(v.clone(), None));
        }
        Service {
            name: "app".into(),
            host: Sourced::declared("box".into(), None),
            flavour,
            input: "t".into(),
            location: None,
            declared: Options::default(),
            effective: eff,
            coverage: Vec::new(),
            findings: Vec::new(),
            presence: Default::default(),
        }
    }

    fn placement() -> Placement {
        Placement {
            hosts: vec![RouteHost { name: "app.tailnet.test".into(), mount: "/".into() }],
            listen: Listen::Https { port: 443 },
            redirect_to: None,
            wave: Some(2),
        }
    }

    #[test]
    fn cli_defaults_keep_the_host_and_strip_prefixes() {
        // Upstream tsnsrv and the fork's per-service units: recommendedProxyHeaders and
        // stripPrefix default to true (tsnsrv.md 2).
        let s = service(
            Flavour::Fork,
            &[
                ("toURL", json!("http://127.0.0.1:8096")),
                ("recommendedProxyHeaders", json!(true)),
                ("stripPrefix", json!(true)),
                ("prefixes", json!(["tailnet:/", "funnel:/share/"])),
                ("funnel", json!(true)),
                ("whoisTimeout", json!("1s")),
            ],
        );
        let r = route_from_service(&s, &placement()).unwrap();
        assert_eq!(r.host_header, HostHeader::Keep);
        assert!(r.proxy_headers && r.strip_prefix && r.funnel && r.tailnet);
        assert_eq!(r.prefixes, vec!["tailnet:/", "funnel:/share/"]);
        assert_eq!(r.whois, Whois { enabled: true, timeout_ms: 1000 });
        assert_eq!(r.wave, Some(2));
    }

    #[test]
    fn fork_all_yaml_rewrites_the_host_and_keeps_prefixes() {
        // The fork's tsnsrv-all YAML: both false (tsnsrv.md 1.5), so the upstream saw its own Host.
        let s = service(
            Flavour::ForkAll,
            &[
                ("toURL", json!("http://127.0.0.1:4000")),
                ("recommendedProxyHeaders", json!(false)),
                ("stripPrefix", json!(false)),
                ("authURL", json!("https://auth.tailnet.test")),
                ("authPath", json!("/api/authz/forward-auth")),
                ("authTimeout", json!("5s")),
                ("authCopyHeaders", json!({"Remote-User": ""})),
            ],
        );
        let r = route_from_service(&s, &placement()).unwrap();
        assert_eq!(r.host_header, HostHeader::Upstream);
        assert!(!r.proxy_headers && !r.strip_prefix);
        let auth = r.auth.unwrap();
        assert_eq!((auth.timeout_ms, auth.copy_headers), (5000, vec!["Remote-User".to_string()]));
    }

    #[test]
    fn unix_sockets_headers_and_funnel_only_carry_over() {
        let s = service(
            Flavour::Upstream,
            &[
                ("toURL", json!("http://localhost")),
                ("upstreamUnixAddr", json!("/run/syncthing/gui.sock")),
                ("upstreamHeaders", json!({"X-Forwarded-Proto": "https"})),
                ("funnel", json!(true)),
                ("funnelOnly", json!(true)),
                ("suppressWhois", json!(true)),
                ("insecureHTTPS", json!(true)),
            ],
        );
        let r = route_from_service(&s, &placement()).unwrap();
        assert_eq!(r.upstream.unix.as_deref(), Some("/run/syncthing/gui.sock"));
        assert_eq!(r.upstream_headers["X-Forwarded-Proto"], "https");
        assert!(r.funnel && !r.tailnet && r.insecure_https && !r.whois.enabled);
    }

    #[test]
    fn unknown_values_refuse_a_route() {
        let mut s = service(Flavour::Fork, &[]);
        s.effective
            .set("toURL", Sourced::unknown("`config.services.jellyfin.port` is not set", None));
        let e = route_from_service(&s, &placement()).unwrap_err();
        assert!(e.to_string().contains("toURL is unknown"), "{e}");
    }

    #[test]
    fn go_durations() {
        for (s, ms) in [
            ("1s", 1000),
            ("500ms", 500),
            ("1m30s", 90_000),
            ("1.5h", 5_400_000),
            ("0s", 0),
            ("0", 0),
        ] {
            assert_eq!(go_duration_ms(s), Some(ms), "{s}");
        }
        assert_eq!(go_duration_ms("5"), None);
        assert_eq!(go_duration_ms("1d"), None);
    }

    #[test]
    fn tables_with_two_claims_on_one_name_are_refused() {
        let s = service(Flavour::Fork, &[("toURL", json!("http://127.0.0.1:1"))]);
        let a = route_from_service(&s, &placement()).unwrap();
        let mut b = a.clone();
        b.service = "box/other".into();
        assert!(matches!(
            validate_table(&[a.clone(), b.clone()]),
            Err(RouteError::Conflict { .. })
        ));
        b.hosts[0].mount = "/other/".into();
        assert!(validate_table(&[a, b]).is_ok());
        let json = serde_json::to_value(route_from_service(&s, &placement()).unwrap()).unwrap();
        assert_eq!(json["listen"], json!({"kind": "https", "port": 443}));
        assert_eq!(json["host_header"], "keep");
    }
}
