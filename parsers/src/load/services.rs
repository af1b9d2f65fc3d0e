//! From what an input declares to the inventory's hosts and services: the flavour of a host
//! (stated, detected, or assumed), each service's effective values, and how well each of its
//! attributes is understood.
//!
//! Separate from reading the inputs (the parent module): every kind of input ends here, in
//! one [`HostGroup`].

use super::LoadOptions;
use crate::diagnostic::Diagnostic;
use crate::diagnostic::DiagnosticCode;
use crate::effective::{self, Origin};
use crate::inventory::*;
use crate::nixos::{DeclaredService, ModuleView};
use crate::options::{self, Opt};
use crate::units::RawService;
use serde_json::Value as Json;
use std::path::Path;

/// One host as one input shows it, with its services.
pub(super) struct HostGroup {
    pub(super) host: Sourced<String>,
    pub(super) flavour: Flavour,
    pub(super) basis: FlavourBasis,
    pub(super) prometheus_addr: Option<Sourced<Json>>,
    pub(super) input: String,
    /// Definitions whose service names cannot be known.
    pub(super) incomplete: Vec<Incomplete>,
    /// A flake host's attribute and the modules read for it.
    pub(super) attr: Option<String>,
    pub(super) modules: Vec<String>,
}

pub(super) fn raw_service(
    raw: RawService,
    host: &Sourced<String>,
    flavour: Flavour,
    input: &str,
    diags: &mut Vec<Diagnostic>,
) -> Service {
    let mut findings = raw.findings;
    let effective =
        effective::effective(&raw.name, &raw.declared, flavour, &raw.origin, &mut findings);
    let mut coverage = coverage_of(&raw.declared, &effective, |_| None);
    for (attr, reason) in raw.unsupported {
        coverage.push(CoverageEntry {
            attribute: attr,
            status: Coverage::Unsupported,
            reason: Some(reason),
            location: raw.location.clone(),
        });
    }
    diags.extend(findings.iter().cloned());
    Service {
        name: raw.name,
        host: host.clone(),
        flavour,
        input: input.to_string(),
        location: raw.location,
        declared: raw.declared,
        effective,
        coverage,
        findings,
        presence: Presence::Certain,
        moved: None,
    }
}

/// How well each attribute is understood: declared ones, and effective ones that are unknown.
fn coverage_of(
    declared: &Options,
    effective: &Options,
    unsupported: impl Fn(&str) -> Option<String>,
) -> Vec<CoverageEntry> {
    let mut out = Vec::new();
    for (k, v) in declared {
        let (status, reason) = if let Some(why) = unsupported(k) {
            (Coverage::Unsupported, Some(why))
        } else {
            match v {
                Sourced::Unknown { reason, .. } => (Coverage::Unknown, Some(reason.clone())),
                Sourced::Known { .. } => (Coverage::Understood, None),
            }
        };
        out.push(CoverageEntry {
            attribute: k.to_string(),
            status,
            reason,
            location: v.location().cloned(),
        });
    }
    for (k, v) in effective {
        if declared.get_named(k).is_some() {
            continue;
        }
        if let Sourced::Unknown { reason, .. } = v {
            out.push(CoverageEntry {
                attribute: k.to_string(),
                status: Coverage::Unknown,
                reason: Some(reason.clone()),
                location: v.location().cloned(),
            });
        }
    }
    out
}

/// Decides a module-declared host's flavour.
fn module_flavour(view: &ModuleView, stated: Option<Flavour>) -> (Flavour, FlavourBasis) {
    if let Some(f) = stated {
        return (f, FlavourBasis::Stated { flag: format!("--tsnsrv {f}") });
    }
    if let Some(Sourced::Known { value, .. }) = &view.separate_processes {
        // Stated in the files: it decides, whatever the input's default.
        let location = view.separate_processes.as_ref().and_then(|s| s.location().cloned());
        return if *value {
            (Flavour::Fork, FlavourBasis::Detected { reason: "services.tsnsrv.separateProcesses = true (the fork, one process per service)".into(), location })
        } else {
            (
                Flavour::ForkAll,
                FlavourBasis::Detected {
                    reason: "services.tsnsrv.separateProcesses = false (the fork's tsnsrv-all)"
                        .into(),
                    location,
                },
            )
        };
    }
    if let Some((f, reason, location)) = &view.flavour_hint {
        return (*f, FlavourBasis::Detected { reason: reason.clone(), location: location.clone() });
    }
    let fork_only = |o: &Options| -> Option<(String, Option<crate::Location>)> {
        o.iter()
            .find(|(k, _)| options::spec(k).is_some_and(|s| s.fork_module && !s.upstream_module))
            .map(|(k, v)| (k.to_string(), v.location().cloned()))
    };
    let found = fork_only(&view.defaults)
        .or_else(|| view.services.iter().find_map(|s| fork_only(&s.declared)));
    if let Some((opt, location)) = found {
        return (
            Flavour::Fork,
            FlavourBasis::Detected {
                reason: format!(
                    "{opt} is set, which only the fork's module has; separateProcesses is not set, so the fork's default since 2025-11-19 (true: one process per service) is assumed"
                ),
                location,
            },
        );
    }
    if view.prometheus_addr.is_some() {
        let location = view.prometheus_addr.as_ref().and_then(|s| s.location().cloned());
        return (
            Flavour::Fork,
            FlavourBasis::Detected {
                reason: "services.tsnsrv.prometheusAddr exists only in the fork's module".into(),
                location,
            },
        );
    }
    (
        Flavour::Upstream,
        FlavourBasis::Assumed { reason: "no option only the fork has is set; upstream tsnsrv is assumed (state it with --tsnsrv)".into() },
    )
}

/// A module-declared host (from the evaluator, `nix eval` JSON or a flake) and its services.
pub(super) fn module_services(
    view: ModuleView,
    input: &Path,
    opts: &LoadOptions,
    diags: &mut Vec<Diagnostic>,
) -> (HostGroup, Vec<Service>) {
    let (flavour, basis) = module_flavour(&view, opts.tsnsrv);
    let fork = flavour.is_fork();
    let input_s = input.display().to_string();
    let host = view.host.clone().unwrap_or_else(|| match &opts.host {
        Some(h) => Sourced::declared(h.clone(), None),
        None => {
            Sourced::unknown("networking.hostName is not set in the files read; pass --host", None)
        }
    });
    for (k, loc) in &view.unknown_top {
        diags.push(
            Diagnostic::error(
                DiagnosticCode::UnknownAttribute,
                format!("services.tsnsrv.{k} is not an option of the tsnsrv module"),
            )
            .at(loc.clone()),
        );
    }
    for (k, v) in &view.defaults {
        if !options::module_accepts(k, fork) || k == Opt::ToUrl.name() {
            diags.push(
                Diagnostic::error(
                    DiagnosticCode::UnknownAttribute,
                    format!(
                        "services.tsnsrv.defaults.{k} is not an option of the {} tsnsrv module",
                        flavour_module_name(flavour)
                    ),
                )
                .at(v.location().cloned()),
            );
        }
    }
    let defaults = std::sync::Arc::new(view.defaults.clone());
    let mut names: Vec<&str> = view.services.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    let one = |ds: &DeclaredService, diags: &mut Vec<Diagnostic>| -> Service {
        let index = names.binary_search(&ds.name.as_str()).unwrap_or(0);
        let origin = Origin::Module { defaults: defaults.clone(), index };
        let mut findings = Vec::new();
        let effective =
            effective::effective(&ds.name, &ds.declared, flavour, &origin, &mut findings);
        let unsupported = |k: &str| -> Option<String> {
            (!options::module_accepts(k, fork)).then(|| {
                if options::module_accepts(k, true) {
                    format!(
                        "{k} exists only in the fork's module, but this host runs upstream tsnsrv"
                    )
                } else {
                    format!(
                        "{k} is not an option of the {} tsnsrv module",
                        flavour_module_name(flavour)
                    )
                }
            })
        };
        for (k, v) in &ds.declared {
            if let Some(why) = unsupported(k) {
                findings.push(
                    Diagnostic::error(
                        DiagnosticCode::UnknownAttribute,
                        format!("{}: {why}", ds.name),
                    )
                    .at(v.location().cloned().or_else(|| ds.location.clone()))
                    .for_service(&ds.name),
                );
            }
        }
        let coverage = coverage_of(&ds.declared, &effective, unsupported);
        diags.extend(findings.iter().cloned());
        Service {
            name: ds.name.clone(),
            host: host.clone(),
            flavour,
            input: input_s.clone(),
            location: ds.location.clone(),
            declared: ds.declared.clone(),
            effective,
            coverage,
            findings,
            presence: ds.presence.clone(),
            moved: view.moves.as_ref().and_then(|m| m.moved(&ds.name, flavour)),
        }
    };
    // Each service is independent: large fleets are split over the machine's cores.
    let parts = crate::par::par_map(&view.services, |ds| {
        let mut d = Vec::new();
        let s = one(ds, &mut d);
        (s, d)
    });
    let mut services = Vec::with_capacity(view.services.len());
    for (s, d) in parts {
        services.push(s);
        diags.extend(d);
    }
    let prometheus_addr = match flavour {
        Flavour::ForkAll => Some(view.prometheus_addr.clone().unwrap_or_else(|| {
            let addr = crate::defaults::cli(Opt::PrometheusAddr, true).unwrap_or_default();
            Sourced::default(addr, "fork module default")
        })),
        _ => view.prometheus_addr.clone(),
    };
    let incomplete = view
        .unreadable
        .iter()
        .map(|(reason, location)| Incomplete { reason: reason.clone(), location: location.clone() })
        .collect();
    (
        HostGroup {
            host,
            flavour,
            basis,
            prometheus_addr,
            input: input_s,
            incomplete,
            attr: None,
            modules: Vec::new(),
        },
        services,
    )
}

/// How messages name the module of a flavour.
fn flavour_module_name(f: Flavour) -> &'static str {
    if f.is_fork() { "fork's" } else { "upstream" }
}
