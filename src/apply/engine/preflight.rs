//! What must hold before a wave changes anything; refused here means exit 3, nothing changed.

use super::common::{Request, legacy_name, route_of};
use crate::apply::state::{Phase, State};
use std::collections::BTreeSet;
use tailshift_checks::Outcome;
use tailshift_plans::plan::PlannedService;

/// Dependencies on other hosts that have not moved there yet, where that host's state can be
/// read (`[apply.peers]`): a moved service must never depend on one still on its node, applying
/// or rolling back. Without `[apply.peers.<host>]` only that the dependency answers is known.
fn dependencies_elsewhere(req: &Request, services: &[&PlannedService]) -> Vec<String> {
    let mut out = Vec::new();
    for s in services {
        for dep in &s.depends_on {
            let Some(d) = req.plan.services.iter().find(|x| x.id == dep.id) else { continue };
            let Some(host) = d.inventory.host.known().filter(|h| **h != req.host) else {
                continue;
            };
            let Some(peer) = req.cfg.peers.get(host) else { continue };
            let phase = match super::rollback::peer_state(req, host) {
                Ok(st) => st.services.get(d.id.as_str()).map(|x| x.phase),
                Err(why) => {
                    out.push(format!(
                        "{} depends on {} on {host}, whose state cannot be read: {why}",
                        s.id, d.id
                    ));
                    continue;
                }
            };
            if matches!(
                phase,
                Some(Phase::Unconfirmed | Phase::Applied | Phase::Finalizing | Phase::Finalized)
            ) {
                continue;
            }
            let wave = d.wave.map_or_else(|| "?".to_string(), |w| w.to_string());
            out.push(format!(
                "{} depends on {} on {host}, which has not moved there ({}): apply it there first: `migrate apply --wave {wave} --host {host} --config {} --plan {}`",
                s.id,
                d.id,
                phase.map_or("legacy", super::rollback::phase_name),
                peer.config.clone().unwrap_or_else(|| req.config_path.clone()).display(),
                req.plan_path.display()
            ));
        }
    }
    out
}

/// Everything that would block the wave, checked before anything changes: the proxy answers,
/// dependencies on other hosts answer, the shared process is not cut, every upstream can be
/// reached, every shim can be built.
pub(super) fn preflight(req: &Request, state: &State, services: &[&PlannedService]) -> Vec<String> {
    let cfg = req.cfg;
    let mut blocked = Vec::new();
    if let Err(e) = req.world.healthy(&cfg.admin_socket) {
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
            if let Outcome::Error(e) = req.world.check(&cfg.check, &legacy_name(d), "/", &[]) {
                blocked.push(format!(
                    "{} depends on {} (on another host), which does not answer: {e}",
                    s.id, d.id
                ));
            }
        }
    }
    blocked.extend(dependencies_elsewhere(req, services));
    // The fork's one process: what remains in it must be writable as its YAML.
    if let Some(why) = super::shared::preflight(req, state) {
        blocked.push(why);
    }
    for s in services {
        // The systemd adapter only stops and starts units: a kept node it cannot re-point.
        if matches!(cfg.legacy, crate::apply::config::Legacy::Systemd)
            && let Some(unit) =
                super::common::steps_of(req.plan, req.wave, s).iter().find_map(|st| match st {
                    tailshift_plans::steps::Step::RepointLegacy { unit } => Some(unit.clone()),
                    _ => None,
                })
        {
            blocked.push(format!(
                "{}: keep-node re-points {unit}, which the systemd adapter cannot do (it stops and starts units): use the nix or command adapter",
                s.id
            ));
        }
        match route_of(s) {
            Ok(r) => {
                if let Err(e) = req.world.reach_upstream(r) {
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
        if let Err(e) = req.world.shim(s.strategy, cfg, req.plan, s) {
            blocked.push(format!("{}: {e:#}", s.id));
        }
    }
    // Once per strategy: what the shim itself needs (a tailscaled new enough, ...).
    let mut seen = BTreeSet::new();
    for s in services {
        if seen.insert(s.strategy.as_str())
            && let Ok(shim) = req.world.shim(s.strategy, cfg, req.plan, s)
            && let Err(e) = shim.preflight()
        {
            blocked.push(format!("{e}"));
        }
    }
    blocked
}
