//! Findings about services and the fleet as a whole, each with a stable code: open-ended
//! Funnel prefixes, forward auth outside the inventory, ACL reachability that widens on one
//! node, references and rollbacks to prepare for. (The findings that explain a held-back
//! service are made where its status is judged.)

use super::status::Statuses;
use super::{Ctx, Finding, FindingCode, Status};
use crate::steps::Strategy;
use std::collections::{BTreeMap, BTreeSet};
use tailshift_parsers::{Flavour, Opt, Severity};

/// tsnsrv's prefixes match as plain strings (`/pub` also matches `/public-secrets`): on
/// Funnel, an open-ended one may publish more than meant.
pub(super) fn funnel_prefixes(ctx: &Ctx) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (i, s) in ctx.inv.services.iter().enumerate() {
        if s.effective.bool(Opt::Funnel) != Some(true) {
            continue;
        }
        let id = &ctx.ids[i];
        for p in s.effective.list(Opt::Prefixes).unwrap_or_default() {
            let Some(path) = p.strip_prefix("funnel:").or((!p.contains(':')).then_some(p.as_str()))
            else {
                continue;
            };
            if path != "/" && !path.ends_with('/') {
                findings.push(Finding::new(
                    FindingCode::FunnelPrefixOpenEnded,
                    Severity::Warning,
                    Some(id),
                    format!(
                        "{id}: the Funnel prefix {p:?} also matches any path that merely starts with it ({path}x, {path}-private, ...), as tsnsrv matched it; end it with / to publish only that directory"
                    ),
                    s.effective
                        .get(Opt::Prefixes)
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
            FindingCode::ReferenceNotKept,
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
            FindingCode::ServicesNeedAcceptRoutes,
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
            FindingCode::ExternalDependency,
            Severity::Info,
            Some(id),
            format!(
                "{id}'s forward auth {url} is not a service of the inventory: it must stay reachable"
            ),
            ctx.inv.services[*i].effective.get(Opt::AuthUrl).and_then(|v| v.location().cloned()),
        ));
    }
}

/// One node, one ACL identity: tags no longer tell services apart.
fn acl_widening(ctx: &Ctx, statuses: &Statuses, findings: &mut Vec<Finding>) {
    let mut tags_by_host: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, s) in ctx.inv.services.iter().enumerate() {
        if statuses.status[i] == Status::Planned && statuses.strategy[i].frees_node() {
            let host = s.host.known().cloned().unwrap_or_default();
            let tags = s.effective.list(Opt::Tags).unwrap_or_default().join(",");
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
                FindingCode::AclReachabilityWidens,
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
    /// Planned services the fork's one `tsnsrv-all` process serves, by wave (keep-node ones
    /// stay in it).
    shared_process: BTreeMap<usize, usize>,
    /// Every service that process serves, planned or not.
    shared_members: usize,
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
        if s.flavour == tailshift_parsers::Flavour::ForkAll {
            per_host
                .entry(s.host.known().cloned().unwrap_or_default())
                .or_default()
                .shared_members += 1;
        }
        if statuses.status[i] != Status::Planned {
            continue;
        }
        let e = per_host.entry(s.host.known().cloned().unwrap_or_default()).or_default();
        if let (tailshift_parsers::Flavour::ForkAll, Some(w)) = (s.flavour, wave_of[i])
            && statuses.strategy[i] != Strategy::KeepNode
        {
            *e.shared_process.entry(w).or_default() += 1;
        }
        if statuses.strategy[i] == Strategy::TailscaleServices {
            e.tailscale_services.push(&s.name);
            if let Some(k) = s.effective.str(Opt::AuthKeyPath) {
                e.auth_keys.insert(k.to_string());
            }
        }
        if s.flavour == Flavour::Fork
            && let Some(addr) = s.effective.str(Opt::PrometheusAddr)
        {
            e.metrics.push(format!("{}={addr}", s.name));
        }
    }
    for (host, h) in per_host {
        // Each wave that takes some of the process's services out while others remain
        // rewrites its service list and restarts it once: every service still in it is down
        // while it starts again.
        let mut left = h.shared_members;
        let mut restarts = Vec::new();
        for (w, n) in &h.shared_process {
            left = left.saturating_sub(*n);
            if left > 0 {
                restarts.push(format!("wave {w} ({} remain, ~{} s)", left, restart_seconds(left)));
            }
        }
        if !restarts.is_empty() {
            findings.push(Finding::new(
                FindingCode::SharedProcess,
                Severity::Warning,
                None,
                format!(
                    "on {host}, the fork's one tsnsrv-all process serves {}; {} of them move while others stay in it, so each of these waves rewrites its service list (the YAML of what remains, each node's options and state directory kept) and restarts it once, every legacy service it still serves down while it starts again: {} (forecast from 57 nodes taking 2-3 minutes to start); apply checks each of those names after the restart. Pinning them to one wave (`[plan.pins]`) avoids the restarts",
                    tailshift_util::plural(h.shared_members, "service"),
                    h.shared_process.values().sum::<usize>(),
                    restarts.join(", ")
                ),
                None,
            ));
        }
        if !h.tailscale_services.is_empty() {
            findings.push(Finding::new(
                FindingCode::RollbackNeedsReusableKey,
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
                FindingCode::ReferenceNotKept,
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

/// Forecast seconds the fork's process takes to bring `nodes` nodes up again: 57 nodes took
/// 2-3 minutes (150 s), so about 2.6 s a node.
pub fn restart_seconds(nodes: usize) -> usize {
    (nodes * 150).div_ceil(57).max(1)
}
