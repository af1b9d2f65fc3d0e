//! What tsnsrv took but the proxy refuses (issue 15, second pass) becomes a `no_route` finding
//! when the plan is made, never a route that `PUT /routes` would refuse in the middle of a
//! wave: framing and identity headers in `upstreamHeaders`, an empty `funnel:` prefix, a
//! `toURL` with userinfo.

use serde_json::{Value, json};
use tailshift_parsers::Opt;
use tailshift_parsers::inventory::{Flavour, Inventory, Options, Service, Sourced};
use tailshift_plans::{FindingCode, PlanOptions, Policy, make_plan};

fn service(name: &str, opts: &[(Opt, Value)]) -> Service {
    let mut eff = Options::default();
    eff.set(Opt::ToUrl, Sourced::declared(json!("http://127.0.0.1:8080"), None));
    for (k, v) in opts {
        eff.set(*k, Sourced::declared(v.clone(), None));
    }
    Service {
        name: name.into(),
        host: Sourced::declared("box".into(), None),
        flavour: Flavour::Fork,
        input: "test".into(),
        location: None,
        declared: Options::default(),
        effective: eff,
        coverage: Vec::new(),
        findings: Vec::new(),
        presence: Default::default(),
        moved: None,
    }
}

#[test]
fn routes_the_proxy_would_refuse_are_no_route_findings() {
    let mut inv = Inventory::new();
    let refused = [
        ("cl", Opt::UpstreamHeaders, json!({"Content-Length": "0"})),
        ("te", Opt::UpstreamHeaders, json!({"Transfer-Encoding": "chunked"})),
        ("who", Opt::UpstreamHeaders, json!({"X-Tailscale-User-LoginName": "a@b"})),
        ("open", Opt::Prefixes, json!(["funnel:"])),
        ("creds", Opt::ToUrl, json!("http://u:p@127.0.0.1:8081")),
    ];
    for (name, opt, value) in &refused {
        inv.services.push(service(name, &[(*opt, value.clone())]));
    }
    inv.services
        .push(service("fine", &[(Opt::UpstreamHeaders, json!({"X-Forwarded-Proto": "https"}))]));
    inv.services.sort_by(|a, b| a.name.cmp(&b.name));
    let policy =
        Policy::parse("[plan]\ntailnet = \"t.ts.net\"\nschedule = [10]\n", "t.toml").unwrap();
    let plan = make_plan(&inv, &policy, &PlanOptions::default()).unwrap();
    for (name, _, value) in &refused {
        let id = format!("box/{name}");
        let s = plan.services.iter().find(|s| s.id.as_str() == id).unwrap();
        assert!(s.wave.is_some() && s.route.is_none(), "{id}: {value}");
        let f = plan
            .findings
            .iter()
            .find(|f| f.code == FindingCode::NoRoute && f.service.as_ref() == Some(&s.id))
            .unwrap_or_else(|| panic!("{id}: no no_route finding"));
        assert!(f.message.contains("the proxy refuses such a route"), "{}", f.message);
    }
    let fine = plan.services.iter().find(|s| s.id.as_str() == "box/fine").unwrap();
    assert!(fine.route.is_some());
}
