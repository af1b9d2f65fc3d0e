//! Undoing a service's steps in reverse, the route last, from what the state and the journal say
//! was done.

use super::adapters::shim_service;
use super::common::Ctx;
use super::common::event;
use super::common::steps_of;
use crate::apply::journal::Journal;
use crate::apply::state::{Phase, State};
use std::time::Duration;
use tailshift_plans::plan::PlannedService;
use tailshift_plans::steps::Step;

/// The steps of a service's wave that an undo must reverse: those the state records as done,
/// and every step an apply started that no rollback has undone since (a rollback that failed at
/// one step still removes the route: that step stays to undo). The journal is the truth: a
/// crash can come between a step's result and the state write, or before its result. Undoing
/// a step that did not happen is harmless: every inverse is idempotent.
pub(super) fn steps_to_undo(
    dir: &std::path::Path,
    state: &State,
    wave: usize,
    s: &PlannedService,
) -> anyhow::Result<Vec<usize>> {
    let mut done = state.services.get(s.id.as_str()).map(|st| st.done.clone()).unwrap_or_default();
    let mut started: Vec<usize> = Vec::new();
    for r in Journal::read(dir)? {
        if r.service != s.id || r.wave != wave {
            continue;
        }
        match (r.operation.as_str(), &r.kind) {
            ("apply", crate::apply::journal::Kind::Intent) => started.push(r.step),
            ("rollback", crate::apply::journal::Kind::Result) if r.error.is_none() => {
                started.retain(|i| *i != r.step)
            }
            _ => {}
        }
    }
    for i in started {
        if !done.contains(&i) {
            done.push(i);
        }
    }
    done.sort_unstable();
    Ok(done)
}

/// Undoes what the journal says this run did to these services, in reverse, the route last.
/// When the wave took services out of the fork's shared process, the steps after every
/// service's stop are undone first, then the stops (the first returns them all to the process
/// in one restart) and what came before, so no node comes back while its name still leads
/// elsewhere.
pub(super) fn undo(ctx: &mut Ctx, services: &[&PlannedService]) -> anyhow::Result<()> {
    let req = ctx.req;
    let mut first_error = None;
    let mut plan = Vec::new();
    for s in services.iter().rev() {
        let steps = steps_of(req.plan, req.wave, s);
        let done = steps_to_undo(&ctx.dir, &ctx.state, req.wave, s)?;
        let at = super::shared::split_at(req, s);
        plan.push((*s, steps, done, at));
    }
    let split = plan.iter().any(|(_, _, _, at)| at.is_some());
    for (s, _, _, _) in &plan {
        if let Some(st) = ctx.state.services.get_mut(s.id.as_str()) {
            st.phase = Phase::RollingBack;
        }
    }
    ctx.state.save(&ctx.dir)?;
    if split {
        for (s, steps, done, at) in &plan {
            let later: Vec<usize> =
                done.iter().copied().filter(|&i| i >= at.unwrap_or(0)).collect();
            undo_some(ctx, s, steps, &later, &mut first_error)?;
        }
    }
    for (s, steps, done, at) in &plan {
        let earlier: Vec<usize> =
            done.iter().copied().filter(|&i| !split || i < at.unwrap_or(0)).collect();
        let route_added = undo_some(ctx, s, steps, &earlier, &mut first_error)?;
        if route_added || done.contains(&0) {
            remove_route(ctx, s, &mut first_error)?;
        }
        if first_error.is_none() {
            ctx.state.services.remove(s.id.as_str());
        }
        ctx.state.save(&ctx.dir)?;
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Undoes these done steps of a service, in reverse; returns whether its route was added
/// (removed last, by the caller). A failed step is kept in `first_error`; the others still run.
fn undo_some(
    ctx: &mut Ctx,
    s: &PlannedService,
    steps: &[Step],
    done: &[usize],
    first_error: &mut Option<anyhow::Error>,
) -> anyhow::Result<bool> {
    let req = ctx.req;
    let cfg = req.cfg;
    let mut route_added = false;
    for &i in done.iter().rev() {
        let Some(step) = steps.get(i) else { continue };
        if crate::apply::signals::interrupted() {
            ctx.state.save(&ctx.dir)?;
            return Err(crate::apply::signals::Interrupted.into());
        }
        let what = format!("undo: {}", step.describe());
        let before = ctx.state.clone();
        let r = match step {
            Step::AddRoute => {
                route_added = true;
                continue;
            }
            Step::ShimPrepare { strategy } => ctx.record(s, i, &what, || {
                Ok(req.world.shim(*strategy, cfg, req.plan, s)?.unprepare(&shim_service(s, cfg))?)
            }),
            Step::StopLegacy { .. } if super::shared::applies(req, s) => {
                ctx.record(s, i, &what, || super::shared::start(req, &before))
            }
            Step::StopLegacy { unit } => {
                ctx.record(s, i, &what, || req.world.legacy(cfg, "start", unit, s, req.wave))
            }
            Step::ShimComplete { strategy } => ctx.record(s, i, &what, || {
                Ok(req
                    .world
                    .shim(*strategy, cfg, req.plan, s)?
                    .uncomplete(&shim_service(s, cfg))?)
            }),
            Step::RepointLegacy { unit } => ctx.record(s, i, &what, || {
                req.world.shim(s.strategy, cfg, req.plan, s)?.unprepare(&shim_service(s, cfg))?;
                req.world.legacy(cfg, "restore", unit, s, req.wave)
            }),
            // The legacy node was started just before: give it (and caches) the settle time
            // before names point back at it.
            Step::Settle => ctx.record(s, i, &what, || {
                req.world.sleep(Duration::from_millis(cfg.settle_ms));
                Ok(())
            }),
            // Nothing to undo, but recorded: it closes an interrupted check's intent.
            Step::Verify { .. } => ctx.record(s, i, &what, || Ok(())),
        };
        match r {
            // Closing an interrupted check's intent changes nothing: not worth a line.
            Ok(()) if matches!(step, Step::Verify { .. }) => {}
            Ok(()) => event(
                req,
                format!("{} step {i}: {what}: ok", s.id),
                serde_json::json!({"event": "step", "operation": ctx.operation, "service": s.id, "step": i, "what": what, "result": "ok"}),
            ),
            Err(e) => {
                eprintln!("{} step {i}: {what}: FAILED: {e:#}", s.id);
                first_error.get_or_insert(e);
            }
        }
    }
    Ok(route_added)
}

/// Removes a service's route, after the settle time: clients that still hold the proxy's
/// address must not meet a 404.
fn remove_route(
    ctx: &mut Ctx,
    s: &PlannedService,
    first_error: &mut Option<anyhow::Error>,
) -> anyhow::Result<()> {
    let req = ctx.req;
    let cfg = req.cfg;
    req.world.sleep(Duration::from_millis(cfg.settle_ms));
    let what = "undo: remove the route";
    let r = ctx.record(s, 0, what, || {
        let mut table = req.world.routes(&cfg.admin_socket)?;
        table.retain(|r| r.service != s.id);
        req.world.put_routes(&cfg.admin_socket, &table)
    });
    match r {
        Ok(()) => event(
            req,
            format!("{} step 0: {what}: ok", s.id),
            serde_json::json!({"event": "step", "operation": ctx.operation, "service": s.id, "step": 0, "what": what, "result": "ok"}),
        ),
        Err(e) => {
            eprintln!("{} step 0: {what}: FAILED: {e:#}", s.id);
            first_error.get_or_insert(e);
        }
    }
    Ok(())
}
