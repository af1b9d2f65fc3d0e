//! Plan documents: the terminal table, the Markdown runbook, DOT and Mermaid graphs.

use crate::plan::{Plan, Status, WaveKind};
use std::fmt::Write;

fn kind(k: WaveKind) -> &'static str {
    match k {
        WaveKind::Canary => "canary",
        WaveKind::Hub => "hub",
        WaveKind::Ramp => "ramp",
    }
}

/// The terminal view: one block per wave with each service's reason, then what is held back.
pub fn table(plan: &Plan) -> String {
    let mut out = String::new();
    let planned = plan.services.iter().filter(|s| s.status == Status::Planned).count();
    let _ = writeln!(
        out,
        "plan {}: {} services in {} waves ({} planned, {} held back); tsnsrv nodes today: {}",
        plan.plan_id,
        plan.services.len(),
        plan.waves.len(),
        planned,
        plan.services.len() - planned,
        plan.nodes_today
    );
    if !plan.may_miss_services.is_empty() {
        let _ = writeln!(
            out,
            "\nthis plan may miss services (made with --allow-incomplete); names that could not be known:"
        );
        for m in &plan.may_miss_services {
            let _ = writeln!(out, "  {m}");
        }
    }
    for w in &plan.waves {
        let f = &w.forecast;
        let _ = writeln!(
            out,
            "\nwave {} ({}, {} services): retires {} nodes, frees ~{:.2} cores and ~{:.0} MB; {} nodes left",
            w.number,
            kind(w.kind),
            w.services.len(),
            f.nodes_retired,
            f.cpu_freed_cores,
            f.memory_freed_mb,
            f.nodes_left
        );
        for id in &w.services {
            let s = plan.services.iter().find(|s| &s.id == id).expect("wave member");
            let _ =
                writeln!(out, "  {:<28} {:<19} {}", id, s.strategy.as_str(), s.reasons.join("; "));
        }
    }
    let held: Vec<_> = plan.services.iter().filter(|s| s.status != Status::Planned).collect();
    if !held.is_empty() {
        let _ = writeln!(out, "\nheld back:");
        for s in held {
            let st = match s.status {
                Status::Manual => "manual",
                Status::NeedsDecision => "needs decision",
                Status::Excluded => "excluded",
                Status::PresenceUnknown => "presence unknown",
                Status::Planned => "planned",
            };
            let _ = writeln!(
                out,
                "  {:<28} {:<15} {}",
                s.id,
                st,
                s.reasons.first().cloned().unwrap_or_default()
            );
        }
    }
    if !plan.findings.is_empty() {
        let _ = writeln!(out, "\nfindings:");
        for f in &plan.findings {
            let at = f.location.as_ref().map(|l| format!(" ({l})")).unwrap_or_default();
            let _ = writeln!(out, "  {}[{}]: {}{at}", f.severity, f.code, f.message);
        }
    }
    out
}

/// The runbook: per wave, what changes, what to watch, how to roll back.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Migration plan {}\n", plan.plan_id);
    let _ = writeln!(
        out,
        "Tailnet `{}`. {} services, {} tsnsrv nodes today, {} waves. Inputs: {}.\n",
        plan.tailnet,
        plan.services.len(),
        plan.nodes_today,
        plan.waves.len(),
        plan.inputs.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
    );
    for w in &plan.waves {
        let _ = writeln!(out, "## Wave {} ({})\n", w.number, kind(w.kind));
        let hosts: std::collections::BTreeSet<&str> = w
            .services
            .iter()
            .filter_map(|id| plan.services.iter().find(|s| &s.id == id))
            .filter_map(|s| s.inventory.host.known().map(String::as_str))
            .collect();
        let runs: Vec<String> = hosts
            .iter()
            .map(|h| format!("on {h}: `migrate apply --wave {} --host {h}`", w.number))
            .collect();
        let _ = writeln!(out, "Run {}.\n", runs.join("; "));
        let _ = writeln!(out, "| service | strategy | why here |\n|---|---|---|");
        for id in &w.services {
            let s = plan.services.iter().find(|s| &s.id == id).expect("wave member");
            let _ = writeln!(
                out,
                "| `{id}` | {} | {} |",
                s.strategy.as_str(),
                s.reasons.join("; ").replace('|', "\\|")
            );
        }
        let _ = writeln!(out, "\n**What changes.** For each service, in this order:\n");
        for id in &w.services {
            let steps = &w.steps[id];
            let list: Vec<String> = steps.iter().map(|s| s.describe()).collect();
            let _ = writeln!(out, "- `{id}`: {}", list.join(", then "));
        }
        let gaps: std::collections::BTreeSet<&str> = w
            .services
            .iter()
            .filter_map(|id| plan.services.iter().find(|s| &s.id == id))
            .map(|s| s.strategy.gap())
            .collect();
        let _ = writeln!(
            out,
            "\n**What to watch.** Each service's check through its legacy name; the gap: {}.",
            gaps.into_iter().collect::<Vec<_>>().join("; ")
        );
        let _ = writeln!(
            out,
            "\n**Rollback.** `migrate rollback --wave {}` runs the inverse steps in reverse; the route goes last, so no client meets a 404. \
             Expected effect: {} nodes retired, ~{:.2} cores and ~{:.0} MB freed, {} nodes left.\n",
            w.number,
            w.forecast.nodes_retired,
            w.forecast.cpu_freed_cores,
            w.forecast.memory_freed_mb,
            w.forecast.nodes_left
        );
    }
    let held: Vec<_> = plan.services.iter().filter(|s| s.status != Status::Planned).collect();
    if !held.is_empty() {
        let _ = writeln!(out, "## Held back\n");
        for s in held {
            let _ = writeln!(out, "- `{}`: {}", s.id, s.reasons.join("; "));
        }
        out.push('\n');
    }
    if !plan.findings.is_empty() {
        let _ = writeln!(out, "## Findings\n");
        for f in &plan.findings {
            let _ = writeln!(out, "- **{}** ({}): {}", f.code, f.severity, f.message);
        }
    }
    out
}

fn node_id(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// Graphviz: one cluster per wave, dependency edges.
pub fn dot(plan: &Plan) -> String {
    let mut out = String::from("digraph plan {\n  rankdir=LR;\n  node [shape=box];\n");
    for w in &plan.waves {
        let _ = writeln!(
            out,
            "  subgraph cluster_wave{} {{\n    label=\"wave {} ({})\";",
            w.number,
            w.number,
            kind(w.kind)
        );
        for id in &w.services {
            let _ = writeln!(out, "    {} [label=\"{id}\"];", node_id(id.as_str()));
        }
        out.push_str("  }\n");
    }
    for s in &plan.services {
        if s.status != Status::Planned {
            let _ =
                writeln!(out, "  {} [label=\"{}\", style=dashed];", node_id(s.id.as_str()), s.id);
        }
        for d in &s.depends_on {
            let _ = writeln!(out, "  {} -> {};", node_id(s.id.as_str()), node_id(d.id.as_str()));
        }
    }
    out.push_str("}\n");
    out
}

/// Mermaid flowchart: one subgraph per wave, dependency edges.
pub fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart LR\n");
    for w in &plan.waves {
        let _ =
            writeln!(out, "  subgraph wave{}[\"wave {} ({})\"]", w.number, w.number, kind(w.kind));
        for id in &w.services {
            let _ = writeln!(out, "    {}[\"{id}\"]", node_id(id.as_str()));
        }
        out.push_str("  end\n");
    }
    for s in &plan.services {
        for d in &s.depends_on {
            let _ = writeln!(out, "  {} --> {}", node_id(s.id.as_str()), node_id(d.id.as_str()));
        }
    }
    out
}
