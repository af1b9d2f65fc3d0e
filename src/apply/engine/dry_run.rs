//! Dry runs: each step the real run would take, with its concrete effect, nothing changed.

use super::adapters::shim_service;
use super::common::Request;
use super::common::event;
use super::common::legacy_name;
use super::common::route_of;
use super::common::steps_of;
use super::undo::steps_to_undo;
use crate::apply::config::Legacy;
use crate::apply::state::State;
use tailshift_plans::plan::PlannedService;
use tailshift_plans::steps::Step;

/// What a step would do, concretely, for a dry run: the adapter's command and environment,
/// the route (without upstream header values, which can be credentials), the shim's actions.
pub(super) fn effect_of(req: &Request, s: &PlannedService, step: &Step, undo: bool) -> String {
    let cfg = req.cfg;
    let legacy = |action: &str, unit: &str| match &cfg.legacy {
        Legacy::Command { command } => format!(
            "run {} with TAILSHIFT_ACTION={action} TAILSHIFT_UNIT={unit} TAILSHIFT_SERVICE={} TAILSHIFT_WAVE={}",
            command.join(" "),
            s.id,
            req.wave
        ),
        Legacy::Nix { switch, .. } => {
            let f = cfg.legacy.nix_files().expect("the nix adapter");
            format!(
                "write {}{} ({action} {unit}), then run {}",
                f.data.display(),
                f.module.map(|m| format!(" and {}", m.display())).unwrap_or_default(),
                switch.join(" ")
            )
        }
        Legacy::Systemd => match action {
            "stop" => format!("systemctl stop {unit}; systemctl mask --runtime {unit}"),
            "start" => format!("systemctl unmask --runtime {unit}; systemctl start {unit}"),
            other => format!("systemd adapter: {other} {unit}"),
        },
    };
    let shim = |what: &str| match req.world.shim(s.strategy, cfg, req.plan, s) {
        Ok(sh) => format!("{what}: {}", sh.describe(&shim_service(s, cfg)).join("; ")),
        Err(e) => format!("{what}: cannot be built: {e:#}"),
    };
    match (step, undo) {
        (Step::AddRoute, false) => match route_of(s) {
            Ok(r) => {
                let mut shown = r.clone();
                for v in shown.upstream_headers.values_mut() {
                    *v = "(hidden)".into();
                }
                format!(
                    "PUT /routes on {} with {}",
                    cfg.admin_socket.display(),
                    serde_json::to_string(&shown).unwrap_or_default()
                )
            }
            Err(e) => format!("{e:#}"),
        },
        (Step::AddRoute, true) => {
            format!("PUT /routes on {} without {}", cfg.admin_socket.display(), s.id)
        }
        (Step::ShimPrepare { .. }, false) => shim("shim prepare"),
        (Step::ShimPrepare { .. }, true) => shim("shim unprepare, reversing"),
        (Step::ShimComplete { .. }, false) => shim("shim complete"),
        (Step::ShimComplete { .. }, true) => shim("shim uncomplete, reversing"),
        (Step::Settle, _) => format!("wait {} ms", cfg.settle_ms),
        (Step::StopLegacy { unit }, undo) if super::shared::applies(req, s) => {
            let how = match &cfg.legacy {
                Legacy::Systemd => format!(
                    "write its YAML (0600, in the state directory) and the drop-in {}/{unit}.d/50-tailshift.conf (or remove it when every service is back), systemctl daemon-reload, restart {unit} once",
                    cfg.systemd_dir.display()
                ),
                _ => legacy(if undo { "start" } else { "stop" }, unit).replace(
                    &format!(" ({} {unit})", if undo { "start" } else { "stop" }),
                    " (shared_processes)",
                ),
            };
            format!(
                "{} the wave's services {} {unit}, which keeps serving the others: {how}; then every legacy name it still serves must answer again",
                if undo { "return" } else { "take" },
                if undo { "to" } else { "out of" }
            )
        }
        (Step::StopLegacy { unit }, false) => legacy("stop", unit),
        (Step::StopLegacy { unit }, true) => legacy("start", unit),
        (Step::RepointLegacy { unit }, false) => legacy("repoint", unit),
        (Step::RepointLegacy { unit }, true) => legacy("restore", unit),
        (Step::Verify { path, status }, _) => format!(
            "ask https://{}{path} through the resolver, expect {status} from the proxy",
            legacy_name(s)
        ),
    }
}

/// Prints a dry run's steps: the ones the real run would take, in its order.
pub(super) fn print_dry_run(
    req: &Request,
    operation: &str,
    steps: &[(&PlannedService, usize, Step, bool)],
) {
    event(
        req,
        format!("{operation} wave {} on {} (dry run: nothing changes)", req.wave, req.host),
        serde_json::json!({"event": "dry_run", "operation": operation}),
    );
    for (s, i, step, undo) in steps {
        let what = match (step, undo) {
            (Step::AddRoute, true) => "undo: remove the route".to_string(),
            (_, true) => format!("undo: {}", step.describe()),
            _ => step.describe(),
        };
        let effect = effect_of(req, s, step, *undo);
        event(
            req,
            format!("  {} step {i}: {what}: {effect}", s.id),
            serde_json::json!({"event": "would_run", "service": s.id, "step": i, "what": what, "effect": effect}),
        );
    }
}

/// What an undo of these services would run, in its order (for a dry run).
pub(super) fn undo_steps<'a>(
    req: &Request,
    dir: &std::path::Path,
    state: &State,
    services: &[&'a PlannedService],
) -> anyhow::Result<Vec<(&'a PlannedService, usize, Step, bool)>> {
    // The order of `undo`: with the shared process, the steps after every stop first.
    let mut out = Vec::new();
    let mut plan = Vec::new();
    for s in services.iter().rev() {
        let steps = steps_of(req.plan, req.wave, s);
        let done = steps_to_undo(dir, state, req.wave, s)?;
        plan.push((*s, steps, done, super::shared::split_at(req, s)));
    }
    let split = plan.iter().any(|(_, _, _, at)| at.is_some());
    fn push<'a>(
        out: &mut Vec<(&'a PlannedService, usize, Step, bool)>,
        s: &'a PlannedService,
        steps: &[Step],
        idx: Vec<usize>,
    ) {
        for i in idx.into_iter().rev() {
            match steps.get(i) {
                Some(Step::AddRoute | Step::Verify { .. }) | None => {}
                Some(step) => out.push((s, i, step.clone(), true)),
            }
        }
    }
    if split {
        for (s, steps, done, at) in &plan {
            let later = done.iter().copied().filter(|&i| i >= at.unwrap_or(0)).collect();
            push(&mut out, s, steps, later);
        }
    }
    for (s, steps, done, at) in &plan {
        let earlier = done.iter().copied().filter(|&i| !split || i < at.unwrap_or(0)).collect();
        push(&mut out, s, steps, earlier);
        if done.contains(&0) {
            out.push((*s, 0, Step::AddRoute, true));
        }
    }
    Ok(out)
}
