//! `migrate apply --wave N` and `migrate rollback --wave N`: the reviewed plan is the applied
//! plan (a stale or edited one is refused, exit 7), then the engine runs the wave.

use crate::apply::config::ApplyConfig;
use crate::apply::engine::{Request, apply, rollback};
use crate::cli::args::WaveTarget;
use crate::exit::Exit;
use std::path::{Path, PathBuf};

/// What to do with the wave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `apply`.
    Apply {
        /// `--dry-run`.
        dry_run: bool,
    },
    /// `rollback`.
    Rollback {
        /// `--dry-run`.
        dry_run: bool,
        /// `--cascade`.
        cascade: bool,
    },
    /// `confirm`.
    Confirm,
    /// `finalize`.
    Finalize {
        /// `--dry-run`.
        dry_run: bool,
        /// `--yes`.
        yes: bool,
    },
    /// The watcher, until this deadline.
    Watch(u64),
}

/// Runs `apply`, `rollback`, `confirm`, `finalize` or the watcher.
pub fn run(a: &WaveTarget, action: Action) -> anyhow::Result<Exit> {
    let back = !matches!(action, Action::Apply { .. });
    let cfg = ApplyConfig::load(&a.config)?;
    let plan_path = a.plan.clone().unwrap_or_else(|| {
        a.config.parent().map(|p| p.join("plan.json")).unwrap_or_else(|| PathBuf::from("plan.json"))
    });
    let plan = tailshift_plans::plan_file::read(&plan_path)?;
    if a.wave == 0 || a.wave > plan.waves.len() {
        eprintln!("error: --wave {}: the plan has waves 1 to {}", a.wave, plan.waves.len());
        return Ok(Exit::BadInput);
    }
    let host = match host_of(&plan, a.host.as_deref()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Exit::BadInput);
        }
    };
    // A rollback must work from a plan whose inputs changed since (the fix may be in them); an
    // edited plan file is refused either way.
    if !back {
        if let Some(why) = super::plan::staleness(&plan, &a.config, &a.localapi_socket)? {
            eprintln!("stale plan {}: {why}; run `migrate plan` again", plan_path.display());
            return Ok(Exit::StalePlan);
        }
    } else if !tailshift_plans::plan_file::intact(&plan) {
        eprintln!(
            "stale plan {}: {}",
            plan_path.display(),
            tailshift_plans::plan_file::Staleness::Edited
        );
        return Ok(Exit::StalePlan);
    }
    if let Action::Finalize { dry_run: false, yes } = action
        && !yes
        && !confirmed_at_terminal(a.wave, &host)?
    {
        return Ok(Exit::BadInput);
    }
    let dry_run = matches!(
        action,
        Action::Apply { dry_run: true }
            | Action::Rollback { dry_run: true, .. }
            | Action::Finalize { dry_run: true, .. }
    );
    let req = Request {
        plan: &plan,
        wave: a.wave,
        host,
        cfg: &cfg,
        dry_run,
        json: a.format == crate::cli::args::Format::Json,
        plan_path: plan_path.clone(),
        config_path: a.config.clone(),
        world: &crate::apply::engine::real::REAL,
    };
    let journaled_before = journal_len(&cfg.state_dir());
    let outcome = match action {
        Action::Apply { .. } => apply(&req),
        Action::Rollback { cascade, .. } => rollback(&req, cascade),
        Action::Confirm => crate::apply::confirm::confirm(&req),
        Action::Finalize { .. } => crate::apply::engine::finalize(&req),
        Action::Watch(deadline) => crate::apply::confirm::watch(&req, deadline),
    };
    outcome.or_else(|e| judged_by_what_it_left(&cfg.state_dir(), journaled_before, e))
}

/// How many records the journal of `dir` holds (`None`: it cannot be read).
fn journal_len(dir: &Path) -> Option<usize> {
    crate::apply::journal::Journal::read(dir).ok().map(|r| r.len())
}

/// An error out of a wave command, judged by what it left behind. Once the command has
/// journaled a step, the world may be half-changed (a state file that could not be saved, a
/// journal that could not be written): exit 9, and `migrate status` says where each service
/// stands. Before that, nothing changed because of it: it is bad input or usage (exit 1, in
/// `main`).
fn judged_by_what_it_left(
    dir: &Path,
    journaled_before: Option<usize>,
    e: anyhow::Error,
) -> anyhow::Result<Exit> {
    let now = journal_len(dir);
    if now.is_some() && now == journaled_before {
        return Err(e);
    }
    eprintln!("error: {e:#}");
    eprintln!(
        "the command stopped after changing things: run `migrate status --state-dir {}` to see where each service stands",
        dir.display()
    );
    Ok(Exit::Dirty)
}

/// The host the command runs for: `--host`, which must be a host of the plan, else this
/// machine's name when the plan has it. A typo must not turn into "no service on storgae".
pub fn host_of(plan: &tailshift_plans::Plan, asked: Option<&str>) -> Result<String, String> {
    let hosts: std::collections::BTreeSet<&str> =
        plan.services.iter().filter_map(|s| s.inventory.host.known()).map(String::as_str).collect();
    let listed = hosts.iter().copied().collect::<Vec<_>>().join(", ");
    match asked {
        Some(h) if hosts.contains(h) => Ok(h.to_string()),
        Some(h) => {
            let near = hosts.iter().find(|c| edit_distance(c, h) <= 2);
            Err(format!(
                "--host {h}: the plan has no such host (its hosts: {listed}){}",
                near.map(|n| format!("; did you mean --host {n}?")).unwrap_or_default()
            ))
        }
        None => {
            let me = crate::apply::lock::hostname();
            if hosts.contains(me.as_str()) {
                Ok(me)
            } else {
                Err(format!(
                    "this machine is {me}, which the plan does not name; say which host with --host (the plan's hosts: {listed})"
                ))
            }
        }
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Finalize cannot be undone: at a terminal it asks; without one it needs `--yes`.
fn confirmed_at_terminal(wave: usize, host: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "error: finalize removes the legacy nodes' state and cannot be undone; no terminal is there to ask, so pass --yes"
        );
        return Ok(false);
    }
    eprint!(
        "finalize wave {wave} on {host}: the legacy nodes' state is removed and the wave can no longer be rolled back. Type yes to go on: "
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() == "yes" {
        Ok(true)
    } else {
        eprintln!("not finalized");
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn near_misses() {
        assert_eq!(edit_distance("storgae", "storage"), 2);
        assert_eq!(edit_distance("cloud", "cloud"), 0);
        assert!(edit_distance("nas", "storage") > 2);
    }
}
