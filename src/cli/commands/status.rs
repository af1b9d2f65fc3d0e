//! `migrate status` and `migrate force-unlock`: the state directory as it is, an interrupted
//! run's half-done steps named exactly (exit 9), and the lock's owner.

use crate::apply::journal::Journal;
use crate::apply::lock::{Lock, LockError};
use crate::apply::state::{Phase, State};
use crate::cli::args::{ForceUnlockArgs, Format, StatusArgs};
use crate::exit::Exit;
use serde_json::json;

/// Waves the confirmation watcher rolled back (no `migrate confirm` came) and that were not
/// applied again since: the operator should know why they are gone.
fn rolled_back_by_watcher(records: &[crate::apply::journal::Record]) -> Vec<(usize, u64)> {
    let mut out: std::collections::BTreeMap<usize, u64> = Default::default();
    for r in records {
        if r.operation == crate::apply::confirm::WATCHER {
            out.insert(r.wave, r.at);
        } else if r.operation == "apply" {
            out.remove(&r.wave);
        }
    }
    out.into_iter().collect()
}

/// The `schema` of `status --format json`.
pub const STATUS_SCHEMA: &str = "tailshift.status/v1";

/// Runs `migrate status`.
pub fn run(a: &StatusArgs) -> anyhow::Result<Exit> {
    let cfg = a.config.as_deref().map(crate::apply::config::ApplyConfig::load).transpose()?;
    let (dir, explicit) = state_dir_of(a.state_dir.as_deref(), cfg.as_ref());
    if !dir.is_dir() {
        if explicit {
            eprintln!("error: {}: no such state directory", dir.display());
            return Ok(Exit::BadInput);
        }
        if a.format == Format::Json {
            let out = json!({"schema": STATUS_SCHEMA, "state_dir": dir, "services": {}, "applied": false});
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            println!(
                "nothing has been applied on this host ({} does not exist yet)",
                dir.display()
            );
        }
        return Ok(Exit::Ok);
    }
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
    // A live owner's intents are its steps in progress, not a crash.
    let live = lock.as_ref().filter(|o| !o.is_stale());
    let stale_lock = lock.as_ref().is_some_and(|o| o.is_stale());
    let stuck: Vec<&String> = state
        .services
        .iter()
        .filter(|(_, st)| {
            matches!(st.phase, Phase::Applying | Phase::RollingBack | Phase::Finalizing)
        })
        .map(|(k, _)| k)
        .collect();
    let watched = rolled_back_by_watcher(&records);
    let exit = if live.is_none() && (!dangling.is_empty() || !stuck.is_empty()) {
        Exit::Dirty
    } else if !drift.is_empty() || stale_lock || !watched.is_empty() {
        Exit::Unhealthy
    } else {
        Exit::Ok
    };
    match a.format {
        Format::Json => {
            let out = json!({
                "schema": STATUS_SCHEMA,
                "state_dir": dir,
                "lineage": state.lineage,
                "serial": state.serial,
                "services": state.services,
                "interrupted": dangling.iter().map(|d| &d.intent).collect::<Vec<_>>(),
                "drift": drift,
                "rolled_back_by_watcher": watched.iter().map(|(w, at)| json!({"wave": w, "at": tailshift_util::Timestamp::from_unix_secs(*at).to_string()})).collect::<Vec<_>>(),
                "lock": lock.as_ref().map(|o| json!({"owner": o, "stale": o.is_stale()})),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Table => print_table(&Seen {
            watched: &watched,
            dir: &dir,
            state: &state,
            dangling: &dangling,
            drift: &drift,
            lock: lock.as_ref(),
            live,
            stuck: &stuck,
            config: a.config.as_deref(),
        })?,
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

/// The state directory a command names: `--state-dir`, else `[apply] state_dir` of
/// `--config`, else the default one. Whether it was named by `--state-dir` comes along: a typo
/// there must not read as "nothing has moved"; the configured one may not exist yet before the
/// first apply.
fn state_dir_of(
    state_dir: Option<&std::path::Path>,
    config: Option<&crate::apply::config::ApplyConfig>,
) -> (std::path::PathBuf, bool) {
    match (state_dir, config) {
        (Some(d), _) => (d.to_path_buf(), true),
        (None, Some(cfg)) => (cfg.state_dir(), false),
        (None, None) => (crate::apply::default_state_dir(), false),
    }
}

/// Runs `migrate force-unlock ID`.
pub fn force_unlock(a: &ForceUnlockArgs) -> anyhow::Result<Exit> {
    let cfg = a.config.as_deref().map(crate::apply::config::ApplyConfig::load).transpose()?;
    let (dir, _) = state_dir_of(a.state_dir.as_deref(), cfg.as_ref());
    if !dir.is_dir() {
        eprintln!("error: {}: no such state directory", dir.display());
        return Ok(Exit::BadInput);
    }
    match Lock::force_unlock(&dir, &a.id) {
        Ok(o) if a.format == Format::Json => {
            let out = json!({"schema": "tailshift.force-unlock/v1", "unlocked": o.id, "was": o});
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(Exit::Ok)
        }
        Ok(o) => {
            eprintln!("unlocked {} (was {})", o.id, o.describe());
            Ok(Exit::Ok)
        }
        Err(LockError::Held { owner, .. }) => {
            eprintln!(
                "error: lock {} is held by a live process ({}); not removed",
                owner.id,
                owner.describe()
            );
            Ok(Exit::Locked)
        }
        Err(LockError::Io(e)) => {
            eprintln!("error: {e}");
            Ok(Exit::BadInput)
        }
    }
}

/// The flags a wave command printed by status needs to act on `service` (`host/name`) where
/// it stands: its host, the policy when status was given it, and the plan that applied it,
/// kept in the state directory (the plan rollback undoes with and apply resumes with).
fn wave_flags(
    dir: &std::path::Path,
    service: &str,
    plan_id: &str,
    config: Option<&std::path::Path>,
) -> String {
    let mut flags = String::new();
    if let Some((host, _)) = service.split_once('/').filter(|(h, _)| *h != "?") {
        flags += &format!(" --host {host}");
    }
    if let Some(c) = config {
        flags += &format!(" --config {}", c.display());
    }
    let kept = crate::apply::kept_plans::path(dir, plan_id);
    if kept.exists() {
        flags += &format!(" --plan {}", kept.display());
    }
    flags
}

/// What `status` found, for its table.
struct Seen<'a> {
    dir: &'a std::path::Path,
    state: &'a State,
    dangling: &'a [crate::apply::journal::Dangling],
    drift: &'a [String],
    lock: Option<&'a crate::apply::lock::Owner>,
    live: Option<&'a crate::apply::lock::Owner>,
    stuck: &'a [&'a String],
    config: Option<&'a std::path::Path>,
    watched: &'a [(usize, u64)],
}

/// The table of `status`: the state directory, each service, what was interrupted and the
/// command that continues it, drift, the lock.
fn print_table(seen: &Seen) -> anyhow::Result<()> {
    let Seen { dir, state, dangling, drift, lock, live, stuck, config, watched } = *seen;
    for (w, at) in watched {
        println!(
            "ROLLED BACK BY THE WATCHER: wave {w} at {}: no `migrate confirm` came by its deadline; apply it again when ready",
            tailshift_util::Timestamp::from_unix_secs(*at)
        );
    }
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
        let done: Vec<String> = s.done.iter().map(usize::to_string).collect();
        println!(
            "  {name:<32} {:<12} wave {:<3} plan {} steps done: {}",
            serde_json::to_value(s.phase)?.as_str().unwrap_or(""),
            s.wave,
            s.plan_id,
            if done.is_empty() { "none".to_string() } else { done.join(", ") }
        );
    }
    if let Some(o) = live {
        let at = dangling
            .last()
            .map(|d| {
                format!(
                    ", at {} step {} ({})",
                    if d.intent.service.is_empty() { "the wave" } else { &d.intent.service },
                    d.intent.step,
                    d.intent.what
                )
            })
            .unwrap_or_default();
        println!("in progress: {}{at}", o.describe());
    }
    for name in stuck.iter().filter(|_| live.is_none()) {
        let st = &state.services[*name];
        let config = wave_flags(dir, name, &st.plan_id, config);
        let next = match st.phase {
            Phase::Finalizing => format!(
                "was being finalized in wave {w}, and nothing runs now: its legacy node's state may be partly gone, so it can no longer be rolled back; complete it with `migrate finalize --wave {w}{config}`",
                w = st.wave
            ),
            Phase::RollingBack => format!(
                "was being rolled back in wave {w}, and nothing runs now: complete it with `migrate rollback --wave {w}{config}`",
                w = st.wave
            ),
            _ => format!(
                "was being applied in wave {w}, and nothing runs now: resume with `migrate apply --wave {w}{config}`, or undo with `migrate rollback --wave {w}{config}`",
                w = st.wave
            ),
        };
        println!("INTERRUPTED: {name} {next}");
    }
    for d in dangling.iter().filter(|_| live.is_none()) {
        let i = &d.intent;
        let flags = wave_flags(dir, &i.service, &i.plan_id, config);
        println!(
            "INTERRUPTED: {} of wave {} stopped at {} step {} ({}), plan {}: the step may or may not have taken effect; run `migrate apply --wave {}{flags}` again (it resumes) or `migrate rollback --wave {}{flags}`",
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
    for d in drift {
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
                format!(
                    ": stale, `migrate force-unlock {} --state-dir {}` after checking",
                    o.id,
                    dir.display()
                )
            } else {
                String::new()
            }
        );
    }
    Ok(())
}
