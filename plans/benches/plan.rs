//! Plans 10,000 services with 20,000 dependency edges (target: under 1 s, BENCHMARKS.md):
//! graph, cycle check, waves, steps, findings, hashes and the sealed plan.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tailshift_parsers::Opt;
use tailshift_parsers::inventory::{Flavour, Inventory, Options, Service, Sourced};
use tailshift_plans::{PlanOptions, Policy, make_plan, plan_file};

/// Services in the generated fleet.
const SERVICES: usize = 10_000;
/// Extra dependency edges (each from a service to one with a lower number: no cycles).
const EDGES: usize = 20_000;

fn fleet() -> (Inventory, Policy) {
    let mut inv = Inventory::new();
    for i in 0..SERVICES {
        let mut eff = Options::default();
        eff.set(
            Opt::ToUrl,
            Sourced::declared(json!(format!("http://127.0.0.1:{}", 10_000 + i)), None),
        );
        eff.set(Opt::Funnel, Sourced::declared(json!(i % 50 == 0), None));
        eff.set(Opt::Tags, Sourced::default(json!(["tag:service"]), "bench"));
        eff.set(Opt::AuthKeyPath, Sourced::default(json!("/run/key"), "bench"));
        if i % 3 == 0 && i > 0 {
            eff.set(Opt::AuthUrl, Sourced::declared(json!("https://svc0.bench.ts.net"), None));
        }
        inv.services.push(Service {
            name: format!("svc{i}"),
            host: Sourced::declared(format!("h{}", i % 4), None),
            flavour: Flavour::Fork,
            input: "bench".into(),
            location: None,
            declared: Options::default(),
            effective: eff,
            coverage: Vec::new(),
            findings: Vec::new(),
            presence: Default::default(),
            moved: None,
        });
    }
    let mut text = String::from("[plan]\ntailnet = \"bench.ts.net\"\n[plan.strategies]\n");
    for i in (0..SERVICES).step_by(50) {
        text.push_str(&format!("svc{i} = \"keep-node\"\n"));
    }
    text.push_str("[plan.dependencies]\n");
    // A deterministic pseudo-random graph: edges only point to lower numbers.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); SERVICES];
    for _ in 0..EDGES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let from = 1 + (x as usize % (SERVICES - 1));
        let to = (x >> 32) as usize % from;
        deps[from].push(to);
    }
    for (i, d) in deps.iter().enumerate() {
        if !d.is_empty() {
            let list: Vec<String> = d.iter().map(|j| format!("\"svc{j}\"")).collect();
            text.push_str(&format!("svc{i} = [{}]\n", list.join(", ")));
        }
    }
    (inv, Policy::parse(&text, "bench.toml").unwrap())
}

fn bench(c: &mut Criterion) {
    let (inv, policy) = fleet();
    let plan = make_plan(&inv, &policy, &PlanOptions::default()).unwrap();
    assert_eq!(plan.services.len(), SERVICES);
    let mut g = c.benchmark_group("plan");
    g.sample_size(10);
    g.bench_function("10000_services_20000_edges", |b| {
        b.iter_with_large_drop(|| {
            let plan = make_plan(&inv, &policy, &PlanOptions::default()).unwrap();
            plan_file::seal(plan, &inv, &policy, 0)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
