//! Checks every service against tsnsrv's own rules (`reference/tsnsrv.md` 1.1, 2): each broken
//! rule is its own diagnostic with the location of the offending value.

use crate::diagnostic::Diagnostic;
use crate::inventory::{Inventory, Service, Sourced};
use std::collections::HashMap;

/// Ports Funnel serves on.
pub const FUNNEL_PORTS: [u16; 3] = [443, 8443, 10000];

fn loc(s: &Service, opt: &str) -> Option<crate::Location> {
    s.declared
        .get(opt)
        .and_then(|v| v.location().cloned())
        .or_else(|| s.effective.get(opt).and_then(|v| v.location().cloned()))
        .or_else(|| s.location.clone())
}

/// The port of a Go listen address (`:443`, `0.0.0.0:8443`).
pub fn listen_port(addr: &str) -> Option<u16> {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// Validates one service.
pub fn service(s: &Service) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let name = &s.name;
    let err = |code: &str, msg: String, opt: &str| {
        Diagnostic::error(code, format!("{name}: {msg}")).at(loc(s, opt)).for_service(name)
    };
    // The module's types, as NixOS checks them: `funnel = "yes"` is refused there.
    for (opt, v) in &s.declared.0 {
        let (Some(spec), Sourced::Known { value, .. }) = (crate::options::spec(opt), v) else {
            continue;
        };
        use crate::options::OptKind;
        let ok = match spec.kind {
            OptKind::Bool => value.is_boolean(),
            OptKind::Str | OptKind::Duration => value.is_string() || value.is_null(),
            OptKind::List => value.as_array().is_some_and(|a| a.iter().all(|x| x.is_string())),
            OptKind::Map => value.as_object().is_some_and(|m| m.values().all(|x| x.is_string())),
            OptKind::UrlParts => value.is_object() || value.is_null(),
            OptKind::Package => true,
        };
        if !ok {
            let want = match spec.kind {
                OptKind::Bool => "a Boolean (true or false)",
                OptKind::Str | OptKind::Duration => "a string (or null)",
                OptKind::List => "a list of strings",
                OptKind::Map => "an attribute set of strings",
                _ => "a set (or null)",
            };
            out.push(err(
                "invalid_type",
                format!("{opt} is {value}, but the tsnsrv module wants {want}; NixOS refuses this configuration"),
                opt,
            ));
        }
    }
    if let Some(Sourced::Known { value, .. }) = s.effective.get("toURL") {
        match value.as_str().map(url::Url::parse) {
            Some(Ok(u)) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            Some(Ok(u)) => out.push(err(
                "invalid_url",
                format!(
                    "toURL {value} must be an http:// or https:// URL with a host (scheme is {})",
                    u.scheme()
                ),
                "toURL",
            )),
            Some(Err(e)) => out.push(err(
                "invalid_url",
                format!("toURL {value} is not a valid URL: {e}"),
                "toURL",
            )),
            None => out.push(err("invalid_url", format!("toURL {value} is not a string"), "toURL")),
        }
    }
    if let Some(a) = s.effective.str("authURL") {
        match url::Url::parse(a) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            Ok(_) => out.push(err(
                "invalid_url",
                format!("authURL {a:?} must be http:// or https://"),
                "authURL",
            )),
            Err(e) => out.push(err(
                "invalid_url",
                format!("authURL {a:?} is not a valid URL: {e}"),
                "authURL",
            )),
        }
    }
    let funnel = s.effective.bool("funnel") == Some(true);
    if funnel && s.effective.bool("plaintext") == Some(true) {
        out.push(err(
            "funnel_with_plaintext",
            "funnel = true with plaintext = true: tsnsrv refuses this (\"can not serve plaintext on a funnel service\")".into(),
            "plaintext",
        ));
    }
    if funnel && let Some(addr) = s.effective.str("listenAddr") {
        match listen_port(addr) {
            Some(p) if FUNNEL_PORTS.contains(&p) => {}
            _ => out.push(err(
                "funnel_port",
                format!(
                    "funnel listens on {addr:?}, but Funnel only serves ports 443, 8443 and 10000"
                ),
                "listenAddr",
            )),
        }
    }
    if s.effective.bool("funnelOnly") == Some(true) && !funnel {
        out.push(err(
            "funnel_only_without_funnel",
            "funnelOnly needs funnel (\"-funnel is required if -funnelOnly is set\")".into(),
            "funnelOnly",
        ));
    }
    let strings = |opt: &str| -> Vec<&str> {
        s.effective
            .get(opt)
            .and_then(|v| v.known())
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default()
    };
    for p in strings("prefixes") {
        if !(p.starts_with('/') || p.starts_with("tailnet:/") || p.starts_with("funnel:/")) {
            out.push(err(
                "invalid_prefix",
                format!("prefix {p:?} must start with /, tailnet:/ or funnel:/"),
                "prefixes",
            ));
        }
    }
    for t in strings("tags") {
        if !t.starts_with("tag:") {
            out.push(err("invalid_tag", format!("tag {t:?} must start with \"tag:\""), "tags"));
        }
    }
    let set = |o: &str| s.effective.get(o).and_then(|v| v.known()).is_some_and(|v| !v.is_null());
    if set("certificateFile") != set("certificateKey") {
        out.push(err(
            "certificate_pair",
            "certificateFile and certificateKey must be set together".into(),
            "certificateFile",
        ));
    }
    if set("certificateFile") && s.effective.bool("plaintext") == Some(true) {
        out.push(err(
            "plaintext_with_certificate",
            "plaintext cannot be combined with a custom certificate".into(),
            "plaintext",
        ));
    }
    if set("upstreamUnixAddr") && set("upstreamTCPAddr") {
        out.push(err(
            "two_upstream_addresses",
            "upstreamUnixAddr and upstreamTCPAddr cannot both be set".into(),
            "upstreamTCPAddr",
        ));
    }
    out
}

/// Adds the diagnostics of every service, and duplicate-name errors per host.
pub fn inventory(inv: &mut Inventory) {
    let mut seen: HashMap<(String, String), Option<crate::Location>> = HashMap::new();
    // Services are checked independently: large fleets use every core.
    let per_service: Vec<Vec<Diagnostic>> = crate::par::par_map(&inv.services, service);
    let mut diags = Vec::new();
    for (s, found) in inv.services.iter_mut().zip(per_service) {
        s.findings.extend(found.iter().cloned());
        diags.extend(found);
    }
    let mut dup_of = Vec::new();
    for (i, s) in inv.services.iter().enumerate() {
        // Without a known host, only one input can be told to be one host.
        let host = match s.host.known() {
            Some(h) => h.clone(),
            None => format!("of {}", s.input),
        };
        let key = (host.clone(), s.name.clone());
        if let Some(first) = seen.get(&key) {
            let mut d = Diagnostic::error(
                "duplicate_service",
                format!("service {} is declared twice on host {host}", s.name),
            )
            .at(s.location.clone())
            .for_service(&s.name);
            if let Some(f) = first {
                d = d.note(format!("first declared at {f}"));
            }
            dup_of.push((i, d.clone()));
            diags.push(d);
        } else {
            seen.insert(key, s.location.clone());
        }
    }
    for (i, d) in dup_of {
        inv.services[i].findings.push(d);
    }
    inv.diagnostics.extend(diags);
}
