//! `migrate plan`: properties of the homelab plan, the example fleet, bad policies, `--check`.

use crate::need_homelab;
use crate::util::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// `migrate plan` with a fixed creation time, run from the repository root.
fn plan_cmd(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_migrate"))
        .arg("plan")
        .args(args)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", "1795830000")
        .output()
        .expect("run migrate plan")
}

fn homelab_plan(out: &Path, format: &str) -> (std::process::Output, Option<Value>) {
    let h = crate::util::homelab().expect("checked by the caller");
    let o = plan_cmd(
        &[
            &format!("{h}/hosts/storage.nix"),
            &format!("{h}/hosts/cloud.nix"),
            "--config",
            "tests/data/homelab-migrate.toml",
            "--out",
            out.to_str().unwrap(),
            "--format",
            format,
        ],
        &root(),
    );
    let plan = std::fs::read_to_string(out).ok().map(|t| serde_json::from_str(&t).unwrap());
    (o, plan)
}

fn by_id(plan: &Value) -> BTreeMap<String, &Value> {
    plan["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s))
        .collect()
}

#[test]
fn homelab_plan_properties() {
    need_homelab!();
    let dir = tempfile::tempdir().unwrap();
    let (o, plan) = homelab_plan(&dir.path().join("plan.json"), "table");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan = plan.unwrap();
    let svcs = by_id(&plan);
    assert_eq!(svcs.len(), 71);
    let waves = plan["waves"].as_array().unwrap();
    // A canary of 3 tailnet-only services with no dependents and no dependencies.
    let canary = &waves[0];
    assert_eq!(canary["kind"], "canary");
    let members: Vec<&str> =
        canary["services"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(members.len(), 3);
    for id in &members {
        let s = svcs[*id];
        assert_eq!(s["inventory"]["effective"]["funnel"]["known"]["value"], false, "{id}");
        assert!(s.get("depends_on").is_none(), "{id}");
        let dependents = svcs
            .values()
            .filter(|o| {
                o["depends_on"].as_array().is_some_and(|d| {
                    d.iter().any(|x| x.as_str().unwrap().starts_with(&format!("{id} ")))
                })
            })
            .count();
        assert_eq!(dependents, 0, "{id} has dependents");
    }
    // Later waves within the schedule [3, 10, 15]; hubs at most 3.
    let mut ramp = 0;
    for w in waves.iter().skip(1) {
        let n = w["services"].as_array().unwrap().len();
        match w["kind"].as_str().unwrap() {
            "hub" => assert!(n <= 3, "hub wave of {n}"),
            "ramp" => {
                let cap = if ramp == 0 { 10 } else { 15 };
                assert!(n <= cap, "ramp wave {} has {n} > {cap}", w["number"]);
                ramp += 1;
            }
            k => panic!("unexpected wave kind {k}"),
        }
    }
    // auth before every service that uses it, in a wave of at most 3.
    let auth = svcs["cloud/auth"];
    let auth_wave = auth["wave"].as_u64().unwrap();
    assert!(waves[auth_wave as usize - 1]["services"].as_array().unwrap().len() <= 3);
    let mut users = 0;
    for (id, s) in &svcs {
        if s["depends_on"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x.as_str().unwrap().starts_with("cloud/auth ")))
        {
            users += 1;
            if let Some(w) = s["wave"].as_u64() {
                assert!(w > auth_wave, "{id} (wave {w}) before auth (wave {auth_wave})");
            }
        }
    }
    assert!(users >= 47, "{users} services use auth");
    // Every planned service comes after everything it depends on.
    for (id, s) in &svcs {
        for d in s["depends_on"].as_array().into_iter().flatten() {
            let dep = d.as_str().unwrap().split(' ').next().unwrap();
            if let (Some(w), Some(dw)) = (s["wave"].as_u64(), svcs[dep]["wave"].as_u64())
                && !s["aliases"].as_array().is_some_and(|a| a.iter().any(|x| x == dep))
            {
                assert!(w > dw, "{id} in wave {w} but its dependency {dep} in wave {dw}");
            }
        }
    }
    // Aliases together, and ordered inside their wave.
    for (a, b) in [
        ("storage/jellyfin", "storage/jf"),
        ("storage/home", "storage/www"),
        ("storage/photoprism", "storage/photos"),
    ] {
        assert_eq!(svcs[a]["wave"], svcs[b]["wave"], "{a} and {b}");
    }
    let w = svcs["storage/jf"]["wave"].as_u64().unwrap() as usize;
    let order: Vec<&str> =
        waves[w - 1]["services"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let pos = |x: &str| order.iter().position(|y| *y == x).unwrap();
    assert!(pos("storage/jellyfin") < pos("storage/jf"));
    // hass is down today and said so; it keeps its node (public).
    assert!(
        plan["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "down_today" && f["service"] == "storage/hass")
    );
    // Nothing public ends up under a strategy that drops Funnel.
    for (id, s) in &svcs {
        if s["inventory"]["effective"]["funnel"]["known"]["value"] == true
            && s["status"] == "planned"
        {
            assert_eq!(s["strategy"], "keep-node", "{id}");
        }
    }
}

#[test]
fn homelab_plan_is_byte_identical_across_runs_and_snapshotted() {
    need_homelab!();
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = homelab_plan(&dir.path().join("a.json"), "table");
    let (_, _) = homelab_plan(&dir.path().join("b.json"), "table");
    let fa = std::fs::read(dir.path().join("a.json")).unwrap();
    let fb = std::fs::read(dir.path().join("b.json")).unwrap();
    assert!(fa == fb, "two runs gave different plan files");
    let table = stdout(&a).replace(dir.path().to_str().unwrap(), "<tmp>");
    insta::assert_snapshot!("homelab_plan_table", table);
    let (md, _) = homelab_plan(&dir.path().join("c.json"), "markdown");
    insta::assert_snapshot!("homelab_plan_markdown", stdout(&md));
    let (js, _) = homelab_plan(&dir.path().join("d.json"), "json");
    insta::assert_snapshot!("homelab_plan_json", stdout(&js));
}

fn fleet_dir() -> tempfile::TempDir {
    // A copy of the example fleet, so tests may edit it.
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| {
        fn walk(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).unwrap();
            for e in std::fs::read_dir(from).unwrap() {
                let e = e.unwrap();
                let t = to.join(e.file_name());
                if e.path().is_dir() {
                    walk(&e.path(), &t);
                } else {
                    std::fs::copy(e.path(), t).unwrap();
                }
            }
        }
        walk(from, to);
    };
    copy(&root().join("examples/fleet"), dir.path());
    dir
}

#[test]
fn fleet_plan_holds_back_unknowns_and_orders_dependencies() {
    let dir = fleet_dir();
    let o = plan_cmd(&["hosts/nas.nix", "--format", "json"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let svcs = by_id(&plan);
    assert_eq!(svcs["nas/jellyfin"]["status"], "manual");
    assert!(svcs["nas/jellyfin"]["wave"].is_null());
    assert!(svcs["nas/miniflux"]["wave"].as_u64() > svcs["nas/grafana"]["wave"].as_u64());
    assert_eq!(svcs["nas/audiobookshelf"]["strategy"], "keep-node");
    // The canary takes the least-used private services.
    assert_eq!(
        plan["waves"][0]["services"],
        serde_json::json!(["nas/syncthing", "nas/vaultwarden"])
    );
    // Steps per strategy, the check from the policy.
    let g = &plan["waves"][1]["steps"]["nas/grafana"];
    assert_eq!(g[0]["step"], "add_route");
    assert_eq!(g[1]["step"], "stop_legacy");
    assert_eq!(g[3], serde_json::json!({"step": "verify", "path": "/api/health", "status": 200}));
    // Written beside migrate.toml. With --accept-unknown jellyfin is no longer manual, but it is
    // public under a strategy that cannot keep Funnel: it needs a decision, never silently private.
    assert!(dir.path().join("plan.json").exists());
    let o = plan_cmd(&["hosts/nas.nix", "--format", "json", "--accept-unknown"], dir.path());
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(by_id(&plan)["nas/jellyfin"]["status"], "needs-decision");
    assert!(
        plan["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "needs_decision_funnel" && f["service"] == "nas/jellyfin")
    );
    // Other documents render.
    for (f, needle) in
        [("markdown", "## Wave 1 (canary)"), ("dot", "digraph plan"), ("mermaid", "flowchart LR")]
    {
        let o = plan_cmd(&["hosts/nas.nix", "--format", f], dir.path());
        assert!(stdout(&o).contains(needle), "{f}: {}", stdout(&o));
    }
}

fn write_policy(dir: &Path, extra: &str) {
    let base = std::fs::read_to_string(root().join("examples/fleet/migrate.toml")).unwrap();
    std::fs::write(dir.join("migrate.toml"), format!("{base}\n{extra}")).unwrap();
}

#[test]
fn bad_policies_are_clear_errors_with_exit_1() {
    let dir = fleet_dir();
    let cases: [(&str, &str); 5] = [
        ("[plan.pins]\nghost = 2\n", "no service \"ghost\""),
        ("[plan.pins]\nminiflux = 1\n", "before its dependency nas/grafana"),
        ("", "dependency cycle"),
        ("", "unknown continuity strategy \"teleport\""),
        ("", "migrate.toml:"),
    ];
    for (i, (extra, needle)) in cases.iter().enumerate() {
        match i {
            2 => {
                let base =
                    std::fs::read_to_string(root().join("examples/fleet/migrate.toml")).unwrap();
                let text = base.replace(
                    "miniflux = [\"grafana\"]",
                    "miniflux = [\"grafana\"]\ngrafana = [\"miniflux\"]",
                );
                std::fs::write(dir.path().join("migrate.toml"), text).unwrap();
            }
            3 => {
                let base =
                    std::fs::read_to_string(root().join("examples/fleet/migrate.toml")).unwrap();
                std::fs::write(
                    dir.path().join("migrate.toml"),
                    base.replace("\"keep-node\"", "\"teleport\""),
                )
                .unwrap();
            }
            4 => {
                let base =
                    std::fs::read_to_string(root().join("examples/fleet/migrate.toml")).unwrap();
                std::fs::write(
                    dir.path().join("migrate.toml"),
                    base.replace("schedule = [2, 3]", "schedule = [2, 3"),
                )
                .unwrap();
            }
            _ => write_policy(dir.path(), extra),
        }
        let o = plan_cmd(&["hosts/nas.nix"], dir.path());
        assert_eq!(o.status.code(), Some(1), "case {i}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "case {i}: {}", stderr(&o));
        if i == 2 {
            assert!(stderr(&o).contains("nas/grafana") && stderr(&o).contains("nas/miniflux"));
        }
        if i == 3 || i == 4 {
            // File, line and column.
            let e = stderr(&o);
            assert!(e.contains("migrate.toml:") && e.matches(':').count() >= 3, "{e}");
        }
    }
}

#[test]
fn check_tells_edited_stale_and_current_plans_apart() {
    let dir = fleet_dir();
    let o = plan_cmd(&["hosts/nas.nix"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let check = || plan_cmd(&["--check", "plan.json"], dir.path());
    let o = check();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("is current"));
    // A comment and new spacing in a Nix file change nothing.
    let nas = dir.path().join("hosts/nas.nix");
    let text = std::fs::read_to_string(&nas).unwrap();
    std::fs::write(
        &nas,
        format!(
            "# a new comment\n\n{}",
            text.replace("  networking.hostName", "\n  networking.hostName")
        ),
    )
    .unwrap();
    assert_eq!(check().status.code(), Some(0), "{}", stderr(&check()));
    // A changed value makes it stale, naming the service.
    std::fs::write(&nas, text.replace("port = 3000", "port = 3001")).unwrap();
    let o = check();
    assert_eq!(o.status.code(), Some(7));
    assert!(
        stderr(&o).contains("inputs changed") && stderr(&o).contains("nas/grafana changed"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&nas, &text).unwrap();
    // Planning keys changed.
    let pol = dir.path().join("migrate.toml");
    let ptext = std::fs::read_to_string(&pol).unwrap();
    std::fs::write(&pol, ptext.replace("schedule = [2, 3]", "schedule = [2, 4]")).unwrap();
    let o = check();
    assert_eq!(o.status.code(), Some(7));
    assert!(stderr(&o).contains("planning keys"), "{}", stderr(&o));
    std::fs::write(&pol, &ptext).unwrap();
    // [apply] keys are not planning keys.
    std::fs::write(&pol, format!("{ptext}\n[apply]\nsettle_seconds = 5\n")).unwrap();
    assert_eq!(check().status.code(), Some(0));
    // An edited plan file.
    let plan_path = dir.path().join("plan.json");
    let p = std::fs::read_to_string(&plan_path).unwrap();
    std::fs::write(&plan_path, p.replacen("\"keep-node\"", "\"tailscale-services\"", 1)).unwrap();
    let o = check();
    assert_eq!(o.status.code(), Some(7));
    assert!(stderr(&o).contains("edited"), "{}", stderr(&o));
}

#[test]
fn usage_figures_from_csv_choose_the_canary_and_compare_says_what_moved() {
    let dir = fleet_dir();
    let pol = dir.path().join("migrate.toml");
    let base = std::fs::read_to_string(&pol).unwrap();
    std::fs::write(&pol, base.replace("schedule = [2, 3]", "schedule = [1, 3]")).unwrap();
    let o = plan_cmd(&["hosts/nas.nix", "--out", "old.json", "--format", "json"], dir.path());
    let old: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(old["waves"][0]["services"], serde_json::json!(["nas/syncthing"]));
    // syncthing turns out to be busy: the canary becomes vaultwarden.
    std::fs::write(dir.path().join("usage.csv"), "service,requests_per_day\nsyncthing,1000\n")
        .unwrap();
    std::fs::write(
        &pol,
        base.replace("schedule = [2, 3]", "schedule = [1, 3]\nusage_file = \"usage.csv\""),
    )
    .unwrap();
    let o = plan_cmd(&["hosts/nas.nix", "--out", "new.json", "--compare", "old.json"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let new: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("new.json")).unwrap())
            .unwrap();
    assert_eq!(new["waves"][0]["services"], serde_json::json!(["nas/vaultwarden"]));
    let out = stdout(&o);
    assert!(out.contains("compared with plan"), "{out}");
    assert!(
        out.lines().any(|l| l.contains("nas/vaultwarden") && l.contains("wave 2 -> wave 1")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.contains("nas/syncthing") && l.contains("wave 1 -> wave 2")),
        "{out}"
    );
    // A bad CSV line is an error with its file, line and column.
    std::fs::write(dir.path().join("usage.csv"), "syncthing,1000\ngrafana,lots\n").unwrap();
    let o = plan_cmd(&["hosts/nas.nix"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("usage.csv:2:"), "{}", stderr(&o));
}

/// A stand-in for tailscaled's LocalAPI following reference/tailscale.md section 9: HTTP/1.1 on
/// a unix socket, 403 unless Host is `local-tailscaled.sock`, `status` as chunked JSON.
fn fake_localapi(socket: &Path, suffix: &'static str) -> std::thread::JoinHandle<Vec<String>> {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for stream in listener.incoming().take(2) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let mut host = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if request.is_empty() {
                    request = line.trim().to_string();
                } else if let Some(h) = line.strip_prefix("Host: ") {
                    host = h.trim().to_string();
                }
            }
            seen.push(request.clone());
            if host != "local-tailscaled.sock" {
                let _ = stream.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 26\r\n\r\ninvalid localapi request\r\n");
                continue;
            }
            let body = format!(
                "{{\"BackendState\":\"Running\",\"CurrentTailnet\":{{\"Name\":\"x@example.com\",\"MagicDNSSuffix\":\"{suffix}\"}}}}"
            );
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(resp.as_bytes());
        }
        seen
    })
}

#[test]
fn tailnet_is_read_from_the_localapi_when_the_policy_omits_it() {
    let dir = fleet_dir();
    let pol = dir.path().join("migrate.toml");
    let base = std::fs::read_to_string(&pol).unwrap();
    std::fs::write(&pol, base.replace("tailnet = \"example-tailnet.ts.net\"\n", "")).unwrap();
    // Unreachable: a clear error that says what to do.
    let o = plan_cmd(&["hosts/nas.nix", "--localapi-socket", "nope.sock"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("set plan.tailnet"), "{}", stderr(&o));
    let sock = dir.path().join("tailscaled.sock");
    let server = fake_localapi(&sock, "example-tailnet.ts.net");
    let o = plan_cmd(
        &["hosts/nas.nix", "--localapi-socket", sock.to_str().unwrap(), "--format", "json"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(plan["tailnet"], "example-tailnet.ts.net");
    // Forward auth to auth.example-tailnet.ts.net is recognised under that tailnet.
    assert_eq!(
        by_id(&plan)["nas/grafana"]["placement"]["names"][0]["name"],
        "grafana.example-tailnet.ts.net"
    );
    // --check asks again (second connection) and finds the plan current.
    let o = plan_cmd(
        &["--check", "plan.json", "--localapi-socket", sock.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let seen = server.join().unwrap();
    assert_eq!(seen, vec!["GET /localapi/v0/status?peers=false HTTP/1.1"; 2]);
}

#[test]
fn a_mount_keeps_a_public_service_public_under_the_node_name() {
    let dir = fleet_dir();
    let pol = dir.path().join("migrate.toml");
    let base = std::fs::read_to_string(&pol).unwrap();
    let text = base.replace("audiobookshelf = \"keep-node\"", "")
        + "\n[plan.mounts]\naudiobookshelf = \"/audiobookshelf/\"\n";
    std::fs::write(&pol, text).unwrap();
    let o = plan_cmd(&["hosts/nas.nix", "--format", "json"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let abs = by_id(&plan)["nas/audiobookshelf"];
    assert_eq!(abs["status"], "planned");
    assert_eq!(abs["strategy"], "tailscale-services");
    assert_eq!(
        abs["placement"]["names"],
        serde_json::json!([
            {"name": "audiobookshelf.example-tailnet.ts.net", "mount": "/"},
            {"name": "nas.example-tailnet.ts.net", "mount": "/audiobookshelf/"}
        ])
    );
    assert_eq!(
        abs["placement"]["redirect_to"],
        "https://nas.example-tailnet.ts.net/audiobookshelf/"
    );
    let w = abs["wave"].as_u64().unwrap() as usize;
    let steps = &plan["waves"][w - 1]["steps"]["nas/audiobookshelf"];
    assert_eq!(steps.as_array().unwrap().last().unwrap()["status"], 308);
    assert!(plan["findings"].as_array().unwrap().iter().any(|f| f["code"] == "public_url_changes"));
    // A mount must be a path.
    std::fs::write(&pol, base + "\n[plan.mounts]\ngrafana = \"grafana\"\n").unwrap();
    let o = plan_cmd(&["hosts/nas.nix"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("mounts.grafana"), "{}", stderr(&o));
}

#[test]
fn usage_from_a_saved_tsnsrv_metrics_scrape() {
    let dir = fleet_dir();
    let pol = dir.path().join("migrate.toml");
    let base = std::fs::read_to_string(&pol).unwrap();
    std::fs::write(
        dir.path().join("metrics.txt"),
        "tsnsrv_response_status_classes{service_name=\"syncthing\",status_code_class=\"2xx\"} 7000\n",
    )
    .unwrap();
    std::fs::write(
        &pol,
        base.replace(
            "schedule = [2, 3]",
            "schedule = [1, 3]\nusage_metrics_file = \"metrics.txt\"\nusage_metrics_days = 7",
        ),
    )
    .unwrap();
    let o = plan_cmd(&["hosts/nas.nix", "--format", "json"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap();
    // syncthing served 1,000 requests a day: vaultwarden (5) is the quieter canary.
    assert_eq!(plan["waves"][0]["services"], serde_json::json!(["nas/vaultwarden"]));
    // Without the window the figures mean nothing: an error.
    std::fs::write(
        &pol,
        base.replace(
            "schedule = [2, 3]",
            "schedule = [1, 3]\nusage_metrics_file = \"metrics.txt\"",
        ),
    )
    .unwrap();
    let o = plan_cmd(&["hosts/nas.nix"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("usage_metrics_days"), "{}", stderr(&o));
}

#[test]
fn routes_keep_what_each_flavour_did() {
    let dir = fleet_dir();
    let o = plan_cmd(&["hosts/nas.nix", "--format", "routes"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let routes: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let by: BTreeMap<String, &Value> = routes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["service"].as_str().unwrap().to_string(), r))
        .collect();
    // jellyfin is manual: no route.
    assert!(!by.contains_key("nas/jellyfin"));
    let p = by["nas/paperless"];
    assert_eq!(p["upstream"]["unix"], "/run/paperless/web.sock");
    assert_eq!(p["auth"]["copy_headers"], serde_json::json!(["Remote-User"]));
    // The fork's per-service units kept the Host and stripped prefixes.
    let s = by["nas/syncthing"];
    assert_eq!(
        (s["host_header"].as_str(), s["strip_prefix"].as_bool()),
        (Some("keep"), Some(false))
    );
    assert_eq!(
        s["hosts"][0],
        serde_json::json!({"name": "syncthing.example-tailnet.ts.net", "mount": "/"})
    );
    assert_eq!(by["nas/grafana"]["wave"], 2);
}

#[test]
fn homelab_routes_differ_by_flavour() {
    need_homelab!();
    let dir = tempfile::tempdir().unwrap();
    let (o, _) = homelab_plan(&dir.path().join("p.json"), "routes");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let routes: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let by: BTreeMap<String, &Value> = routes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["service"].as_str().unwrap().to_string(), r))
        .collect();
    assert_eq!(by.len(), 71);
    // cloud runs tsnsrv-all: the upstream saw its own Host; storage kept the client's.
    assert_eq!(by["cloud/dns"]["host_header"], "upstream");
    assert_eq!(by["cloud/dns"]["listen"], serde_json::json!({"kind": "plaintext", "port": 80}));
    assert_eq!(by["storage/jellyfin"]["host_header"], "keep");
    assert_eq!(
        by["storage/filebrowser"]["prefixes"],
        serde_json::json!(["tailnet:/", "funnel:/share/"])
    );
    assert_eq!(by["storage/syncthing"]["upstream"]["unix"], "/run/syncthing/gui.sock");
    assert_eq!(
        by["storage/hass"]["upstream_headers"],
        serde_json::json!({"X-Forwarded-Proto": "https"})
    );
}
