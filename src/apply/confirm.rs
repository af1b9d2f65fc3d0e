//! Confirmation by the operator: after a wave is applied and checked, `migrate confirm --wave N`
//! must come within the timeout. A watcher process, detached from the CLI (its own session, no
//! terminal, stdio to a log in the state directory), waits for it and rolls the wave back at
//! the deadline when it did not come: no confirmation means rollback, even when the CLI died.

use super::engine::Request;
use super::journal::Journal;
use super::lock::Lock;
use super::state::{Phase, State};
use crate::exit::Exit;
use std::time::Duration;

/// `migrate confirm --wave N`.
pub fn confirm(req: &Request) -> anyhow::Result<Exit> {
    let dir = req.cfg.state_dir();
    let _lock = match super::engine::lock(req, "confirm") {
        Ok(l) => l,
        Err(exit) => return Ok(exit),
    };
    let mut state = State::load(&dir)?;
    let waiting: Vec<String> = state
        .services
        .iter()
        .filter(|(_, s)| s.wave == req.wave && s.phase == Phase::Unconfirmed)
        .map(|(k, _)| k.clone())
        .collect();
    if waiting.is_empty() {
        eprintln!("error: nothing of wave {} waits for confirmation on {}", req.wave, req.host);
        return Ok(Exit::Blocked);
    }
    let mut journal = Journal::open(&dir)?;
    for id in &waiting {
        let intent = journal.intent(
            &req.plan.plan_id,
            "confirm",
            req.wave,
            id,
            usize::MAX,
            "confirmed by the operator",
        )?;
        req.world.journal_point(&format!("confirm-{id}-{}-intent", usize::MAX));
        if let Some(s) = state.services.get_mut(id) {
            s.phase = Phase::Applied;
            s.generation += 1;
        }
        state.save(&dir)?;
        journal.result(&intent, None)?;
        req.world.journal_point(&format!("confirm-{id}-{}-result", usize::MAX));
    }
    super::engine::event(
        req,
        format!(
            "wave {} confirmed on {} ({})",
            req.wave,
            req.host,
            tailshift_util::plural(waiting.len(), "service")
        ),
        serde_json::json!({"event": "wave", "operation": "confirm", "result": "confirmed", "services": waiting}),
    );
    Ok(Exit::Ok)
}

/// `migrate watch-confirm`: waits until the deadline; rolls the wave back if it was not
/// confirmed by then.
pub fn watch(req: &Request, deadline: u64) -> anyhow::Result<Exit> {
    let dir = req.cfg.state_dir();
    let unconfirmed = || -> anyhow::Result<bool> {
        Ok(State::load(&dir)?
            .services
            .values()
            .any(|s| s.wave == req.wave && s.phase == Phase::Unconfirmed))
    };
    loop {
        if !unconfirmed()? {
            println!("wave {}: confirmed (or undone); the watcher leaves", req.wave);
            return Ok(Exit::Ok);
        }
        if req.world.now_unix() >= deadline {
            break;
        }
        req.world.sleep(Duration::from_millis(250));
    }
    // The apply may still hold the lock for a moment; wait for it (bounded).
    for _ in 0..240 {
        match Lock::owner(&dir) {
            Ok(None) => break,
            _ => req.world.sleep(Duration::from_millis(250)),
        }
    }
    if !unconfirmed()? {
        return Ok(Exit::Ok);
    }
    println!("wave {}: no confirmation by the deadline; rolling it back", req.wave);
    let exit = super::engine::rollback(req, false)?;
    if exit == Exit::Ok {
        // Said in the journal, so `status` can tell the operator why the wave is gone.
        let mut journal = Journal::open(&dir)?;
        let intent = journal.intent(
            &req.plan.plan_id,
            WATCHER,
            req.wave,
            "",
            0,
            "rolled back: no confirmation by the deadline",
        )?;
        journal.result(&intent, None)?;
    }
    Ok(exit)
}

/// The journal's operation for what the confirmation watcher did.
pub const WATCHER: &str = "watcher";
