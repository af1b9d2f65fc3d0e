//! What must hold before a wave changes anything; refused here means exit 3, nothing changed.

use super::adapters::shim_for;
use super::common::{Request, SHARED_UNIT, legacy_name, legacy_unit, route_of};
use super::steps::reach_upstream;
use crate::apply::admin_client;
use crate::apply::config::Legacy;
use crate::apply::state::{Phase, State};
use std::collections::BTreeSet;
use tailshift_checks::{Outcome, check};
use tailshift_plans::plan::PlannedService;

/// The fork's `tsnsrv-all` runs every service of a host in one process: stopping or masking it
/// to move some would take down the others (the forward-auth service among them). Until the
/// systemd and nix adapters can rewrite that process's service list, a wave that would have
/// them stop it while it still serves services outside the wave is refused before anything
/// changes.
fn shared_process_conflict(
    req: &Request,
    state: &State,
    services: &[&PlannedService],
) -> Option<String> {
    let shared = |s: &PlannedService| legacy_unit(req.plan, s.wave.unwrap_or(0), s) == SHARED_UNIT;
    // The command adapter is called per service (TAILSHIFT_SERVICE) and takes that one service
    // out of the process's list itself; systemd and the nix adapter can only stop the whole unit.
    if matches!(req.cfg.legacy, Legacy::Command { .. }) || !services.iter().any(|s| shared(s)) {
        return None;
    }
    let moving: BTreeSet<&str> = services.iter().map(|s| s.id.as_str()).collect();
    let staying: Vec<&str> = req
        .plan
        .services
        .iter()
        .filter(|s| s.inventory.host.known().is_some_and(|h| h == &req.host))
        .filter(|s| s.inventory.flavour == tailshift_parsers::Flavour::ForkAll)
        .filter(|s| !moving.contains(s.id.as_str()))
        .filter(|s| {
            !state
                .services
                .get(s.id.as_str())
                .is_some_and(|st| matches!(st.phase, Phase::Applied | Phase::Finalized))
        })
        .map(|s| s.id.as_str())
        .collect();
    if staying.is_empty() {
        return None;
    }
    Some(format!(
        "{SHARED_UNIT} on {} also serves {} that wave {} does not move ({}): stopping it would take them down; no adapter can yet take a subset out of the fork's one process, so move all of them in one wave (`[plan.pins]`)",
        req.host,
        tailshift_util::plural(staying.len(), "service"),
        req.wave,
        staying.join(", ")
    ))
}

/// Everything that would block the wave, checked before anything changes: the proxy answers,
/// dependencies on other hosts answer, the shared process is not cut, every upstream can be
/// reached, every shim can be built.
pub(super) fn preflight(req: &Request, state: &State, services: &[&PlannedService]) -> Vec<String> {
    let cfg = req.cfg;
    let mut blocked = Vec::new();
    if let Err(e) = admin_client::healthy(&cfg.admin_socket) {
        blocked.push(format!("{e:#}"));
    }
    // A dependency on another host must answer by its name (moved there already, or still on
    // its node): this host cannot see that host's state, only whether the service works.
    for s in services {
        for dep in &s.depends_on {
            let Some(d) = req.plan.services.iter().find(|x| x.id == dep.id) else { continue };
            if d.inventory.host.known().is_some_and(|h| h == &req.host) {
                continue;
            }
            if let Outcome::Error(e) = check(&cfg.check, &legacy_name(d), "/") {
                blocked.push(format!(
                    "{} depends on {} (on another host), which does not answer: {e}",
                    s.id, d.id
                ));
            }
        }
    }
    if let Some(why) = shared_process_conflict(req, state, services) {
        blocked.push(why);
    }
    for s in services {
        match route_of(s) {
            Ok(r) => {
                if let Err(e) = reach_upstream(r) {
                    // Name what was dialed: the socket or address, else the URL.
                    let dialed = r
                        .upstream
                        .unix
                        .clone()
                        .or_else(|| r.upstream.tcp_addr.clone())
                        .unwrap_or_else(|| r.upstream.url.to_string());
                    blocked.push(format!("{}: upstream {dialed}: {e}", s.id));
                }
            }
            Err(e) => blocked.push(format!("{}: {e}", s.id)),
        }
        if let Err(e) = shim_for(s.strategy, cfg, req.plan, s) {
            blocked.push(format!("{}: {e:#}", s.id));
        }
    }
    // Once per strategy: what the shim itself needs (a tailscaled new enough, ...).
    let mut seen = BTreeSet::new();
    for s in services {
        if seen.insert(s.strategy.as_str())
            && let Ok(shim) = shim_for(s.strategy, cfg, req.plan, s)
            && let Err(e) = shim.preflight()
        {
            blocked.push(format!("{e}"));
        }
    }
    blocked
}
