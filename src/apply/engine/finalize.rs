//! `migrate finalize --wave N`: removes what only a rollback needed; it cannot be undone.

use super::common::Ctx;
use super::common::Request;
use super::common::event;
use super::common::legacy_unit;
use super::common::lock;
use super::common::wave_services;
use crate::apply::config::Legacy;
use crate::apply::journal::Journal;
use crate::apply::state::{Phase, State};
use crate::exit::Exit;

/// Removes what only a rollback of the wave needed (`migrate finalize --wave N`): after it the
/// wave can no longer be rolled back, which is said before anything starts.
pub fn finalize(req: &Request) -> anyhow::Result<Exit> {
    let dir = req.cfg.state_dir();
    let _lock = match lock(req, "finalize") {
        Ok(l) => l,
        Err(exit) => return Ok(exit),
    };
    let state = State::load(&dir)?;
    // The wave is finalized with the plan that applied it, whatever plan.json holds now.
    let kept = crate::apply::kept_plans::for_waves(&dir, &state, &[req.wave], req.plan)?;
    let req = &Request {
        plan: crate::apply::kept_plans::plan_of(&kept, &state, req.wave, req.plan),
        ..req.clone()
    };
    let cfg = req.cfg;
    let services = wave_services(req.plan, req.wave, &req.host)?;
    let not_applied: Vec<&str> = services
        .iter()
        .filter(|s| {
            !state.services.get(s.id.as_str()).is_some_and(|st| {
                matches!(st.phase, Phase::Applied | Phase::Finalizing | Phase::Finalized)
            })
        })
        .map(|s| s.id.as_str())
        .collect();
    if !not_applied.is_empty() {
        eprintln!(
            "error: wave {} is not applied and confirmed on {}: {}",
            req.wave,
            req.host,
            not_applied.join(", ")
        );
        return Ok(Exit::Blocked);
    }
    if req.dry_run {
        event(
            req,
            format!("finalize wave {} on {} (dry run: nothing changes)", req.wave, req.host),
            serde_json::json!({"event": "dry_run", "operation": "finalize"}),
        );
        for s in services.iter().filter(|s| {
            !state.services.get(s.id.as_str()).is_some_and(|st| st.phase == Phase::Finalized)
        }) {
            let unit = legacy_unit(req.plan, req.wave, s);
            let effect = match &cfg.legacy {
                Legacy::Command { command } => format!(
                    "run {} with TAILSHIFT_ACTION=finalize TAILSHIFT_UNIT={unit} TAILSHIFT_SERVICE={}",
                    command.join(" "),
                    s.id
                ),
                Legacy::Nix { .. } | Legacy::Systemd => {
                    let node = unit.trim_end_matches(".service");
                    let root = cfg.legacy_state_root.display();
                    if node == "tsnsrv-all" {
                        format!("remove {root}/tsnsrv-all/{} (this node's state only)", s.id.name())
                    } else {
                        format!("remove {root}/private/{node} and the symlink {root}/{node}")
                    }
                }
            };
            event(
                req,
                format!("  {}: finalize {unit}: {effect}", s.id),
                serde_json::json!({"event": "would_run", "service": s.id, "what": format!("finalize {unit}"), "effect": effect}),
            );
        }
        return Ok(Exit::Ok);
    }
    event(
        req,
        format!(
            "finalizing wave {} on {}: the legacy nodes' state goes, and the wave can no longer be rolled back",
            req.wave, req.host
        ),
        serde_json::json!({"event": "finalizing"}),
    );
    let mut ctx =
        Ctx { req, journal: Journal::open(&dir)?, state, dir: dir.clone(), operation: "finalize" };
    crate::apply::signals::catch();
    for s in &services {
        if ctx.state.services.get(s.id.as_str()).is_some_and(|st| st.phase == Phase::Finalized) {
            continue;
        }
        if crate::apply::signals::interrupted() {
            eprintln!(
                "interrupted: finalize of wave {w} stopped between services; run the same `migrate finalize --wave {w}` again to complete it",
                w = req.wave
            );
            return Ok(Exit::Interrupted);
        }
        let unit = legacy_unit(req.plan, req.wave, s);
        // A keep-node service keeps its node: nothing of it may go.
        if s.strategy == tailshift_plans::steps::Strategy::KeepNode {
            if let Some(st) = ctx.state.services.get_mut(s.id.as_str()) {
                st.phase = Phase::Finalized;
            }
            ctx.state.save(&ctx.dir)?;
            continue;
        }
        // Said before anything goes: from here on the wave can no longer be rolled back.
        if let Some(st) = ctx.state.services.get_mut(s.id.as_str()) {
            st.phase = Phase::Finalizing;
        }
        ctx.state.save(&ctx.dir)?;
        let r = ctx.record(s, usize::MAX - 1, &format!("finalize {unit}"), || {
            req.world.legacy(cfg, "finalize", &unit, s, req.wave)
        });
        if let Err(e) = r {
            eprintln!("error: finalizing {}: {e:#}", s.id);
            return Ok(Exit::Dirty);
        }
        if let Some(st) = ctx.state.services.get_mut(s.id.as_str()) {
            st.phase = Phase::Finalized;
            st.generation += 1;
        }
        ctx.state.save(&ctx.dir)?;
    }
    event(
        req,
        format!("wave {} finalized on {}", req.wave, req.host),
        serde_json::json!({"event": "wave", "result": "finalized"}),
    );
    Ok(Exit::Ok)
}
