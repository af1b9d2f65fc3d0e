//! The plans waves were applied with, kept in the state directory by `plan_id`
//! (`plans/<plan_id>.json`, 0600: plans hold upstream header values). Rollback, cascade,
//! finalize and the confirmation watcher undo each service with the steps of the plan that
//! applied it, whatever `plan.json` holds now; a state directory from before this copy existed
//! falls back to the plan given.

use crate::apply::state::State;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tailshift_plans::Plan;

/// Where the copy of a plan is kept.
pub fn path(dir: &Path, plan_id: &str) -> PathBuf {
    dir.join("plans").join(format!("{plan_id}.json"))
}

/// Keeps a copy of the plan a wave is about to be applied with (once per plan).
pub fn keep(dir: &Path, plan: &Plan) -> anyhow::Result<()> {
    let p = path(dir, &plan.plan_id);
    if p.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(p.parent().expect("a file in plans/"))?;
    tailshift_plans::plan_file::write_atomic(&p, &tailshift_plans::plan_file::to_text(plan))?;
    Ok(())
}

/// The kept plans that applied the services of `waves` on `host`, other than `current`.
pub fn for_waves(
    dir: &Path,
    state: &State,
    waves: &[usize],
    current: &Plan,
) -> anyhow::Result<BTreeMap<String, Plan>> {
    let mut out = BTreeMap::new();
    for st in state.services.values().filter(|st| waves.contains(&st.wave)) {
        if st.plan_id == current.plan_id || out.contains_key(&st.plan_id) {
            continue;
        }
        let p = path(dir, &st.plan_id);
        if p.exists() {
            let plan = tailshift_plans::plan_file::read(&p)?;
            if !tailshift_plans::plan_file::intact(&plan) {
                anyhow::bail!(
                    "{}: the kept plan was edited (its self-hash does not match)",
                    p.display()
                );
            }
            out.insert(st.plan_id.clone(), plan);
        }
    }
    Ok(out)
}

/// The plan to undo wave `wave` with: the kept one that applied it, else `current`.
pub fn plan_of<'a>(
    kept: &'a BTreeMap<String, Plan>,
    state: &State,
    wave: usize,
    current: &'a Plan,
) -> &'a Plan {
    state
        .services
        .values()
        .filter(|st| st.wave == wave)
        .find_map(|st| kept.get(&st.plan_id))
        .unwrap_or(current)
}
