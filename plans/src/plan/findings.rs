//! Findings about services and the fleet as a whole, each with a stable code: open-ended
//! Funnel prefixes, forward auth outside the inventory, ACL reachability that widens on one
//! node, references and rollbacks to prepare for. (The findings that explain a held-back
//! service are made where its status is judged.)

use super::status::Statuses;
use super::{Ctx, Finding, Status};
use crate::steps::Strategy;
use std::collections::{BTreeMap, BTreeSet};
use tailshift_parsers::{Flavour, Severity};

/// tsnsrv's prefixes match as plain strings (`/pub` also matches `/public-secrets`): on
/// Funnel, an open-ended one may publish more than meant.
pub(super) fn funnel_prefixes(ctx: &Ctx) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (i, s) in ctx.inv.services.iter().enumerate() {
        if s.effective.bool("funnel") != Some(true) {
            continue;
        }
        let id = &ctx.ids[i];
        for p in s.effective.list("prefixes").unwrap_or_default() {
            let Some(path) = p.strip_prefix("funnel:").or((!p.contains(':')).then_some(p.as_str()))
            else {
                continue;
            };
            if path != "/" && !path.ends_with('/') {
                findings.push(Finding::new(
                    "funnel_prefix_open_ended",
                    Severity::Warning,
                    Some(id),
                    format!(
                        "{id}: the Funnel prefix {p:?} also matches any path that merely starts with it ({path}x, {path}-private, ...), as tsnsrv matched it; end it with / to publish only that directory"
                    ),
                    s.effective
                        .get("prefixes")
                        .and_then(|v| v.location().cloned())
                        .or_else(|| s.location.clone()),
                ));
            }
        }
    }
    findings
}

/// Findings about the fleet as a whole.
pub(super) fn fleet(
    ctx: &Ctx,
    statuses: &Statuses,
    wave_of: &[Option<usize>],
    findings: &mut Vec<Finding>,
) {
    external_auth(ctx, findings);
    acl_widening(ctx, statuses, findings);
    // Rollback and references, summarised per host.
    let moves_off_node = |(st, s): (&Status, &Strategy)| *st == Status::Planned && s.frees_node();
    if statuses.status.iter().zip(&statuses.strategy).any(moves_off_node) {
        findings.push(Finding::new(
            "reference_not_kept",
            Severity::Warning,
            None,
            "clients that reach a service by its node's tailnet IP (100.x.y.z) lose it when the node goes: Tailscale Services get new \
             virtual IPs, DNS strategies point the name at the one node; short MagicDNS names work only where MagicDNS search domains \
             apply. Find such references (bookmarks, configs, ACL rules naming the node) before moving"
                .into(),
            None,
        ));
    }
    let uses_services =
        |(st, s): (&Status, &Strategy)| *st == Status::Planned && *s == Strategy::TailscaleServices;
    if statuses.status.iter().zip(&statuses.strategy).any(uses_services) {
        findings.push(Finding::new(
            "services_need_accept_routes",
            Severity::Info,
            None,
            "Tailscale Services answer at virtual IPs of their own: Linux clients before Tailscale 1.94 reach them only with \
             `tailscale set --accept-routes`; upgrade those clients, or set it, before their services move"
                .into(),
            None,
        ));
    }
    per_host(ctx, statuses, wave_of, findings);
}

/// Forward auth that names no service of the inventory must stay reachable.
fn external_auth(ctx: &Ctx, findings: &mut Vec<Finding>) {
    for (i, url) in &ctx.graph.external_auth {
        let id = &ctx.ids[*i];
        findings.push(Finding::new(
            "external_dependency",
            Severity::Info,
            Some(id),
            format!(
                "{id}'s forward auth {url} is not a service of the inventory: it must stay reachable"
            ),
            ctx.inv.services[*i].effective.get("authURL").and_then(|v| v.location().cloned()),
        ));
    }
}

/// One node, one ACL identity: tags no longer tell services apart.
fn acl_widening(ctx: &Ctx, statuses: &Statuses, findings: &mut Vec<Finding>) {
    let mut tags_by_host: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, s) in ctx.inv.services.iter().enumerate() {
        if statuses.status[i] == Status::Planned && statuses.strategy[i].frees_node() {
            let host = s.host.known().cloned().unwrap_or_default();
            let tags = s.effective.list("tags").unwrap_or_default().join(",");
            tags_by_host.entry(host).or_default().insert(if tags.is_empty() {
                "(untagged)".into()
            } else {
                tags
            });
        }
    }
    for (host, tags) in tags_by_host {
        if tags.len() > 1 {
            findings.push(Finding::new(
                "acl_reachability_widens",
                Severity::Warning,
                None,
                format!(
                    "on {host}, services carry different tags ({}); on one node, per-node ACLs no longer tell them apart: a peer allowed to one reaches all",
                    tags.into_iter().collect::<Vec<_>>().join(" | ")
                ),
                None,
            ));
        }
    }
}

/// Per host: planned services under tailscale-services, per-service metrics endpoints of the
/// fork, auth key paths.
#[derive(Default)]
struct HostSummary<'a> {
    tailscale_services: Vec<&'a str>,
    metrics: Vec<String>,
    /// Planned services the fork's one `tsnsrv-all` process serves, by wave.
    shared_process: BTreeMap<usize, usize>,
    auth_keys: BTreeSet<String>,
}

/// What rolling back needs (a reusable key) and which metrics endpoints go, per host.
fn per_host(
    ctx: &Ctx,
    statuses: &Statuses,
    wave_of: &[Option<usize>],
    findings: &mut Vec<Finding>,
) {
    let mut per_host: BTreeMap<String, HostSummary> = BTreeMap::new();
    for (i, s) in ctx.inv.services.iter().enumerate() {
        if statuses.status[i] != Status::Planned {
            continue;
        }
        let e = per_host.entry(s.host.known().cloned().unwrap_or_default()).or_default();
        if let (tailshift_parsers::Flavour::ForkAll, Some(w)) = (s.flavour, wave_of[i]) {
            *e.shared_process.entry(w).or_default() += 1;
        }
        if statuses.strategy[i] == Strategy::TailscaleServices {
            e.tailscale_services.push(&s.name);
            if let Some(k) = s.effective.str("authKeyPath") {
                e.auth_keys.insert(k.to_string());
            }
        }
        if s.flavour == Flavour::Fork
            && let Some(addr) = s.effective.str("prometheusAddr")
        {
            e.metrics.push(format!("{}={addr}", s.name));
        }
    }
    for (host, h) in per_host {
        let shared: usize = h.shared_process.values().sum();
        if h.shared_process.len() > 1 {
            findings.push(Finding::new(
                "shared_process",
                Severity::Warning,
                None,
                format!(
                    "on {host}, the fork's one tsnsrv-all process serves {} that move in {} waves: moving a subset means changing its service list and restarting it, and every legacy service it still serves is down while it starts again (57 nodes took 2-3 minutes to start); the systemd and nix adapters refuse that in pre-flight: pin them to one wave (`[plan.pins]`), or use the command adapter",
                    tailshift_util::plural(shared, "service"),
                    h.shared_process.len()
                ),
                None,
            ));
        }
        if !h.tailscale_services.is_empty() {
            findings.push(Finding::new(
                "rollback_needs_reusable_key",
                Severity::Info,
                None,
                format!(
                    "on {host}, rolling back any of {} services under tailscale-services re-registers its node: the key at {} must be reusable (or an OAuth client), and each re-issued certificate counts toward Let's Encrypt's 5 duplicates per week",
                    h.tailscale_services.len(),
                    if h.auth_keys.is_empty() { "(authKeyPath unknown)".to_string() } else { h.auth_keys.into_iter().collect::<Vec<_>>().join(", ") }
                ),
                None,
            ));
        }
        if !h.metrics.is_empty() {
            findings.push(Finding::new(
                "reference_not_kept",
                Severity::Info,
                None,
                format!(
                    "on {host}, {} per-service metrics endpoints of the fork go away with their units (first: {}); update the scrape targets: the proxy serves tsnsrv's metric families with service_name",
                    h.metrics.len(),
                    h.metrics.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
                ),
                None,
            ));
        }
    }
}
