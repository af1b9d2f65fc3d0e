//! `migrate status` and `migrate force-unlock`: the state directory as it is, an interrupted
//! run's half-done steps named exactly (exit 9), and the lock's owner.

use crate::apply::journal::Journal;
use crate::apply::lock::{Lock, LockError};
use crate::apply::state::State;
use crate::cli::args::{ForceUnlockArgs, Format, StatusArgs};
use crate::exit::Exit;
use serde_json::json;

/// Runs `migrate status`.
pub fn run(a: &StatusArgs) -> anyhow::Result<Exit> {
    let cfg = a.config.as_deref().map(crate::apply::config::ApplyConfig::load).transpose()?;
    let dir = a
        .state_dir
        .clone()
        .or_else(|| cfg.as_ref().map(|c| c.state_dir()))
        .unwrap_or_else(crate::apply::default_state_dir);
    let state = State::load(&dir)?;
    let drift = match &cfg {
        Some(c) => drift(c, &state),
        None => Vec::new(),
    };
    let records = Journal::read(&dir)?;
    let dangling = Journal::dangling(&records);
    let lock = match Lock::owner(&dir) {
        Ok(o) => o,
        Err(LockError::Io(e)) => anyhow::bail!(e),
        Err(e) => anyhow::bail!(e.to_string()),
    };
    let exit = if !dangling.is_empty() {
        Exit::Dirty
    } else if !drift.is_empty() {
        Exit::Unhealthy
    } else {
        Exit::Ok
    };
    match a.format {
        Format::Json => {
            let out = json!({
                "state_dir": dir,
                "lineage": state.lineage,
                "serial": state.serial,
                "services": state.services,
                "interrupted": dangling.iter().map(|d| &d.intent).collect::<Vec<_>>(),
                "drift": drift,
                "lock": lock.as_ref().map(|o| json!({"owner": o, "stale": o.is_stale()})),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Table => {
            println!(
                "state directory {} (lineage {}, serial {})",
                dir.display(),
                state.lineage,
                state.serial
            );
            if state.services.is_empty() {
                println!("no service has moved on this host");
            }
            for (name, s) in &state.services {
                println!(
                    "  {name:<32} {:<12} wave {:<3} plan {} steps done {:?}",
                    serde_json::to_value(s.phase)?.as_str().unwrap_or(""),
                    s.wave,
                    s.plan_id,
                    s.done
                );
            }
            for d in &dangling {
                let i = &d.intent;
                println!(
                    "INTERRUPTED: {} of wave {} stopped at {} step {} ({}), plan {}: the step may or may not have taken effect; run `migrate apply --wave {}` again (it resumes) or `migrate rollback --wave {}`",
                    i.operation,
                    i.wave,
                    if i.service.is_empty() { "the wave" } else { &i.service },
                    i.step,
                    i.what,
                    i.plan_id,
                    i.wave,
                    i.wave
                );
            }
            for d in &drift {
                println!("DRIFT: {d}");
            }
            if let Some(o) = &lock {
                println!(
                    "locked by {} (pid {} on {}, {}{}){}",
                    o.id,
                    o.pid,
                    o.host,
                    o.operation,
                    o.wave.map(|w| format!(" wave {w}")).unwrap_or_default(),
                    if o.is_stale() {
                        format!(": stale, `migrate force-unlock {}` after checking", o.id)
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    Ok(exit)
}

/// What the live side says against the state: every applied service must have its route in
/// the proxy and its old name answered by the proxy.
fn drift(cfg: &crate::apply::config::ApplyConfig, state: &State) -> Vec<String> {
    use crate::apply::state::Phase;
    let mut out = Vec::new();
    let routes = match crate::apply::admin_client::routes(&cfg.admin_socket) {
        Ok(r) => r,
        Err(e) => return vec![format!("the proxy cannot be asked: {e:#}")],
    };
    for (name, s) in state.services.iter().filter(|(_, s)| s.phase == Phase::Applied) {
        let Some(route) = routes.iter().find(|r| &r.service == name) else {
            out.push(format!(
                "{name}: applied in wave {}, but the proxy has no route for it",
                s.wave
            ));
            continue;
        };
        let Some(legacy) = route.hosts.first() else { continue };
        match tailshift_checks::check(&cfg.check, &legacy.name, "/") {
            tailshift_checks::Outcome::Status { addr, .. }
                if cfg.proxy_addrs.is_empty() || cfg.proxy_addrs.contains(&addr) => {}
            tailshift_checks::Outcome::Status { addr, code, .. } => out.push(format!(
                "{name}: {} is answered by {addr} ({code}), not by the proxy",
                legacy.name
            )),
            tailshift_checks::Outcome::Error(e) => {
                out.push(format!("{name}: {} does not answer: {e}", legacy.name))
            }
        }
    }
    out
}

/// Runs `migrate force-unlock ID`.
pub fn force_unlock(a: &ForceUnlockArgs) -> anyhow::Result<Exit> {
    let dir = a.state_dir.clone().unwrap_or_else(crate::apply::default_state_dir);
    match Lock::force_unlock(&dir, &a.id) {
        Ok(o) => {
            eprintln!("unlocked {} (was {} by pid {} on {})", o.id, o.operation, o.pid, o.host);
            Ok(Exit::Ok)
        }
        Err(LockError::Held(o)) => {
            eprintln!(
                "error: {} is held by a live process (pid {} on {}); not removed",
                o.id, o.pid, o.host
            );
            Ok(Exit::Locked)
        }
        Err(LockError::Io(e)) => {
            eprintln!("error: {e}");
            Ok(Exit::BadInput)
        }
    }
}
