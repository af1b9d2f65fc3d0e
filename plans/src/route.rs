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
use tailshift_parsers::{Opt, OptionError, Service};
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
        option: Opt,
        /// Why it is unknown.
        reason: String,
    },
    /// A value does not parse.
    #[error("{service}: {option} = {value:?}: {message}")]
    Invalid {
        /// The service.
        service: String,
        /// The option.
        option: Opt,
        /// The value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// The route built is one the proxy refuses (`tailshift_routes::validate_route`): a
    /// service id, name, mount, prefix, upstream URL, upstream header or redirect it cannot
    /// serve safely.
    #[error("{0} (the proxy refuses such a route)")]
    Refused(tailshift_routes::RouteError),
}

impl ConversionError {
    fn of(service: &str, e: OptionError) -> ConversionError {
        let service = service.to_string();
        match e {
            OptionError::Unknown { opt, reason } => {
                ConversionError::Unknown { service, option: opt, reason }
            }
            OptionError::Invalid { opt, value, message } => {
                ConversionError::Invalid { service, option: opt, value, message }
            }
        }
    }
}

/// Builds a service's route from its effective options, its placement and its wave. What the
/// options do not say is tsnsrv's own default (`tailshift_parsers::defaults`).
pub fn route_of(s: &Service, p: &Placement, wave: Option<usize>) -> Result<Route, ConversionError> {
    let id = crate::id::ServiceId::of(s).to_string();
    let eff = &s.effective;
    let err = |e| ConversionError::of(&id, e);
    let invalid = |message: &str| ConversionError::Invalid {
        service: id.clone(),
        option: Opt::ToUrl,
        value: eff.str(Opt::ToUrl).unwrap_or_default().to_string(),
        message: message.into(),
    };
    let url = eff.url(Opt::ToUrl).map_err(err)?.ok_or_else(|| invalid("missing"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("only http:// and https:// upstreams are proxied"));
    }
    let prefixes = eff.strings(Opt::Prefixes).map_err(err)?;
    let keep_host = eff.flag(Opt::RecommendedProxyHeaders).map_err(err)?;
    let upstream_headers = eff.headers(Opt::UpstreamHeaders).map_err(err)?;
    let auth = match eff.url(Opt::AuthUrl).map_err(err)? {
        None => None,
        Some(url) => Some(ForwardAuth {
            url,
            path: eff.text(Opt::AuthPath).map_err(err)?.unwrap_or_default(),
            timeout_ms: eff.duration_ms(Opt::AuthTimeout).map_err(err)?.unwrap_or_default(),
            copy_headers: eff.headers(Opt::AuthCopyHeaders).map_err(err)?.into_keys().collect(),
            insecure_https: eff.flag(Opt::AuthInsecureHttps).map_err(err)?,
            bypass_for_tailnet: eff.flag(Opt::AuthBypassForTailnet).map_err(err)?,
        }),
    };
    let suppress_whois = eff.flag(Opt::SuppressWhois).map_err(err)?;
    let route = Route {
        service: id.clone(),
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
            url,
            unix: eff.text(Opt::UpstreamUnixAddr).map_err(err)?,
            tcp_addr: eff.text(Opt::UpstreamTcpAddr).map_err(err)?,
        },
        prefixes,
        strip_prefix: eff.flag(Opt::StripPrefix).map_err(err)?,
        host_header: if keep_host { HostHeader::Keep } else { HostHeader::Upstream },
        proxy_headers: keep_host,
        upstream_headers,
        insecure_https: eff.flag(Opt::InsecureHttps).map_err(err)?,
        insecure_ciphers: eff.flag(Opt::UpstreamAllowInsecureCiphers).map_err(err)?,
        auth,
        funnel: eff.flag(Opt::Funnel).map_err(err)?,
        tailnet: !eff.flag(Opt::FunnelOnly).map_err(err)?,
        access: p
            .access
            .iter()
            .map(|a| match a.kind {
                AccessKind::User => AccessRule::User(a.value.clone()),
                AccessKind::Group => AccessRule::Group(a.value.clone()),
                AccessKind::Tag => AccessRule::Tag(a.value.clone()),
            })
            .collect(),
        whois: Whois {
            enabled: !suppress_whois,
            timeout_ms: eff.duration_ms(Opt::WhoisTimeout).map_err(err)?.unwrap_or_default(),
        },
        timeouts: Timeouts {
            connect_ms: p.timeouts.connect_ms,
            response_header_ms: p.timeouts.response_header_ms,
        },
        redirect_to: p.redirect_to.clone(),
        wave,
    };
    // What tsnsrv took but the proxy refuses (a framing header in upstreamHeaders, an empty
    // `funnel:` prefix, a toURL with a query or userinfo) is a finding, not a route that
    // `PUT /routes` would refuse in the middle of a wave.
    tailshift_routes::validate_route(&route).map_err(ConversionError::Refused)?;
    Ok(route)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tailshift_parsers::{Flavour, Options, Sourced};
    use tailshift_routes::{RouteError, validate_table};

    fn service(flavour: Flavour, opts: &[(Opt, serde_json::Value)]) -> Service {
        let mut eff = Options::default();
        for (k, v) in opts {
            eff.set(*k, Sourced::declared(v.clone(), None));
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
            moved: None,
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
                (Opt::ToUrl, json!("http://127.0.0.1:8096")),
                (Opt::RecommendedProxyHeaders, json!(true)),
                (Opt::StripPrefix, json!(true)),
                (Opt::Prefixes, json!(["tailnet:/", "funnel:/share/"])),
                (Opt::Funnel, json!(true)),
                (Opt::WhoisTimeout, json!("1s")),
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
                (Opt::ToUrl, json!("http://127.0.0.1:4000")),
                (Opt::RecommendedProxyHeaders, json!(false)),
                (Opt::StripPrefix, json!(false)),
                (Opt::AuthUrl, json!("https://auth.tailnet.test")),
                (Opt::AuthPath, json!("/api/authz/forward-auth")),
                (Opt::AuthTimeout, json!("5s")),
                (Opt::AuthCopyHeaders, json!({"Remote-User": ""})),
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
                (Opt::ToUrl, json!("http://localhost")),
                (Opt::UpstreamUnixAddr, json!("/run/syncthing/gui.sock")),
                (Opt::UpstreamHeaders, json!({"X-Forwarded-Proto": "https"})),
                (Opt::Funnel, json!(true)),
                (Opt::FunnelOnly, json!(true)),
                (Opt::SuppressWhois, json!(true)),
                (Opt::InsecureHttps, json!(true)),
            ],
        );
        let r = route_of(&s, &placement(), Some(2)).unwrap();
        assert_eq!(r.upstream.unix.as_deref(), Some("/run/syncthing/gui.sock"));
        assert_eq!(r.upstream_headers["X-Forwarded-Proto"], "https");
        assert!(r.funnel && !r.tailnet && r.insecure_https && !r.whois.enabled);
    }

    #[test]
    fn what_the_proxy_refuses_is_a_finding_not_a_route() {
        for (opt, value, field) in [
            (Opt::UpstreamHeaders, json!({"Content-Length": "0"}), "upstream_headers"),
            (Opt::UpstreamHeaders, json!({"Transfer-Encoding": "chunked"}), "upstream_headers"),
            (
                Opt::UpstreamHeaders,
                json!({"X-Tailscale-User-LoginName": "a@b"}),
                "upstream_headers",
            ),
            (Opt::Prefixes, json!(["funnel:"]), "prefixes"),
            (Opt::Prefixes, json!(["public:/x"]), "prefixes"),
            (Opt::ToUrl, json!("http://u:p@127.0.0.1:1"), "upstream.url"),
        ] {
            let mut opts = vec![(Opt::ToUrl, json!("http://127.0.0.1:1"))];
            opts.retain(|(o, _)| *o != opt);
            opts.push((opt, value.clone()));
            let s = service(Flavour::Fork, &opts);
            let e = route_of(&s, &placement(), Some(2)).unwrap_err();
            assert!(
                matches!(&e, ConversionError::Refused(RouteError::Invalid { option, .. }) if option == field),
                "{value}: {e}"
            );
        }
        let mut s = service(Flavour::Fork, &[(Opt::ToUrl, json!("http://127.0.0.1:1"))]);
        s.name = "a\nb".into();
        assert!(matches!(route_of(&s, &placement(), Some(2)), Err(ConversionError::Refused(_))));
    }

    #[test]
    fn unknown_values_refuse_a_route() {
        let mut s = service(Flavour::Fork, &[]);
        s.effective
            .set(Opt::ToUrl, Sourced::unknown("`config.services.jellyfin.port` is not set", None));
        let e = route_of(&s, &placement(), Some(2)).unwrap_err();
        assert!(e.to_string().contains("toURL is unknown"), "{e}");
    }

    #[test]
    fn tables_with_two_claims_on_one_name_are_refused() {
        let s = service(Flavour::Fork, &[(Opt::ToUrl, json!("http://127.0.0.1:1"))]);
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
