//! `migrate rollback --wave N [--cascade]`.

use super::adapters::shim_service;
use super::common::Ctx;
use super::common::Request;
use super::common::event;
use super::common::legacy_name;
use super::common::lock;
use super::common::show;
use super::common::wave_services;
use super::dry_run::print_dry_run;
use super::dry_run::undo_steps;
use super::undo::undo;
use crate::apply::journal::Journal;
use crate::apply::state::{Phase, State};
use crate::exit::Exit;
use tailshift_checks::Outcome;

/// Rolls a wave back on this host (`migrate rollback --wave N`); with `cascade`, every applied
/// wave above it first, newest first.
pub fn rollback(req: &Request, cascade: bool) -> anyhow::Result<Exit> {
    let cfg = req.cfg;
    let dir = cfg.state_dir();
    let _lock = match lock(req, "rollback") {
        Ok(l) => l,
        Err(exit) => return Ok(exit),
    };
    let state = State::load(&dir)?;
    // The named wave finalized is the reason, whatever else is applied.
    if let Some((id, _)) = state.services.iter().find(|(_, st)| {
        st.wave == req.wave && matches!(st.phase, Phase::Finalizing | Phase::Finalized)
    }) {
        eprintln!(
            "error: wave {} was finalized on {} ({id} too): its legacy nodes' state is gone, it can no longer be rolled back",
            req.wave, req.host
        );
        return Ok(Exit::Blocked);
    }
    let mut later: Vec<usize> = state
        .services
        .values()
        .filter(|st| st.wave > req.wave)
        .map(|st| st.wave)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !later.is_empty() && !cascade {
        let ids: Vec<&str> = state
            .services
            .iter()
            .filter(|(_, st)| st.wave > req.wave)
            .map(|(k, _)| k.as_str())
            .collect();
        eprintln!(
            "error: later waves are applied on {} ({}); roll them back first, or pass --cascade",
            req.host,
            ids.join(", ")
        );
        return Ok(Exit::Blocked);
    }
    // Newest first, then the named wave; a finalized one anywhere in that range stops it all.
    later.sort_unstable_by(|a, b| b.cmp(a));
    let mut order = later;
    order.push(req.wave);
    for &w in &order {
        if let Some((id, _)) = state.services.iter().find(|(_, st)| {
            st.wave == w && matches!(st.phase, Phase::Finalizing | Phase::Finalized)
        }) {
            eprintln!(
                "error: wave {w} was finalized on {} ({id} too): its legacy nodes' state is gone, it can no longer be rolled back{}",
                req.host,
                if w != req.wave { ", so neither can the waves below it" } else { "" }
            );
            return Ok(Exit::Blocked);
        }
    }
    // Nothing of these waves was applied here (a service is recorded before its first step
    // takes effect): nothing to undo, and nothing is written.
    if !state.services.values().any(|st| order.contains(&st.wave)) {
        event(
            req,
            format!(
                "nothing of wave {} is applied on {}: nothing to roll back",
                req.wave, req.host
            ),
            serde_json::json!({"event": "wave", "operation": "rollback", "result": "nothing_to_do"}),
        );
        return Ok(Exit::Ok);
    }
    let kept = crate::apply::kept_plans::for_waves(&dir, &state, &order, req.plan)?;
    let plan_of = |w: usize, st: &State| crate::apply::kept_plans::plan_of(&kept, st, w, req.plan);
    // A service on another host that depends on one of these waves must go back first.
    let blocked = dependents_elsewhere(req, &order, |w| plan_of(w, &state));
    if !blocked.is_empty() {
        for b in &blocked {
            eprintln!("error: {b}");
        }
        eprintln!("error: rollback of wave {} on {} refused; nothing changed", req.wave, req.host);
        return Ok(Exit::Blocked);
    }
    if req.dry_run {
        let mut would = Vec::new();
        for &w in &order {
            let sub = Request { wave: w, plan: plan_of(w, &state), ..req.clone() };
            let services = wave_services(sub.plan, w, &req.host)?;
            would.extend(undo_steps(&sub, &dir, &state, &services)?);
        }
        print_dry_run(req, "rollback", &would);
        return Ok(Exit::Ok);
    }
    let mut state = Some(state);
    for &w in &order {
        let st = match state.take() {
            Some(s) => s,
            None => State::load(&dir)?,
        };
        let sub = Request { wave: w, plan: plan_of(w, &st), ..req.clone() };
        let exit = rollback_one(&sub, st)?;
        if exit != Exit::Ok {
            return Ok(exit);
        }
    }
    Ok(Exit::Ok)
}

/// Rolls one wave back, the lock held.
pub(super) fn rollback_one(req: &Request, state: State) -> anyhow::Result<Exit> {
    let cfg = req.cfg;
    let dir = cfg.state_dir();
    let services = wave_services(req.plan, req.wave, &req.host)?;
    let mut ctx =
        Ctx { req, journal: Journal::open(&dir)?, state, dir: dir.clone(), operation: "rollback" };
    crate::apply::signals::catch();
    if let Err(e) = undo(&mut ctx, &services) {
        if e.downcast_ref::<crate::apply::signals::Interrupted>().is_some() {
            eprintln!(
                "interrupted: the rollback of wave {} stopped between steps; every step so far is recorded: run `migrate rollback --wave {} {}` again to complete it",
                req.wave,
                req.wave,
                req.flags()
            );
            return Ok(Exit::Interrupted);
        }
        eprintln!("error: rollback of wave {} failed: {e:#}", req.wave);
        return Ok(Exit::Dirty);
    }
    // The legacy path must answer again, under the node's own name (not `name-1`).
    let mut bad = Vec::new();
    for s in &services {
        let o = req.world.check(&cfg.check, &legacy_name(s), "/", &[]);
        match &o {
            Outcome::Status { addr, .. } if !cfg.proxy_addrs.contains(addr) => {}
            other => bad.push(format!("{}: {}", s.id, show(other))),
        }
        let restored = req
            .world
            .shim(s.strategy, cfg, req.plan, s)
            .and_then(|sh| Ok(sh.verify_restored(&shim_service(s, cfg))?));
        match restored {
            Ok(tailshift_shims::Verification::Holds) => {}
            Ok(tailshift_shims::Verification::Missing(why)) => bad.push(why),
            Err(e) => bad.push(format!("{}: cannot tell the node's name: {e:#}", s.id)),
        }
    }
    if !bad.is_empty() {
        eprintln!("error: after the rollback, the legacy path does not answer: {}", bad.join("; "));
        return Ok(Exit::Dirty);
    }
    event(
        req,
        format!("wave {} rolled back on {}", req.wave, req.host),
        serde_json::json!({"event": "wave", "result": "rolled_back"}),
    );
    Ok(Exit::Ok)
}

/// Services on other hosts that depend on a service these waves moved here and are still
/// applied there (or whose state cannot be read from here), each with the command that rolls
/// it back there first. One host sees another's state only through `[apply.peers]`: the proxies'
/// admin sockets are local, and a name's DNS answer does not say whether a proxy serves it.
fn dependents_elsewhere<'p>(
    req: &Request,
    waves: &[usize],
    plan_of: impl Fn(usize) -> &'p tailshift_plans::Plan,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut peers: std::collections::BTreeMap<String, Result<State, String>> = Default::default();
    let mut seen = std::collections::BTreeSet::new();
    for &w in waves {
        let plan = plan_of(w);
        let Ok(here) = wave_services(plan, w, &req.host) else { continue };
        for s in &here {
            for d in plan.services.iter().chain(req.plan.services.iter()) {
                let Some(host) = d.inventory.host.known().filter(|h| **h != req.host) else {
                    continue;
                };
                if d.wave.is_none()
                    || !d.depends_on.iter().any(|x| x.id == s.id)
                    || !seen.insert(d.id.to_string())
                {
                    continue;
                }
                let state = peers.entry(host.clone()).or_insert_with(|| peer_state(req, host));
                let config = req
                    .cfg
                    .peers
                    .get(host)
                    .and_then(|p| p.config.clone())
                    .unwrap_or_else(|| req.config_path.clone());
                let command = |wave: usize, cascade: bool| {
                    format!(
                        "migrate rollback --wave {wave} --host {host}{} --config {} --plan {}",
                        if cascade { " --cascade" } else { "" },
                        config.display(),
                        req.plan_path.display()
                    )
                };
                match state {
                    Ok(st) => {
                        let Some(ds) = st.services.get(d.id.as_str()) else { continue };
                        let later = st.services.values().any(|x| x.wave > ds.wave);
                        out.push(format!(
                            "{} on {host} depends on {} (wave {w}) and is still {} there (wave {}): roll it back there first: `{}`",
                            d.id,
                            s.id,
                            phase_name(ds.phase),
                            ds.wave,
                            command(ds.wave, later)
                        ));
                    }
                    Err(why) => out.push(format!(
                        "{} on {host} depends on {} (wave {w}), and whether it is still applied there cannot be told from {}: {why}; give [apply.peers.{host}] state_dir or state_command (docs/policy.md), or make sure it is rolled back there first: `{}`",
                        d.id,
                        s.id,
                        req.host,
                        command(d.wave.unwrap_or(w), true)
                    )),
                }
            }
        }
    }
    out
}

pub(super) fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Legacy => "legacy",
        Phase::Applying => "applying",
        Phase::Unconfirmed => "unconfirmed",
        Phase::Applied => "applied",
        Phase::RollingBack => "rolling back",
        Phase::Finalizing => "finalizing",
        Phase::Finalized => "finalized",
    }
}

/// Another host's state, through `[apply.peers.<host>]`.
pub(super) fn peer_state(req: &Request, host: &str) -> Result<State, String> {
    let Some(p) = req.cfg.peers.get(host) else {
        return Err(format!("[apply.peers.{host}] is not set"));
    };
    if let Some(dir) = &p.state_dir {
        if !dir.is_dir() {
            return Err(format!("{}: not a directory", dir.display()));
        }
        return State::load(dir).map_err(|e| format!("{e:#}"));
    }
    let Some((prog, args)) = p.state_command.as_deref().and_then(|c| c.split_first()) else {
        return Err(format!("[apply.peers.{host}] has neither state_dir nor state_command"));
    };
    let out = crate::apply::signals::run(
        std::process::Command::new(prog).args(args),
        std::time::Duration::from_secs(req.cfg.adapter_timeout_s),
    )
    .map_err(|e| format!("{prog}: {e:#}"))?;
    if !out.status.success() {
        return Err(format!("{prog}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let st: State = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{prog} did not print a state.json: {e}"))?;
    if st.schema != crate::apply::state::SCHEMA {
        return Err(format!(
            "{prog}: schema {:?}, expected {}",
            st.schema,
            crate::apply::state::SCHEMA
        ));
    }
    Ok(st)
}
