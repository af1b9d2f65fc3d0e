//! The plan file: content hashes, a self-hash, atomic writing, and `--check`.
//!
//! The inventory hash is semantic: it covers each service's host, name, flavour, declared and
//! effective values, but not source locations, so a comment added to a Nix file does not make a
//! plan stale. The policy hash covers the `[plan]` keys only.

use crate::error::PlanError;
use crate::plan::Plan;
use crate::policy::Policy;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use tailshift_parsers::Inventory;

fn sha256(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    format!("sha256:{}", d.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Removes what does not change meaning: locations, input paths, coverage and findings text.
fn strip(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in ["location", "from", "input", "coverage", "findings"] {
                m.remove(k);
            }
            for (_, x) in m.iter_mut() {
                strip(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

/// The semantic hash of an inventory's services.
pub fn inventory_hash(inv: &Inventory) -> String {
    let mut v = serde_json::to_value(&inv.services).unwrap_or_default();
    strip(&mut v);
    sha256(&serde_json::to_string(&v).unwrap_or_default())
}

/// Which services differ between two inventories (for stale-plan reasons).
pub fn changed_services(planned: &[crate::plan::PlannedService], inv: &Inventory) -> Vec<String> {
    let now: std::collections::BTreeMap<String, Value> = inv
        .services
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            strip(&mut v);
            (crate::graph::service_id(s), v)
        })
        .collect();
    let mut out = Vec::new();
    for p in planned {
        let mut v = serde_json::to_value(&p.inventory).unwrap_or_default();
        strip(&mut v);
        match now.get(&p.id) {
            None => out.push(format!("{} is gone", p.id)),
            Some(n) if *n != v => out.push(format!("{} changed", p.id)),
            _ => {}
        }
    }
    for id in now.keys() {
        if !planned.iter().any(|p| &p.id == id) {
            out.push(format!("{id} is new"));
        }
    }
    out
}

fn body_hash(plan: &Plan) -> String {
    let mut v = serde_json::to_value(plan).unwrap_or_default();
    if let Value::Object(m) = &mut v {
        m.remove("self_hash");
    }
    sha256(&serde_json::to_string(&v).unwrap_or_default())
}

/// RFC 3339 UTC time of a Unix timestamp.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Fills the hashes, the id and the creation time. `SOURCE_DATE_EPOCH` fixes the time, so the
/// same inputs give a byte-identical file.
pub fn seal(mut plan: Plan, inv: &Inventory, policy: &Policy, now_unix: u64) -> Plan {
    plan.inventory_hash = inventory_hash(inv);
    plan.policy_hash = sha256(&policy.canonical());
    plan.created = rfc3339(now_unix);
    plan.plan_id = String::new();
    plan.self_hash = String::new();
    // The id covers the content, not the time.
    let mut v = serde_json::to_value(&plan).unwrap_or_default();
    if let Value::Object(m) = &mut v {
        m.remove("created");
    }
    plan.plan_id = sha256(&serde_json::to_string(&v).unwrap_or_default())
        ["sha256:".len().."sha256:".len() + 16]
        .to_string();
    plan.self_hash = body_hash(&plan);
    plan
}

/// The time to stamp: `SOURCE_DATE_EPOCH` if set, else now.
pub fn now_unix() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

/// The plan file's text.
pub fn to_text(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).unwrap_or_default();
    s.push('\n');
    s
}

/// Writes a file atomically: temporary file, fsync, rename.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), PlanError> {
    let err = |e: std::io::Error| PlanError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("plan"),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Reads a plan file.
pub fn read(path: &Path) -> Result<Plan, PlanError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| PlanError::Io { path: path.display().to_string(), message: e.to_string() })?;
    serde_json::from_str(&text).map_err(|e| PlanError::BadPlanFile {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Why a saved plan no longer applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staleness {
    /// The file's content no longer matches its self-hash.
    Edited,
    /// The inputs yield a different inventory.
    InputsChanged(Vec<String>),
    /// The planning keys of `migrate.toml` changed.
    PolicyChanged,
}

impl std::fmt::Display for Staleness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Staleness::Edited => write!(
                f,
                "the plan file was edited after it was made (its self-hash does not match)"
            ),
            Staleness::InputsChanged(what) => {
                write!(f, "the inputs changed since the plan was made: {}", what.join("; "))
            }
            Staleness::PolicyChanged => write!(
                f,
                "the planning keys ([plan] in migrate.toml) changed since the plan was made"
            ),
        }
    }
}

/// Whether the file is intact (its self-hash matches).
pub fn intact(plan: &Plan) -> bool {
    body_hash(plan) == plan.self_hash
}

/// Judges a saved plan against the current inventory and policy.
pub fn check(plan: &Plan, inv: &Inventory, policy: &Policy) -> Result<(), Staleness> {
    if !intact(plan) {
        return Err(Staleness::Edited);
    }
    if inventory_hash(inv) != plan.inventory_hash {
        let mut what = changed_services(&plan.services, inv);
        if what.is_empty() {
            what.push("the inventory differs".into());
        }
        return Err(Staleness::InputsChanged(what));
    }
    if sha256(&policy.canonical()) != plan.policy_hash {
        return Err(Staleness::PolicyChanged);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_830_000), "2026-11-28T01:40:00Z");
    }
}
