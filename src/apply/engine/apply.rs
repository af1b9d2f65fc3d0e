//! `migrate apply --wave N`: preconditions, pre-flight, baseline, each service's steps, then the
//! wave's outcome (applied, waiting for confirmation, or rolled back by itself).

use super::common::Ctx;
use super::common::Request;
use super::common::credentials;
use super::common::event;
use super::common::legacy_name;
use super::common::lock;
use super::common::show;
use super::common::steps_of;
use super::common::wave_services;
use super::dry_run::print_dry_run;
use super::preflight::preflight;
use super::steps::Inconclusive;
use super::steps::run_step;
use super::undo::undo;
use crate::apply::journal::Journal;
use crate::apply::state::{Phase, ServiceState, State};
use crate::exit::Exit;
use std::collections::BTreeMap;
use tailshift_checks::Outcome;
use tailshift_plans::ServiceId;
use tailshift_plans::plan::PlannedService;
use tailshift_plans::steps::Step;
use tailshift_util::Timestamp;

/// Applies a wave. Returns the exit code of design section 6.
pub fn apply(req: &Request) -> anyhow::Result<Exit> {
    let cfg = req.cfg;
    let dir = cfg.state_dir();
    let services = wave_services(req.plan, req.wave, &req.host)?;
    let _lock = match lock(req, "apply") {
        Ok(l) => l,
        Err(exit) => return Ok(exit),
    };
    let state = State::load(&dir)?;
    if let Err(exit) = preconditions(req, &state, &services) {
        return Ok(exit);
    }
    if services.is_empty() {
        event(
            req,
            format!("wave {}: no service on {}", req.wave, req.host),
            serde_json::json!({"event": "wave", "result": "nothing_to_do"}),
        );
        return Ok(Exit::Ok);
    }
    let blocked = preflight(req, &state, &services);
    if !blocked.is_empty() {
        for b in &blocked {
            eprintln!("pre-flight: {b}");
        }
        eprintln!("error: pre-flight blocked wave {}; nothing changed", req.wave);
        return Ok(Exit::Blocked);
    }
    if req.dry_run {
        print_dry_run(req, "apply", &remaining_steps(req, &state, &services));
        return Ok(dry_run_exit(req, &state, &services));
    }
    // Whatever plan.json holds later, this wave is undone with the plan that applied it.
    crate::apply::kept_plans::keep(&dir, req.plan)?;
    let mut baseline = baseline(req, &services)?;
    staying_baseline(req, &state, &mut baseline);
    let mut ctx =
        Ctx { req, journal: Journal::open(&dir)?, state, dir: dir.clone(), operation: "apply" };
    let mut failure = None;
    let mut inconclusive: Vec<&ServiceId> = Vec::new();
    crate::apply::signals::catch();
    'services: for (s, range) in segments(req, &services) {
        let steps = steps_of(req.plan, req.wave, s);
        let done = done_steps(&ctx.state, req, s);
        let last = range.end == steps.len();
        for (i, step) in steps.iter().enumerate().take(range.end).skip(range.start) {
            if done.contains(&i) {
                continue;
            }
            if crate::apply::signals::interrupted() {
                eprintln!(
                    "interrupted before {} step {i}; every step so far is recorded: run `migrate apply --wave {w} {f}` again to resume, or `migrate rollback --wave {w} {f}`",
                    s.id,
                    w = req.wave,
                    f = req.flags()
                );
                return Ok(Exit::Interrupted);
            }
            let what = step.describe();
            let before = ctx.state.clone();
            begin(&mut ctx, s)?;
            let r = ctx.record(s, i, &what, || run_step(req, s, step, &baseline, &before));
            match r {
                Ok(()) => {
                    mark_done(&mut ctx, s, i)?;
                    event(
                        req,
                        format!("{} step {i}: {what}: ok", s.id),
                        serde_json::json!({"event": "step", "operation": "apply", "service": s.id, "step": i, "what": what, "result": "ok"}),
                    );
                }
                Err(e)
                    if e.downcast_ref::<Inconclusive>().is_some()
                        && cfg.on_inconclusive != crate::apply::config::OnCheck::Rollback =>
                {
                    // Everything else of the step held: it counts as done; by default the wave
                    // waits for the operator (or its watcher's deadline) instead of passing.
                    eprintln!("{} step {i}: {what}: {e:#}", s.id);
                    if cfg.on_inconclusive == crate::apply::config::OnCheck::Pause {
                        inconclusive.push(&s.id);
                    }
                    mark_done(&mut ctx, s, i)?;
                }
                Err(e)
                    if matches!(step, Step::Verify { .. })
                        && cfg.on_fail == crate::apply::config::OnCheck::Pause =>
                {
                    // The policy says a failed check pauses: the wave stays as it is, for the
                    // operator to confirm or roll back.
                    eprintln!("{} step {i}: {what}: FAILED: {e:#} (on_fail = \"pause\")", s.id);
                    inconclusive.push(&s.id);
                    mark_done(&mut ctx, s, i)?;
                }
                Err(e) => {
                    eprintln!("{} step {i}: {what}: FAILED: {e:#}", s.id);
                    failure = Some(format!("{}: {what}: {e:#}", s.id));
                    break 'services;
                }
            }
        }
        if !last {
            continue;
        }
        mark_moved(&mut ctx, s, inconclusive.contains(&&s.id))?;
    }
    if let Some(why) = failure.as_ref().filter(|_| crate::apply::signals::interrupted()) {
        // The operator asked to stop (a third signal stopped the adapter): stop, resumable,
        // rather than start a rollback nobody asked for.
        eprintln!(
            "interrupted: wave {w} stopped ({why}); every step so far is recorded: run `migrate apply --wave {w} {f}` again to resume, or `migrate rollback --wave {w} {f}`",
            w = req.wave,
            f = req.flags()
        );
        return Ok(Exit::Interrupted);
    }
    if let Some(why) = failure {
        return Ok(roll_back_after_failure(&mut ctx, &services, &why));
    }
    let waiting = services.iter().any(|s| {
        ctx.state.services.get(s.id.as_str()).is_some_and(|st| st.phase == Phase::Unconfirmed)
    });
    if waiting || !inconclusive.is_empty() {
        let deadline = req.world.now_unix() + cfg.confirm_timeout_s;
        drop(ctx);
        super::watcher::spawn_watcher(req, deadline)?;
        event(
            req,
            format!(
                "wave {} applied on {} and checked; confirm with `migrate confirm --wave {} {}` within {} s, or it is rolled back",
                req.wave,
                req.host,
                req.wave,
                req.flags(),
                cfg.confirm_timeout_s
            ),
            serde_json::json!({"event": "wave", "result": "awaiting_confirmation", "deadline": deadline}),
        );
        return Ok(Exit::Paused);
    }
    event(
        req,
        format!("wave {} applied on {}", req.wave, req.host),
        serde_json::json!({"event": "wave", "result": "applied"}),
    );
    Ok(Exit::Ok)
}

/// The code a dry run exits with: the real run's, as far as it can be told before its checks.
/// It waits for the operator (6) when a service would be left, or already is, unconfirmed.
fn dry_run_exit(req: &Request, state: &State, services: &[&PlannedService]) -> Exit {
    let operator = req.cfg.confirm == crate::apply::config::Confirm::Operator;
    let waits = services.iter().any(|s| match state.services.get(s.id.as_str()) {
        Some(st) if st.phase == Phase::Unconfirmed => true,
        Some(st) if matches!(st.phase, Phase::Applied | Phase::Finalizing | Phase::Finalized) => {
            false
        }
        _ => operator,
    });
    if waits { Exit::Paused } else { Exit::Ok }
}

/// The baseline of the legacy names the fork's shared process keeps serving: its restart must
/// not lose them.
fn staying_baseline(
    req: &Request,
    state: &State,
    baseline: &mut BTreeMap<ServiceId, tailshift_checks::Outcome>,
) {
    for s in super::shared::staying(req, state) {
        if !baseline.contains_key(&s.id) {
            let o = req.world.check(&req.cfg.check, &legacy_name(s), "/", &[]);
            event(
                req,
                format!(
                    "baseline {} (stays in {}): {}",
                    s.id,
                    super::common::SHARED_UNIT,
                    show(&o)
                ),
                serde_json::json!({"event": "baseline", "service": s.id, "outcome": show(&o), "stays_in": super::common::SHARED_UNIT}),
            );
            baseline.insert(s.id.clone(), o);
        }
    }
}

/// What must hold on this host before the wave: no unfinished rollback of it, the earlier waves
/// in place, no other plan's change since this plan was made. Each refusal is printed.
fn preconditions(req: &Request, state: &State, services: &[&PlannedService]) -> Result<(), Exit> {
    // A rollback that did not finish leaves steps partly undone: applying over it would mark
    // services applied whose legacy node runs again. Only the rollback can complete it.
    let half_undone: Vec<&str> = services
        .iter()
        .filter(|s| {
            state.services.get(s.id.as_str()).is_some_and(|st| st.phase == Phase::RollingBack)
        })
        .map(|s| s.id.as_str())
        .collect();
    if !half_undone.is_empty() {
        eprintln!(
            "error: a rollback of wave {w} did not finish on {h} ({}): complete it first with `migrate rollback --wave {w} --host {h} --config {c} --plan {p}`",
            half_undone.join(", "),
            w = req.wave,
            h = req.host,
            c = req.config_path.display(),
            p = req.plan_path.display()
        );
        return Err(Exit::Dirty);
    }
    // Earlier waves must be in place on this host.
    for w in req.plan.waves.iter().filter(|w| w.number < req.wave) {
        for s in wave_services(req.plan, w.number, &req.host).map_err(|_| Exit::BadInput)? {
            let ok = state
                .services
                .get(s.id.as_str())
                .is_some_and(|st| matches!(st.phase, Phase::Applied | Phase::Finalized));
            if !ok {
                eprintln!(
                    "error: wave {} is not applied on {} ({} is not), apply it first",
                    w.number, req.host, s.id
                );
                return Err(Exit::Blocked);
            }
        }
    }
    // Another plan changed this host after this plan was made: stale.
    let created = req.plan.created;
    let records = Journal::read(&req.cfg.state_dir()).map_err(|e| {
        eprintln!("error: {e:#}");
        Exit::Dirty
    })?;
    if let Some(r) = records
        .iter()
        .find(|r| r.plan_id != req.plan.plan_id && Timestamp::from_unix_secs(r.at) >= created)
    {
        eprintln!(
            "stale plan: plan {} changed this host ({} of wave {}, {}) after this plan was created ({created}); plan again",
            r.plan_id, r.operation, r.wave, r.service
        );
        return Err(Exit::StalePlan);
    }
    Ok(())
}

/// The steps a run would still take: those not recorded as done under this plan.
fn remaining_steps<'a>(
    req: &Request,
    state: &State,
    services: &[&'a PlannedService],
) -> Vec<(&'a PlannedService, usize, Step, bool)> {
    let mut would = Vec::new();
    for (s, range) in segments(req, services) {
        let done = done_steps(state, req, s);
        for (i, step) in steps_of(req.plan, req.wave, s)
            .into_iter()
            .enumerate()
            .take(range.end)
            .skip(range.start)
        {
            if !done.contains(&i) {
                would.push((s, i, step, false));
            }
        }
    }
    would
}

/// The order a wave's steps run in: service by service, or, when the wave takes services out
/// of the fork's shared process, every service's steps before its stop first, then the rest
/// (one restart of the process takes them all out, each already prepared).
fn segments<'a>(
    req: &Request,
    services: &[&'a PlannedService],
) -> Vec<(&'a PlannedService, std::ops::Range<usize>)> {
    let len = |s: &PlannedService| steps_of(req.plan, req.wave, s).len();
    let split: Vec<Option<usize>> =
        services.iter().map(|s| super::shared::split_at(req, s)).collect();
    if split.iter().all(Option::is_none) {
        return services.iter().map(|s| (*s, 0..len(s))).collect();
    }
    let mut out: Vec<_> =
        services.iter().zip(&split).map(|(s, at)| (*s, 0..at.unwrap_or(0))).collect();
    out.extend(services.iter().zip(&split).map(|(s, at)| (*s, at.unwrap_or(0)..len(s))));
    out
}

/// Each service fetched through its old name, the way users reach it, before anything moves.
fn baseline(
    req: &Request,
    services: &[&PlannedService],
) -> anyhow::Result<BTreeMap<ServiceId, Outcome>> {
    let mut baseline = BTreeMap::new();
    for s in services {
        let path = steps_of(req.plan, req.wave, s)
            .iter()
            .find_map(|st| match st {
                Step::Verify { path, .. } => Some(path.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "/".into());
        let o = req.world.check(&req.cfg.check, &legacy_name(s), &path, &credentials(req.plan, s)?);
        event(
            req,
            format!("baseline {}: {}", s.id, show(&o)),
            serde_json::json!({"event": "baseline", "service": s.id, "outcome": show(&o), "status": match &o { Outcome::Status { code, .. } => Some(*code), _ => None }}),
        );
        baseline.insert(s.id.clone(), o);
    }
    Ok(baseline)
}

/// A step failed: the tool rolls the whole wave back by itself, and says so in a closing line
/// (what failed, what was undone, the exit code).
fn roll_back_after_failure(ctx: &mut Ctx, services: &[&PlannedService], why: &str) -> Exit {
    let req = ctx.req;
    eprintln!("wave {} failed ({why}); rolling it back", req.wave);
    ctx.operation = "rollback";
    let undone = undo(ctx, services);
    let names: Vec<&str> = services.iter().map(|s| s.id.as_str()).collect();
    match undone {
        Ok(()) => {
            eprintln!(
                "wave {} on {}: {why}; rolled back ({} back on their legacy nodes: {}); exit {}",
                req.wave,
                req.host,
                tailshift_util::plural(names.len(), "service"),
                names.join(", "),
                Exit::RolledBack.code()
            );
            Exit::RolledBack
        }
        Err(e) => {
            eprintln!(
                "error: wave {} on {}: {why}; the rollback failed too: {e:#}; `migrate status --state-dir {}` shows where each service is; exit {}",
                req.wave,
                req.host,
                ctx.dir.display(),
                Exit::Dirty.code()
            );
            Exit::Dirty
        }
    }
}

/// Every step of a service done: applied, or waiting for the operator (confirmation by the
/// operator, or a check that paused). A service already applied (or finalized) stays so:
/// applying the wave again changes nothing, and asks for no confirmation.
fn mark_moved(ctx: &mut Ctx, s: &PlannedService, paused: bool) -> anyhow::Result<()> {
    let checks = ctx.req.cfg.confirm == crate::apply::config::Confirm::Checks;
    if let Some(st) = ctx
        .state
        .services
        .get_mut(s.id.as_str())
        .filter(|st| !matches!(st.phase, Phase::Applied | Phase::Finalizing | Phase::Finalized))
    {
        st.phase = if checks && !paused { Phase::Applied } else { Phase::Unconfirmed };
        st.generation += 1;
    }
    ctx.state.save(&ctx.dir)
}

/// Records that the service is applying before a step of it takes effect: a crash between the
/// step and its record in the state must not leave it reported as legacy with its route in place.
fn begin(ctx: &mut Ctx, s: &PlannedService) -> anyhow::Result<()> {
    let req = ctx.req;
    let entry = ctx.state.services.entry(s.id.to_string()).or_insert(ServiceState {
        phase: Phase::Legacy,
        wave: req.wave,
        plan_id: req.plan.plan_id.clone(),
        done: vec![],
        generation: 0,
    });
    if entry.phase == Phase::Applying {
        return Ok(());
    }
    entry.phase = Phase::Applying;
    ctx.state.save(&ctx.dir)
}

/// Records a step as done (the service is applying), durably, before the next one runs.
fn mark_done(ctx: &mut Ctx, s: &PlannedService, i: usize) -> anyhow::Result<()> {
    let req = ctx.req;
    let entry = ctx.state.services.entry(s.id.to_string()).or_insert(ServiceState {
        phase: Phase::Applying,
        wave: req.wave,
        plan_id: req.plan.plan_id.clone(),
        done: vec![],
        generation: 0,
    });
    entry.phase = Phase::Applying;
    entry.done.push(i);
    ctx.state.save(&ctx.dir)
}

/// The steps of a service recorded as done under this plan (another plan's steps do not count).
fn done_steps(state: &State, req: &Request, s: &PlannedService) -> Vec<usize> {
    state
        .services
        .get(s.id.as_str())
        .filter(|st| st.plan_id == req.plan.plan_id)
        .map(|st| st.done.clone())
        .unwrap_or_default()
}
