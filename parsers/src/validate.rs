//! Checks every service against tsnsrv's own rules (`reference/tsnsrv.md` 1.1, 2): each broken
//! rule is its own diagnostic with the location of the offending value.

use crate::diagnostic::Diagnostic;
use crate::diagnostic::DiagnosticCode;
use crate::inventory::{Inventory, Service, Sourced};
use crate::options::Opt;
use crate::typed::OptionError;
use std::collections::HashMap;

/// Ports Funnel serves on.
pub const FUNNEL_PORTS: [u16; 3] = [443, 8443, 10000];

fn loc(s: &Service, opt: Opt) -> Option<crate::Location> {
    s.declared
        .get(opt)
        .and_then(|v| v.location().cloned())
        .or_else(|| s.effective.get(opt).and_then(|v| v.location().cloned()))
        .or_else(|| s.location.clone())
}

/// Validates one service.
pub fn service(s: &Service) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let name = &s.name;
    let err = |code: DiagnosticCode, msg: String, opt: Opt| {
        Diagnostic::error(code, format!("{name}: {msg}")).at(loc(s, opt)).for_service(name)
    };
    // The module's types, as NixOS checks them: `funnel = "yes"` is refused there.
    for (opt, v) in &s.declared {
        let (Some(spec), Sourced::Known { value, .. }) = (crate::options::spec(opt), v) else {
            continue;
        };
        use crate::options::OptKind;
        let ok = match spec.kind {
            OptKind::Bool => value.is_boolean(),
            kind if kind.is_text() => value.is_string() || value.is_null(),
            OptKind::List => value.as_array().is_some_and(|a| a.iter().all(|x| x.is_string())),
            OptKind::Map => value.as_object().is_some_and(|m| m.values().all(|x| x.is_string())),
            OptKind::UrlParts => value.is_object() || value.is_null(),
            OptKind::Package => true,
            _ => true,
        };
        if !ok {
            let want = match spec.kind {
                OptKind::Bool => "a Boolean (true or false)",
                kind if kind.is_text() => "a string (or null)",
                OptKind::List => "a list of strings",
                OptKind::Map => "an attribute set of strings",
                _ => "a set (or null)",
            };
            out.push(err(
                DiagnosticCode::InvalidType,
                format!("{opt} is {value}, but the tsnsrv module wants {want}; NixOS refuses this configuration"),
                spec.key,
            ));
        }
    }
    if let Some(Sourced::Known { value, .. }) = s.effective.get(Opt::ToUrl) {
        let problem = match s.effective.url(Opt::ToUrl) {
            Ok(Some(u)) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => None,
            Ok(Some(u)) => Some(format!(
                "toURL {value} must be an http:// or https:// URL with a host (scheme is {})",
                u.scheme()
            )),
            Err(OptionError::Invalid { message, .. }) if value.is_string() => {
                Some(format!("toURL {value} is not a valid URL: {message}"))
            }
            _ => Some(format!("toURL {value} is not a string")),
        };
        out.extend(problem.map(|m| err(DiagnosticCode::InvalidUrl, m, Opt::ToUrl)));
    }
    if let Some(a) = s.effective.str(Opt::AuthUrl) {
        let problem = match s.effective.url(Opt::AuthUrl) {
            Ok(Some(u)) if matches!(u.scheme(), "http" | "https") => None,
            Err(OptionError::Invalid { message, .. }) => {
                Some(format!("authURL {a:?} is not a valid URL: {message}"))
            }
            _ => Some(format!("authURL {a:?} must be http:// or https://")),
        };
        out.extend(problem.map(|m| err(DiagnosticCode::InvalidUrl, m, Opt::AuthUrl)));
    }
    let funnel = s.effective.bool(Opt::Funnel) == Some(true);
    if funnel && s.effective.bool(Opt::Plaintext) == Some(true) {
        out.push(err(
            DiagnosticCode::FunnelWithPlaintext,
            "funnel = true with plaintext = true: tsnsrv refuses this (\"can not serve plaintext on a funnel service\")".into(),
            Opt::Plaintext,
        ));
    }
    if funnel && let Some(addr) = s.effective.str(Opt::ListenAddr) {
        match s.effective.listen_addr(Opt::ListenAddr) {
            Ok(Some(a)) if FUNNEL_PORTS.contains(&a.port) => {}
            _ => out.push(err(
                DiagnosticCode::FunnelPort,
                format!(
                    "funnel listens on {addr:?}, but Funnel only serves ports 443, 8443 and 10000"
                ),
                Opt::ListenAddr,
            )),
        }
    }
    if s.effective.bool(Opt::FunnelOnly) == Some(true) && !funnel {
        out.push(err(
            DiagnosticCode::FunnelOnlyWithoutFunnel,
            "funnelOnly needs funnel (\"-funnel is required if -funnelOnly is set\")".into(),
            Opt::FunnelOnly,
        ));
    }
    for p in s.effective.list(Opt::Prefixes).unwrap_or_default() {
        if !(p.starts_with('/') || p.starts_with("tailnet:/") || p.starts_with("funnel:/")) {
            out.push(err(
                DiagnosticCode::InvalidPrefix,
                format!("prefix {p:?} must start with /, tailnet:/ or funnel:/"),
                Opt::Prefixes,
            ));
        }
    }
    for t in s.effective.list(Opt::Tags).unwrap_or_default() {
        if !t.starts_with("tag:") {
            out.push(err(
                DiagnosticCode::InvalidTag,
                format!("tag {t:?} must start with \"tag:\""),
                Opt::Tags,
            ));
        }
    }
    let set = |o: Opt| s.effective.known(o).is_ok_and(|v| v.is_some());
    if set(Opt::CertificateFile) != set(Opt::CertificateKey) {
        out.push(err(
            DiagnosticCode::CertificatePair,
            "certificateFile and certificateKey must be set together".into(),
            Opt::CertificateFile,
        ));
    }
    if set(Opt::CertificateFile) && s.effective.bool(Opt::Plaintext) == Some(true) {
        out.push(err(
            DiagnosticCode::PlaintextWithCertificate,
            "plaintext cannot be combined with a custom certificate".into(),
            Opt::Plaintext,
        ));
    }
    if set(Opt::UpstreamUnixAddr) && set(Opt::UpstreamTcpAddr) {
        out.push(err(
            DiagnosticCode::TwoUpstreamAddresses,
            "upstreamUnixAddr and upstreamTCPAddr cannot both be set".into(),
            Opt::UpstreamTcpAddr,
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
                DiagnosticCode::DuplicateService,
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
