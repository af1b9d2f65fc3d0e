//! The plan file: content hashes, a self-hash, atomic writing, and `--check`.
//!
//! The inventory hash is semantic: it covers each service's host, name, flavour, presence,
//! declared and effective values (for an unknown, that it is unknown, not why), but not source
//! locations, so a comment added to a Nix file does not make a
//! plan stale. The policy hash covers the `[plan]` keys only.

use crate::error::PlanError;
use crate::id::ServiceId;
use crate::plan::Plan;
use crate::policy::Policy;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use tailshift_parsers::Inventory;
use tailshift_util::Timestamp;

fn sha256(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

fn hex(d: &[u8]) -> String {
    format!("sha256:{}", d.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Serialises straight into a hash, without building the text or a JSON tree.
struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hash_of<T: serde::Serialize>(v: &T) -> String {
    let mut w = HashWriter(Sha256::new());
    let _ = serde_json::to_writer(&mut w, v);
    hex(&w.0.finalize())
}

/// What of an option counts for staleness: its value, or that it is unknown (not the wording
/// of why: a better reader does not make an in-flight plan stale for nothing).
#[derive(serde::Serialize)]
enum Meaning<'a> {
    V(&'a Value),
    U,
}

/// The meaning of a service: host, name, flavour, declared and effective values; no locations.
#[derive(serde::Serialize)]
struct Semantic<'a> {
    host: Option<&'a String>,
    name: &'a str,
    flavour: tailshift_parsers::Flavour,
    declared: Vec<(&'a str, Meaning<'a>)>,
    effective: Vec<(&'a str, Meaning<'a>)>,
    /// Only the condition's text counts (absent when certain, as before presence existed).
    #[serde(skip_serializing_if = "Option::is_none")]
    presence: Option<&'a str>,
}

fn meanings(o: &tailshift_parsers::Options) -> Vec<(&str, Meaning<'_>)> {
    o.0.iter()
        .map(|(k, v)| {
            let m = match v {
                tailshift_parsers::Sourced::Known { value, .. } => Meaning::V(value),
                tailshift_parsers::Sourced::Unknown { .. } => Meaning::U,
            };
            (k.as_ref(), m)
        })
        .collect()
}

fn semantic(s: &tailshift_parsers::Service) -> Semantic<'_> {
    Semantic {
        host: s.host.known(),
        name: &s.name,
        flavour: s.flavour,
        declared: meanings(&s.declared),
        effective: meanings(&s.effective),
        presence: match &s.presence {
            tailshift_parsers::Presence::Certain => None,
            tailshift_parsers::Presence::Conditional { condition, .. } => Some(condition),
        },
    }
}

/// The semantic hash of an inventory's services.
pub fn inventory_hash(inv: &Inventory) -> String {
    let all: Vec<Semantic> = inv.services.iter().map(semantic).collect();
    hash_of(&all)
}

/// Which services differ between two inventories (for stale-plan reasons).
pub fn changed_services(planned: &[crate::plan::PlannedService], inv: &Inventory) -> Vec<String> {
    let now: std::collections::BTreeMap<ServiceId, String> =
        inv.services.iter().map(|s| (ServiceId::of(s), hash_of(&semantic(s)))).collect();
    let mut out = Vec::new();
    for p in planned {
        match now.get(&p.id) {
            None => out.push(format!("{} is gone", p.id)),
            Some(n) if *n != hash_of(&semantic(&p.inventory)) => {
                out.push(format!("{} changed", p.id))
            }
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

/// The hash of a plan with an empty `self_hash`, and with an empty creation time unless
/// `with_created` (the id covers the content, not the time).
fn body_hash(plan: &Plan, with_created: bool) -> String {
    // The self-hash is computed with the field empty; a copy of the small header avoids cloning
    // the services.
    let mut header = serde_json::to_value(PlanHeader::of(plan, with_created)).unwrap_or_default();
    if let Value::Object(m) = &mut header {
        m.insert("self_hash".into(), Value::String(String::new()));
    }
    let mut w = HashWriter(Sha256::new());
    let _ = serde_json::to_writer(&mut w, &header);
    let _ = serde_json::to_writer(&mut w, &plan.services);
    let _ = serde_json::to_writer(&mut w, &plan.waves);
    let _ = serde_json::to_writer(&mut w, &plan.findings);
    hex(&w.0.finalize())
}

/// Every field of a plan except services, waves and findings.
#[derive(serde::Serialize)]
struct PlanHeader<'a> {
    format_version: u32,
    tool_version: &'a str,
    plan_id: &'a str,
    /// RFC 3339, or empty.
    created: String,
    inputs: &'a [String],
    input_options: &'a std::collections::BTreeMap<String, String>,
    policy_file: &'a Option<String>,
    inventory_hash: &'a str,
    policy_hash: &'a str,
    tailnet: &'a str,
    nodes_today: usize,
    self_hash: &'a str,
}

impl<'a> PlanHeader<'a> {
    fn of(p: &'a Plan, with_created: bool) -> Self {
        PlanHeader {
            format_version: p.format_version,
            tool_version: &p.tool_version,
            plan_id: &p.plan_id,
            created: if with_created { p.created.to_string() } else { String::new() },
            inputs: &p.inputs,
            input_options: &p.input_options,
            policy_file: &p.policy_file,
            inventory_hash: &p.inventory_hash,
            policy_hash: &p.policy_hash,
            tailnet: &p.tailnet,
            nodes_today: p.nodes_today,
            self_hash: &p.self_hash,
        }
    }
}

/// Fills the hashes, the id and the creation time. `SOURCE_DATE_EPOCH` fixes the time, so the
/// same inputs give a byte-identical file.
pub fn seal(mut plan: Plan, inv: &Inventory, policy: &Policy, now_unix: u64) -> Plan {
    plan.inventory_hash = inventory_hash(inv);
    plan.policy_hash = sha256(&policy.canonical());
    plan.created = Timestamp::from_unix_secs(now_unix);
    reseal(plan)
}

/// Fills the id and the self-hash from the content, keeping the input hashes and creation
/// time: what [`seal`] does after stamping them.
pub fn reseal(mut plan: Plan) -> Plan {
    plan.plan_id = String::new();
    plan.self_hash = String::new();
    // The id covers the content, not the time.
    let id = body_hash(&plan, false);
    plan.plan_id = id["sha256:".len().."sha256:".len() + 16].to_string();
    plan.self_hash = body_hash(&plan, true);
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

/// Writes a plan (or any file that may hold upstream header values, which can be credentials)
/// atomically, readable by its owner only (0600).
pub fn write_atomic(path: &Path, text: &str) -> Result<(), PlanError> {
    tailshift_util::write_atomic(path, text.as_bytes(), tailshift_util::FileMode::Private)
        .map_err(|e| PlanError::Io { path: path.display().to_string(), message: e.to_string() })
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
    body_hash(plan, true) == plan.self_hash
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
