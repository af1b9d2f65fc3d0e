//! `migrate apply --wave N` and `migrate rollback --wave N`: the reviewed plan is the applied
//! plan (a stale or edited one is refused, exit 7), then the engine runs the wave.

use crate::apply::config::ApplyConfig;
use crate::apply::engine::{Request, apply, rollback};
use crate::cli::args::WaveArgs;
use crate::exit::Exit;
use std::path::PathBuf;

/// What to do with the wave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `apply`.
    Apply,
    /// `rollback`.
    Rollback,
    /// `confirm`.
    Confirm,
    /// `finalize`.
    Finalize,
    /// The watcher, until this deadline.
    Watch(u64),
}

/// Runs `apply`, `rollback`, `confirm` or the watcher.
pub fn run(a: &WaveArgs, action: Action) -> anyhow::Result<Exit> {
    let back = action != Action::Apply;
    let cfg = ApplyConfig::load(&a.config)?;
    let plan_path = a.plan.clone().unwrap_or_else(|| {
        a.config.parent().map(|p| p.join("plan.json")).unwrap_or_else(|| PathBuf::from("plan.json"))
    });
    let plan = tailshift_plans::plan_file::read(&plan_path)?;
    if a.wave == 0 || a.wave > plan.waves.len() {
        eprintln!("error: --wave {}: the plan has waves 1 to {}", a.wave, plan.waves.len());
        return Ok(Exit::BadInput);
    }
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
    let host = a.host.clone().unwrap_or_else(crate::apply::lock::hostname);
    let req = Request {
        plan: &plan,
        wave: a.wave,
        host,
        cfg: &cfg,
        dry_run: a.dry_run,
        json: a.format == crate::cli::args::Format::Json,
        plan_path: plan_path.clone(),
        config_path: a.config.clone(),
    };
    match action {
        Action::Apply => apply(&req),
        Action::Rollback => rollback(&req, a.cascade),
        Action::Confirm => crate::apply::confirm::confirm(&req),
        Action::Finalize => crate::apply::engine::finalize(&req),
        Action::Watch(deadline) => crate::apply::confirm::watch(&req, deadline),
    }
}
