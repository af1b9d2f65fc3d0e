//! `migrate plan --compare OLD`: what moved between two plans, and why.

use crate::id::{Dependency, ServiceId};
use crate::plan::{Plan, PlannedService};
use std::collections::BTreeMap;
use std::fmt::Write;

/// One difference between two plans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The service.
    pub service: ServiceId,
    /// What changed, in words.
    pub what: String,
    /// Why it is where it is now.
    pub why: String,
}

/// Dependencies as the plan file writes them, comma-separated.
fn list(deps: &[Dependency]) -> String {
    deps.iter().map(Dependency::to_string).collect::<Vec<_>>().join(", ")
}

fn wave(w: Option<usize>) -> String {
    w.map_or("none".into(), |w| format!("wave {w}"))
}

/// The differences, service by service, in id order.
pub fn compare(old: &Plan, new: &Plan) -> Vec<Change> {
    let olds: BTreeMap<&ServiceId, &PlannedService> =
        old.services.iter().map(|s| (&s.id, s)).collect();
    let news: BTreeMap<&ServiceId, &PlannedService> =
        new.services.iter().map(|s| (&s.id, s)).collect();
    let mut out = Vec::new();
    for (id, n) in &news {
        let why = n.reasons.join("; ");
        match olds.get(id) {
            None => out.push(Change {
                service: (*id).clone(),
                what: format!("new, {}", wave(n.wave)),
                why,
            }),
            Some(o) => {
                let mut what = Vec::new();
                if o.wave != n.wave {
                    what.push(format!("{} -> {}", wave(o.wave), wave(n.wave)));
                }
                if o.status != n.status {
                    what.push(format!("status {:?} -> {:?}", o.status, n.status).to_lowercase());
                }
                if o.strategy != n.strategy {
                    what.push(format!(
                        "strategy {} -> {}",
                        o.strategy.as_str(),
                        n.strategy.as_str()
                    ));
                }
                if o.depends_on != n.depends_on {
                    what.push(format!(
                        "dependencies [{}] -> [{}]",
                        list(&o.depends_on),
                        list(&n.depends_on)
                    ));
                }
                if !what.is_empty() {
                    out.push(Change { service: (*id).clone(), what: what.join(", "), why });
                }
            }
        }
    }
    for id in olds.keys() {
        if !news.contains_key(id) {
            out.push(Change {
                service: (*id).clone(),
                what: "no longer in the inputs".into(),
                why: String::new(),
            });
        }
    }
    out.sort_by(|a, b| a.service.cmp(&b.service));
    out
}

/// The comparison as text.
pub fn render(old: &Plan, new: &Plan) -> String {
    let changes = compare(old, new);
    let mut out = format!("\ncompared with plan {} ({} waves): ", old.plan_id, old.waves.len());
    if changes.is_empty() {
        out.push_str("no service moved\n");
        return out;
    }
    let _ = writeln!(out, "{} services changed", changes.len());
    for c in changes {
        let why = if c.why.is_empty() { String::new() } else { format!(" ({})", c.why) };
        let _ = writeln!(out, "  {:<28} {}{why}", c.service, c.what);
    }
    out
}
