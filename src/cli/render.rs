//! Terminal output: the inventory table, the coverage report and diagnostics with the offending
//! line marked (rustc style). Nothing here decides anything.

use std::fmt::Write;
use tailshift_parsers::inventory::{Coverage, FlavourBasis, Inventory, Service, Sourced};
use tailshift_parsers::{Diagnostic, Opt, Severity};

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let pad = widths[i] - c.chars().count();
                line.push_str(c);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn show<T: std::fmt::Display>(s: Option<&Sourced<T>>) -> String {
    match s {
        Some(Sourced::Known { value, .. }) => value.to_string(),
        Some(Sourced::Unknown { .. }) => "?".into(),
        None => "-".into(),
    }
}

fn upstream(s: &Service) -> String {
    let url = match s.effective.get(Opt::ToUrl) {
        Some(Sourced::Known { value, .. }) => {
            value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string())
        }
        Some(Sourced::Unknown { .. }) => "? (unknown)".into(),
        None => "-".into(),
    };
    match s.effective.str(Opt::UpstreamUnixAddr) {
        Some(sock) => format!("{url} via unix:{sock}"),
        None => url,
    }
}

fn yes_no(s: &Service, opt: Opt) -> String {
    match s.effective.get(opt) {
        Some(Sourced::Known { value, .. }) => match value.as_bool() {
            Some(true) => "yes".into(),
            Some(false) => "no".into(),
            None => value.to_string(),
        },
        Some(Sourced::Unknown { .. }) => "?".into(),
        None => "-".into(),
    }
}

fn auth(s: &Service) -> String {
    match s.effective.get(Opt::AuthUrl) {
        Some(Sourced::Known { value, .. }) => match value.as_str() {
            Some(u) => u.trim_start_matches("https://").trim_start_matches("http://").to_string(),
            None => "-".into(),
        },
        Some(Sourced::Unknown { .. }) => "?".into(),
        None => "-".into(),
    }
}

fn prefixes(s: &Service) -> String {
    match s.effective.get(Opt::Prefixes) {
        Some(Sourced::Unknown { .. }) => "?".into(),
        _ => {
            let p = s.effective.list(Opt::Prefixes).unwrap_or_default();
            if p.is_empty() { "-".into() } else { p.join(",") }
        }
    }
}

/// The services table, preceded by one line per host.
pub fn inventory_table(inv: &Inventory) -> String {
    let mut out = String::new();
    for h in &inv.hosts {
        let mine = || inv.services.iter().filter(|s| s.host == h.name && s.flavour == h.flavour);
        let count = mine().count();
        let conditional = mine().filter(|s| !s.presence.is_certain()).count();
        let count = if conditional > 0 {
            format!(
                "{} ({conditional} only under a condition)",
                tailshift_util::plural(count, "service")
            )
        } else {
            tailshift_util::plural(count, "service")
        };
        let basis = match &h.flavour_basis {
            FlavourBasis::Stated { flag } => format!("stated by {flag}"),
            FlavourBasis::Detected { reason, location } => match location {
                Some(l) => format!("detected: {reason} ({l})"),
                None => format!("detected: {reason}"),
            },
            FlavourBasis::Assumed { reason } => format!("assumed: {reason}"),
        };
        let name = match &h.name {
            Sourced::Known { value, .. } => value.clone(),
            Sourced::Unknown { reason, .. } => format!("? ({reason})"),
        };
        let _ = writeln!(out, "host {name}: {count}, tsnsrv {}; {basis}", h.flavour);
        if !h.complete {
            let _ = writeln!(
                out,
                "  INCOMPLETE: some service names cannot be known; this host may have more services:"
            );
            for i in &h.incomplete {
                match &i.location {
                    Some(l) => {
                        let _ = writeln!(out, "    {l}: {}", i.reason);
                    }
                    None => {
                        let _ = writeln!(out, "    {}", i.reason);
                    }
                }
            }
        }
    }
    if !inv.hosts.is_empty() {
        out.push('\n');
    }
    let mut rows = vec![
        ["SERVICE", "HOST", "UPSTREAM", "FUNNEL", "AUTH", "PREFIXES", "SOURCE"]
            .map(String::from)
            .to_vec(),
    ];
    for s in &inv.services {
        rows.push(vec![
            // A service that exists only under a condition is marked, and explained below.
            if s.presence.is_certain() { s.name.clone() } else { format!("{} (?)", s.name) },
            show(Some(&s.host)),
            upstream(s),
            yes_no(s, Opt::Funnel),
            auth(s),
            prefixes(s),
            s.location.as_ref().map(|l| l.to_string()).unwrap_or_else(|| s.input.clone()),
        ]);
    }
    out.push_str(&table(&rows));
    let moved: Vec<&tailshift_parsers::Service> =
        inv.services.iter().filter(|s| s.moved.is_some()).collect();
    if !moved.is_empty() {
        let _ = writeln!(out, "\nmoved to the proxy (tailshift's NixOS module, its moves file):");
        for s in moved {
            if let Some(m) = &s.moved {
                let how = match (m.how.as_str(), &m.to_url) {
                    ("unit_disabled", _) => format!("tsnsrv-{} disabled", s.name),
                    ("left_shared_process", _) => "no longer in tsnsrv-all".to_string(),
                    ("repointed", Some(u)) => format!("its node re-pointed to {u}"),
                    (other, _) => other.to_string(),
                };
                let _ = writeln!(out, "  {}: {how} ({})", s.name, m.file);
            }
        }
    }
    let conditional: Vec<&tailshift_parsers::Service> =
        inv.services.iter().filter(|s| !s.presence.is_certain()).collect();
    if !conditional.is_empty() {
        let _ = writeln!(
            out,
            "\n(?) exists only under a condition tailshift cannot decide (state it in [plan.present]):"
        );
        for s in conditional {
            if let tailshift_parsers::Presence::Conditional { condition, location, .. } =
                &s.presence
            {
                let at = location.as_ref().map(|l| format!(" ({l})")).unwrap_or_default();
                let _ = writeln!(out, "  {}: when {condition}{at}", s.name);
            }
        }
    }
    out
}

/// One line of the "not understood" list: service, status, reason, attributes, location.
type Detail = (String, Coverage, String, Vec<String>, Option<String>);

/// The coverage report: per service, how many attributes were understood, unknown or
/// unsupported; then every attribute that is not understood, with the reason (attributes that
/// share a reason share a line).
pub fn coverage_report(inv: &Inventory) -> String {
    let mut out = String::new();
    let (mut understood, mut unknown, mut unsupported) = (0, 0, 0);
    let mut rows =
        vec![["SERVICE", "UNDERSTOOD", "UNKNOWN", "UNSUPPORTED"].map(String::from).to_vec()];
    let mut details: Vec<Detail> = Vec::new();
    for s in &inv.services {
        let mut counts = [0usize; 3];
        for c in &s.coverage {
            match c.status {
                Coverage::Understood => counts[0] += 1,
                Coverage::Unknown => counts[1] += 1,
                Coverage::Unsupported => counts[2] += 1,
            }
            if c.status == Coverage::Understood {
                continue;
            }
            let reason = c.reason.clone().unwrap_or_default();
            match details.iter_mut().find(|d| d.0 == s.name && d.1 == c.status && d.2 == reason) {
                Some(d) => d.3.push(c.attribute.clone()),
                None => details.push((
                    s.name.clone(),
                    c.status,
                    reason,
                    vec![c.attribute.clone()],
                    c.location.as_ref().map(|l| l.to_string()),
                )),
            }
        }
        understood += counts[0];
        unknown += counts[1];
        unsupported += counts[2];
        rows.push(vec![
            s.name.clone(),
            counts[0].to_string(),
            counts[1].to_string(),
            counts[2].to_string(),
        ]);
    }
    let _ = writeln!(
        out,
        "\ncoverage: {}; {understood} attributes understood, {unknown} unknown, {unsupported} unsupported",
        tailshift_util::plural(inv.services.len(), "service")
    );
    out.push_str(&table(&rows));
    if !details.is_empty() {
        out.push_str("\nnot understood:\n");
        for (s, st, r, attrs, loc) in details {
            let what = if attrs.len() == 1 {
                format!("{s}.{}", attrs[0])
            } else {
                format!("{s}.{{{}}}", attrs.join(","))
            };
            let at = loc.map(|l| format!(" ({l})")).unwrap_or_default();
            let _ = writeln!(out, "  {what}: {st}: {r}{at}");
        }
    }
    out
}

/// Diagnostics, rustc style, quoting the offending line when the file can be read.
pub fn diagnostics(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    let mut sorted: Vec<&Diagnostic> = diags.iter().collect();
    sorted.sort_by_key(|d| std::cmp::Reverse(d.severity));
    for d in sorted {
        let _ = writeln!(out, "{}[{}]: {}", d.severity, d.code, d.message);
        if let Some(loc) = &d.location {
            let _ = writeln!(out, "  --> {loc}");
            if let Ok(text) = std::fs::read_to_string(&*loc.file)
                && let Some(line) = text.lines().nth(loc.line.saturating_sub(1) as usize)
            {
                let num = loc.line.to_string();
                let pad = " ".repeat(num.len());
                let marks = line.chars().count().saturating_sub(loc.column as usize - 1).max(1);
                let width = (d.length as usize).clamp(1, marks);
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{num} | {line}");
                let _ = writeln!(
                    out,
                    "{pad} | {}{}",
                    " ".repeat(loc.column.saturating_sub(1) as usize),
                    "^".repeat(width)
                );
            }
        }
        for n in &d.notes {
            let _ = writeln!(out, "  = note: {n}");
        }
        if d.severity == Severity::Error || d.location.is_some() || !d.notes.is_empty() {
            out.push('\n');
        }
    }
    let errors = diags.iter().filter(|d| d.severity == Severity::Error).count();
    let warnings = diags.iter().filter(|d| d.severity == Severity::Warning).count();
    if errors + warnings > 0 {
        let _ = writeln!(out, "{errors} error(s), {warnings} warning(s)");
    }
    out
}
