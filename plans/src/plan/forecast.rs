//! Each wave as the plan holds it: its services in the order they move (dependencies first),
//! each one's ordered steps, and the wave's forecast (nodes retired and left, cores and memory
//! freed).

use super::units::Units;
use super::waves::Schedule;
use super::{Ctx, Forecast, Wave};
use crate::steps::{Strategy, steps_for};
use std::collections::BTreeMap;
use tailshift_parsers::Service;

/// The waves of a schedule, with steps and forecast.
pub(super) fn waves(
    ctx: &Ctx,
    units: &Units,
    schedule: &Schedule,
    strategy: &[Strategy],
    mounts: &BTreeMap<usize, String>,
) -> Vec<Wave> {
    let mut left = ctx.inv.services.len();
    let mut out = Vec::with_capacity(schedule.waves.len());
    for (idx, (kind, us)) in schedule.waves.iter().enumerate() {
        let ordered = in_dependency_order(ctx, units, us);
        let mut steps = BTreeMap::new();
        let mut retired = 0;
        for &i in &ordered {
            let s = &ctx.inv.services[i];
            let checks = &ctx.policy.checks;
            let check = checks.get(ctx.ids[i].as_str()).or_else(|| checks.get(&s.name));
            let redirected = mounts.contains_key(&i) && s.effective.bool("funnel") == Some(true);
            let (path, status) = check
                .map(|c| (c.path.clone(), c.status))
                .unwrap_or(("/".into(), if redirected { 308 } else { 200 }));
            steps.insert(ctx.ids[i].clone(), steps_for(strategy[i], &unit_name(s), &path, status));
            if strategy[i].frees_node() {
                retired += 1;
            }
        }
        left -= retired;
        let cost = &ctx.policy.cost;
        out.push(Wave {
            number: idx + 1,
            kind: *kind,
            services: ordered.iter().map(|&i| ctx.ids[i].clone()).collect(),
            steps,
            forecast: Forecast {
                nodes_retired: retired,
                nodes_left: left,
                cpu_freed_cores: round3(retired as f64 * cost.cpu_per_node),
                memory_freed_mb: round3(retired as f64 * cost.memory_mb_per_node),
            },
        });
    }
    out
}

/// The services of a wave's units by id, then dependencies first (aliases that depend on each
/// other).
fn in_dependency_order(ctx: &Ctx, units: &Units, us: &[usize]) -> Vec<usize> {
    let mut pending: Vec<usize> =
        us.iter().flat_map(|u| units.members[*u].iter().copied()).collect();
    pending.sort_by_key(|&i| ctx.ids[i].clone());
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let pos = pending
            .iter()
            .position(|&i| ctx.graph.dependencies(i).iter().all(|d| !pending.contains(d)))
            .unwrap_or(0);
        ordered.push(pending.remove(pos));
    }
    ordered
}

/// The systemd unit that runs a service under tsnsrv.
fn unit_name(s: &Service) -> String {
    match s.flavour {
        tailshift_parsers::Flavour::ForkAll => "tsnsrv-all.service".into(),
        _ => format!("tsnsrv-{}.service", s.name),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
