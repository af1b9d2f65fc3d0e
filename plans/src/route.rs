//! The conversion from an inventory service and its [`Placement`] to the [`Route`] the proxy
//! serves it with. It runs once per service, when the plan is made; the sealed plan carries the
//! route and `migrate apply` installs exactly that route.
//!
//! The conversion keeps every behaviour the service had under its tsnsrv flavour, because apps
//! depend on it (Syncthing refuses a foreign Host): which Host the upstream sees, which
//! X-Forwarded headers it gets, prefix allowlist and stripping, upstream headers, TLS laxness,
//! forward auth, Funnel, whois. tsnsrv's security bugs are not carried over (the proxy fixes
//! them at request time).

use crate::plan::{AccessKind, Listener, Placement};
use std::collections::BTreeMap;
use tailshift_parsers::{Service, Sourced};
use tailshift_routes::{
    AccessRule, ForwardAuth, HostHeader, Listen, Route, RouteHost, Timeouts, Upstream, Whois,
};

/// Why a service's route cannot be built (a plan finding, `no_route`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
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
    fn known(&self, opt: &str) -> Result<Option<&serde_json::Value>, ConversionError> {
        match self.s.effective.get(opt) {
            None => Ok(None),
            Some(Sourced::Known { value, .. }) => Ok((!value.is_null()).then_some(value)),
            Some(Sourced::Unknown { reason, .. }) => Err(ConversionError::Unknown {
                service: self.id.clone(),
                option: opt.into(),
                reason: reason.clone(),
            }),
        }
    }

    fn string(&self, opt: &str) -> Result<Option<String>, ConversionError> {
        Ok(self.known(opt)?.and_then(|v| v.as_str()).map(str::to_string))
    }

    fn boolean(&self, opt: &str, default: bool) -> Result<bool, ConversionError> {
        Ok(self.known(opt)?.and_then(|v| v.as_bool()).unwrap_or(default))
    }

    fn duration(&self, opt: &str, default_ms: u64) -> Result<u64, ConversionError> {
        match self.string(opt)? {
            None => Ok(default_ms),
            Some(v) => go_duration_ms(&v).ok_or_else(|| ConversionError::Invalid {
                service: self.id.clone(),
                option: opt.into(),
                value: v,
                message: "not a Go duration".into(),
            }),
        }
    }
}

/// Builds a service's route from its effective options, its placement and its wave.
pub fn route_of(s: &Service, p: &Placement, wave: Option<usize>) -> Result<Route, ConversionError> {
    let id = crate::id::ServiceId::of(s).to_string();
    let r = Reader { s, id: id.clone() };
    let url = r.string("toURL")?.ok_or_else(|| ConversionError::Invalid {
        service: id.clone(),
        option: "toURL".into(),
        value: String::new(),
        message: "missing".into(),
    })?;
    let parsed = url::Url::parse(&url).map_err(|e| ConversionError::Invalid {
        service: id.clone(),
        option: "toURL".into(),
        value: url.clone(),
        message: e.to_string(),
    })?;
    let auth_url = |text: String| {
        url::Url::parse(&text).map_err(|e| ConversionError::Invalid {
            service: id.clone(),
            option: "authURL".into(),
            value: text,
            message: e.to_string(),
        })
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConversionError::Invalid {
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
        Some(text) => Some(ForwardAuth {
            url: auth_url(text)?,
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
        hosts: p
            .names
            .iter()
            .map(|n| RouteHost { name: n.name.to_ascii_lowercase(), mount: n.mount.clone() })
            .collect(),
        listen: match p.listener {
            Listener::Https => Listen::Https { port: p.port },
            Listener::Plaintext => Listen::Plaintext { port: p.port },
        },
        upstream: Upstream {
            url: parsed,
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
        access: p
            .access
            .iter()
            .map(|a| match a.kind {
                AccessKind::User => AccessRule::User(a.value.clone()),
                AccessKind::Group => AccessRule::Group(a.value.clone()),
                AccessKind::Tag => AccessRule::Tag(a.value.clone()),
            })
            .collect(),
        whois: Whois { enabled: !suppress_whois, timeout_ms: r.duration("whoisTimeout", 1_000)? },
        timeouts: Timeouts {
            connect_ms: p.timeouts.connect_ms,
            response_header_ms: p.timeouts.response_header_ms,
        },
        redirect_to: p.redirect_to.clone(),
        wave,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tailshift_parsers::{Flavour, Options};
    use tailshift_routes::{RouteError, validate_table};

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
            names: vec![crate::plan::RouteName {
                name: "app.tailnet.test".into(),
                mount: "/".into(),
            }],
            listener: Listener::Https,
            port: 443,
            redirect_to: None,
            access: Vec::new(),
            timeouts: Default::default(),
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
        let r = route_of(&s, &placement(), Some(2)).unwrap();
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
        let r = route_of(&s, &placement(), Some(2)).unwrap();
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
        let r = route_of(&s, &placement(), Some(2)).unwrap();
        assert_eq!(r.upstream.unix.as_deref(), Some("/run/syncthing/gui.sock"));
        assert_eq!(r.upstream_headers["X-Forwarded-Proto"], "https");
        assert!(r.funnel && !r.tailnet && r.insecure_https && !r.whois.enabled);
    }

    #[test]
    fn unknown_values_refuse_a_route() {
        let mut s = service(Flavour::Fork, &[]);
        s.effective
            .set("toURL", Sourced::unknown("`config.services.jellyfin.port` is not set", None));
        let e = route_of(&s, &placement(), Some(2)).unwrap_err();
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
        let a = route_of(&s, &placement(), Some(2)).unwrap();
        let mut b = a.clone();
        b.service = "box/other".into();
        assert!(matches!(
            validate_table(&[a.clone(), b.clone()]),
            Err(RouteError::Conflict { .. })
        ));
        b.hosts[0].mount = "/other/".into();
        assert!(validate_table(&[a, b]).is_ok());
        let json = serde_json::to_value(route_of(&s, &placement(), Some(2)).unwrap()).unwrap();
        assert_eq!(json["listen"], json!({"kind": "https", "port": 443}));
        assert_eq!(json["host_header"], "keep");
    }
}
