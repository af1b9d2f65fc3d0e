//! Wave assignment on a generated fleet with hubs, aliases, public services, usage figures,
//! pins and a wave size limit: the plan's table is the one committed (made by the version
//! before `make_plan` was split along its phases), and pins that cannot be honoured are the
//! errors they were. `TAILSHIFT_BLESS=1` rewrites the expected files.

use serde_json::json;
use std::fmt::Write;
use std::path::PathBuf;
use tailshift_parsers::Opt;
use tailshift_parsers::inventory::{Flavour, Inventory, Options, Service, Sourced};
use tailshift_plans::{PlanOptions, Policy, make_plan, render};

/// Services in the generated fleet.
const SERVICES: usize = 60;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn expect(name: &str, text: &str) {
    if std::env::var("TAILSHIFT_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(data(name), text).unwrap();
    }
    let want = std::fs::read_to_string(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(want == text, "{name} differs from what this version makes:\n{text}");
}

/// 60 services on three hosts: every seventh forward-authed by svc0 (a hub), pairs of
/// aliases (one upstream), every eleventh public.
fn fleet() -> Inventory {
    let mut inv = Inventory::new();
    for i in 0..SERVICES {
        let mut eff = Options::default();
        let port = 10_000 + if i % 13 == 5 { i - 3 } else { i };
        eff.set(Opt::ToUrl, Sourced::declared(json!(format!("http://127.0.0.1:{port}")), None));
        eff.set(Opt::Funnel, Sourced::declared(json!(i % 11 == 3), None));
        eff.set(Opt::Tags, Sourced::default(json!([format!("tag:t{}", i % 2)]), "test"));
        if i % 7 == 0 && i > 0 {
            eff.set(Opt::AuthUrl, Sourced::declared(json!("https://svc0.t.ts.net"), None));
        }
        inv.services.push(Service {
            name: format!("svc{i}"),
            host: Sourced::declared(format!("h{}", i % 3), None),
            flavour: Flavour::Fork,
            input: "test".into(),
            location: None,
            declared: Options::default(),
            effective: eff,
            coverage: Vec::new(),
            findings: Vec::new(),
            presence: Default::default(),
            moved: None,
        });
    }
    inv.services.sort_by(|a, b| (a.host.known(), &a.name).cmp(&(b.host.known(), &b.name)));
    inv
}

/// The policy: schedule, wave size limit, hub threshold, keep-node for the public, usage,
/// pins, and policy dependencies (each to a lower number: no cycles).
fn policy(extra: &str) -> String {
    let mut text = String::from(
        "[plan]\ntailnet = \"t.ts.net\"\nschedule = [2, 4, 8]\nmax_wave_size = 6\nhub_min_dependents = 4\n[plan.strategies]\n",
    );
    for i in (0..SERVICES).filter(|i| i % 11 == 3) {
        let _ = writeln!(text, "svc{i} = \"keep-node\"");
    }
    text.push_str("[plan.usage]\n");
    for i in (0..SERVICES).step_by(4) {
        let _ = writeln!(text, "svc{i} = {}", (i * 37) % 100);
    }
    text.push_str("[plan.dependencies]\n");
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for from in 1..SERVICES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x % 3 == 0 {
            let _ = writeln!(text, "svc{from} = [\"svc{}\"]", (x >> 32) as usize % from);
        }
    }
    text.push_str(extra);
    text
}

#[test]
fn waves_of_a_generated_fleet_are_as_before() {
    let inv = fleet();
    let pins = "[plan.pins]\nsvc40 = 5\nsvc8 = 1\nsvc30 = 6\n";
    let p = Policy::parse(&policy(pins), "test.toml").unwrap();
    let plan = make_plan(&inv, &p, &PlanOptions::default()).unwrap();
    expect("waves-fleet.table", &render::table(&plan));
}

#[test]
fn pins_that_cannot_be_honoured_are_errors_as_before() {
    let inv = fleet();
    let mut out = String::new();
    for pins in ["svc45 = 1\n", "svc40 = 60\n", "svc40 = 0\n", "svc10 = 2\nsvc20 = 2\n"] {
        let p = Policy::parse(&policy(&format!("[plan.pins]\n{pins}")), "test.toml").unwrap();
        let r = make_plan(&inv, &p, &PlanOptions::default());
        let what = match r {
            Ok(plan) => format!("ok, {} waves", plan.waves.len()),
            Err(e) => e.to_string(),
        };
        let _ = writeln!(out, "{}: {what}", pins.trim().replace('\n', ", "));
    }
    expect("waves-pins.txt", &out);
}
