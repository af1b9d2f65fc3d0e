//! Each service as the plan holds it: its placement on the one node, its dependencies and
//! aliases, why it is where it is, and its route, made once here and sealed with the plan.

use super::refs::PolicyRefs;
use super::status::Statuses;
use super::units::Units;
use super::waves::Schedule;
use super::{Ctx, Finding, Listener, Placement, PlannedService, RouteName, WaveKind};
use crate::graph::EdgeKind;
use crate::id::{Dependency, ServiceId};
use std::collections::BTreeMap;
use tailshift_parsers::Severity;
use tailshift_routes::Route;

/// Every service of the inventory, in inventory order, without routes ([`make_routes`] adds
/// them); a service that cannot start today gets a `down_today` finding.
pub(super) fn planned(
    ctx: &Ctx,
    refs: &PolicyRefs,
    statuses: &Statuses,
    units: &Units,
    schedule: &Schedule,
    findings: &mut Vec<Finding>,
) -> Vec<PlannedService> {
    let n = ctx.inv.services.len();
    let mut wave_of: Vec<Option<usize>> = vec![None; n];
    for (u, members) in units.members.iter().enumerate() {
        for &m in members {
            wave_of[m] = schedule.wave_of_unit[u];
        }
    }
    let mut alias_groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, root) in ctx.graph.alias_of.iter().enumerate() {
        alias_groups.entry(*root).or_default().push(i);
    }
    let mut services = Vec::with_capacity(n);
    for (i, s) in ctx.inv.services.iter().enumerate() {
        let mut reasons = statuses.reasons[i].clone();
        let aliases: Vec<ServiceId> = alias_groups[&ctx.graph.alias_of[i]]
            .iter()
            .filter(|&&j| j != i)
            .map(|&j| ctx.ids[j].clone())
            .collect();
        if let Some(w) = wave_of[i] {
            let mut why = wave_reason(ctx, units, schedule, i, w);
            if refs.pins.contains_key(&i) {
                why.push_str("; pinned");
            }
            if !aliases.is_empty() {
                let names: Vec<&str> = aliases.iter().map(ServiceId::as_str).collect();
                why.push_str(&format!("; moves with its aliases {}", names.join(", ")));
            }
            reasons.push(why);
        }
        if s.cannot_start() {
            reasons.push("down today (its unit cannot start): moving it restores it".into());
            findings.push(Finding::new(
                "down_today",
                Severity::Info,
                Some(&ctx.ids[i]),
                format!("{} cannot have started under tsnsrv; its check has no working 'before' to compare with", ctx.ids[i]),
                s.findings.iter().find(|f| f.code == "unit_cannot_start").and_then(|f| f.location.clone()),
            ));
        }
        services.push(PlannedService {
            id: ctx.ids[i].clone(),
            status: statuses.status[i],
            wave: wave_of[i],
            strategy: statuses.strategy[i],
            placement: placement(ctx, refs, i),
            depends_on: dependencies(ctx, i),
            aliases,
            reasons,
            inventory: s.clone(),
            route: None,
        });
    }
    services
}

/// Why a service is in wave `w`: the canary's, a hub's or a ramp wave's reason.
fn wave_reason(ctx: &Ctx, units: &Units, schedule: &Schedule, i: usize, w: usize) -> String {
    let u = units.of[i];
    match schedule.waves[w - 1].0 {
        WaveKind::Canary => format!(
            "canary: no dependencies, no dependents, tailnet-only, {} req/day",
            ctx.usage(i)
        ),
        WaveKind::Hub => format!(
            "hub: {} services depend on it; moved on its own before them",
            units.dependents[u]
        ),
        WaveKind::Ramp if units.deps[u].is_empty() => "ramp: no dependencies".to_string(),
        WaveKind::Ramp => format!(
            "ramp: after {}",
            units.deps[u]
                .iter()
                .map(|d| format!(
                    "{} (wave {})",
                    units.keys[*d],
                    schedule.wave_of_unit[*d].unwrap_or(0)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// What a service depends on, directly, with why.
fn dependencies(ctx: &Ctx, i: usize) -> Vec<Dependency> {
    ctx.graph
        .dependencies(i)
        .into_iter()
        .map(|d| Dependency {
            id: ctx.ids[d].clone(),
            why: ctx.graph.edge_kind(i, d).unwrap_or(EdgeKind::Policy),
        })
        .collect()
}

/// Where a service lands: its legacy name at `/` on the listener its `plaintext` decides (the
/// port of its `listenAddr`), then the policy's access, timeouts and mount (a path under the
/// node's own name; a public service's legacy name redirects there).
fn placement(ctx: &Ctx, refs: &PolicyRefs, i: usize) -> Placement {
    let s = &ctx.inv.services[i];
    let tailnet = &ctx.policy.tailnet;
    let plaintext = s.effective.bool("plaintext") == Some(true);
    let port = s
        .effective
        .str("listenAddr")
        .and_then(|a| a.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
        .unwrap_or(if plaintext { 80 } else { 443 });
    let mut p = Placement {
        names: vec![RouteName { name: format!("{}.{tailnet}", s.name), mount: "/".into() }],
        listener: if plaintext { Listener::Plaintext } else { Listener::Https },
        port,
        redirect_to: None,
        access: refs.access.get(&i).cloned().unwrap_or_default(),
        timeouts: refs.timeouts.get(&i).copied().unwrap_or_default(),
    };
    if let Some(m) = refs.mounts.get(&i) {
        let host = s.host.known().cloned().unwrap_or_default();
        let node = format!("{host}.{tailnet}");
        p.names.push(RouteName { name: node.clone(), mount: m.clone() });
        if s.effective.bool("funnel") == Some(true) {
            p.redirect_to = Some(format!("https://{node}{m}"));
        }
    }
    p
}

/// Each service's route, made once here from its entry and placement. A service in a wave whose
/// route cannot be built, or whose route conflicts with another's, gets a `no_route` finding
/// (apply refuses to move it); other services keep the route when it builds, for display.
pub(super) fn make_routes(services: &mut [PlannedService], findings: &mut Vec<Finding>) {
    for s in services.iter_mut() {
        match crate::route::route_of(&s.inventory, &s.placement, s.wave) {
            Ok(r) => s.route = Some(r),
            Err(e) if s.wave.is_some() => findings.push(Finding::new(
                "no_route",
                Severity::Warning,
                Some(&s.id),
                format!("{e}: the service cannot be moved until it is"),
                s.inventory.location.clone(),
            )),
            Err(_) => {}
        }
    }
    let waved: Vec<Route> =
        services.iter().filter(|s| s.wave.is_some()).filter_map(|s| s.route.clone()).collect();
    if let Err(e) = tailshift_routes::validate_table(&waved) {
        findings.push(Finding::new("no_route", Severity::Warning, None, e.to_string(), None));
    }
}
