//! `migrate inventory` on the shared homelab scenario and on the project's own example.

use crate::need_homelab;
use crate::util::*;
use serde_json::{Value, json};

fn expected(homelab: &str, host: &str) -> Value {
    let p = root().join(homelab).join(format!("expected/{host}.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Every service and every value of `expected/<host>.json`, exactly; the module's defaults on top.
fn check_host(host: &str, count: usize) -> Value {
    let homelab = need_homelab!();
    let file = format!("{homelab}/hosts/{host}.nix");
    let out = migrate(&["inventory", &file, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let inv = json(&out);
    let exp = expected(homelab, host);
    let services = inv["services"].as_array().unwrap();
    assert_eq!(services.len(), count);
    let want = exp["services"].as_object().unwrap();
    assert_eq!(want.len(), count);
    for (name, attrs) in want {
        let svc = service(&inv, name);
        assert_eq!(svc["host"]["known"]["value"], host);
        let declared = svc["declared"].as_object().unwrap();
        assert_eq!(declared.len(), attrs.as_object().unwrap().len(), "{name}: {declared:?}");
        for (k, v) in attrs.as_object().unwrap() {
            assert_eq!(value(svc, "declared", k), v, "{name}.{k}");
            assert!(
                svc["declared"][k]["known"]["source"]["location"]["line"].as_u64().is_some(),
                "{name}.{k} has a location"
            );
        }
        // The module's defaults come on top.
        for (k, v) in exp["defaults"].as_object().unwrap() {
            assert_eq!(value(svc, "effective", k), v, "{name}: defaults.{k} applies");
        }
    }
    inv
}

#[test]
fn homelab_storage_gives_exactly_the_expected_57_services() {
    let inv = check_host("storage", 57);
    if inv.is_null() {
        return;
    }
    assert_eq!(inv["hosts"][0]["flavour"], "fork");
    let jellyfin = service(&inv, "jellyfin");
    // One process per service: CLI defaults, Host kept, prefixes stripped.
    assert_eq!(value(jellyfin, "effective", "recommendedProxyHeaders"), &json!(true));
    assert_eq!(value(jellyfin, "effective", "stripPrefix"), &json!(true));
    assert_eq!(value(jellyfin, "effective", "readHeaderTimeout"), &json!("1s"));
    // The fork's per-service metrics port: 9099 + the alphabetical index.
    let all: Vec<String> = inv["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = all.clone();
    sorted.sort();
    let idx = sorted.iter().position(|n| n == "jellyfin").unwrap();
    assert_eq!(value(jellyfin, "effective", "prometheusAddr"), &json!(format!(":{}", 9099 + idx)));
    let hass = diags(&inv, "unit_cannot_start");
    assert_eq!(hass.len(), 1);
    assert_eq!(hass[0]["service"], "hass");
    assert!(hass[0]["location"]["file"].as_str().unwrap().ends_with("hosts/storage.nix"));
    // The service itself carries the finding, so the planner knows it is down today.
    assert_eq!(service(&inv, "hass")["findings"][0]["code"], "unit_cannot_start");
    assert!(service(&inv, "jellyfin").get("findings").is_none());
    let syncthing = service(&inv, "syncthing");
    assert_eq!(
        value(syncthing, "effective", "upstreamUnixAddr"),
        &json!("/run/syncthing/gui.sock")
    );
    assert_eq!(
        value(syncthing, "effective", "authURL"),
        &json!(null),
        "mkForce replaced the generated auth"
    );
}

#[test]
fn homelab_cloud_gives_exactly_the_expected_14_services() {
    let inv = check_host("cloud", 14);
    if inv.is_null() {
        return;
    }
    assert_eq!(inv["hosts"][0]["flavour"], "fork-all");
    let dns = service(&inv, "dns");
    // tsnsrv-all's YAML: the upstream sees its own Host and prefixes are not stripped.
    assert_eq!(value(dns, "effective", "recommendedProxyHeaders"), &json!(false));
    assert_eq!(value(dns, "effective", "stripPrefix"), &json!(false));
    assert_eq!(value(dns, "effective", "listenAddr"), &json!(":80"));
    assert_eq!(value(dns, "effective", "toURL"), &json!("http://127.0.0.1:4000"));
    assert_eq!(value(service(&inv, "ntfy"), "effective", "readHeaderTimeout"), &json!("0s"));
    assert_eq!(value(service(&inv, "mqtt"), "effective", "toURL"), &json!("http://127.0.0.1:9883"));
    assert_eq!(inv["hosts"][0]["prometheus_addr"]["known"]["value"], ":9099");
}

#[test]
fn homelab_units_give_their_services_with_their_flavours_defaults() {
    let homelab = need_homelab!();
    let out = migrate(&["inventory", &format!("{homelab}/units"), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let inv = json(&out);
    assert_eq!(inv["services"].as_array().unwrap().len(), 16);
    // The two unit dumps are upstream tsnsrv: CLI defaults.
    let fb = service(&inv, "filebrowser");
    assert_eq!(fb["flavour"], "upstream");
    assert_eq!(value(fb, "effective", "recommendedProxyHeaders"), &json!(true));
    assert_eq!(value(fb, "effective", "whoisTimeout"), &json!("1s"));
    assert_eq!(value(fb, "effective", "prefixes"), &json!(["tailnet:/", "funnel:/share/"]));
    assert_eq!(value(fb, "declared", "toURL"), &json!("http://127.0.0.1:38080"));
    assert_eq!(fb["declared"]["toURL"]["known"]["source"]["location"]["line"], 18);
    assert_eq!(value(service(&inv, "jellyfin"), "effective", "funnel"), &json!(true));
    // The YAML is the cloud host's tsnsrv-all: the same services and upstreams as cloud.json.
    let cloud = expected(homelab, "cloud");
    for (name, attrs) in cloud["services"].as_object().unwrap() {
        let s = service(&inv, name);
        assert_eq!(s["flavour"], "fork-all", "{name}");
        assert_eq!(value(s, "effective", "toURL"), &attrs["toURL"], "{name}");
        assert_eq!(value(s, "effective", "stripPrefix"), &json!(false), "{name}");
        assert_eq!(value(s, "effective", "recommendedProxyHeaders"), &json!(false), "{name}");
        assert_eq!(value(s, "effective", "funnel"), &attrs["funnel"], "{name}");
        let auth = attrs.get("authURL").cloned().unwrap_or(Value::Null);
        assert_eq!(value(s, "effective", "authURL"), &auth, "{name}");
    }
}

#[test]
fn nix_eval_json_is_read_from_stdin() {
    use std::io::Write;
    let text = r#"{"enable": true, "separateProcesses": false,
  "defaults": {"authKeyPath": "/run/k", "tags": ["tag:a"]},
  "services": {"web": {"toURL": "http://127.0.0.1:8080", "funnel": true}}}"#;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["inventory", "--from-nix-eval", "-", "--host", "h", "--format", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let inv = json(&out);
    let web = service(&inv, "web");
    assert_eq!(web["flavour"], "fork-all");
    assert_eq!(value(web, "effective", "tags"), &json!(["tag:a"]));
    assert_eq!(value(web, "effective", "stripPrefix"), &json!(false));
    let loc = &web["declared"]["funnel"]["known"]["source"]["location"];
    assert_eq!((loc["file"].as_str(), loc["line"].as_u64()), (Some("<stdin>"), Some(3)));
}

#[test]
fn nix_eval_json_reads_like_the_nix_files() {
    let homelab = need_homelab!();
    let file = format!("{homelab}/expected/storage.json");
    let out =
        migrate(&["inventory", "--from-nix-eval", &file, "--host", "storage", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let inv = json(&out);
    assert_eq!(inv["services"].as_array().unwrap().len(), 57);
    let fb = service(&inv, "filebrowser");
    assert_eq!(value(fb, "effective", "prefixes"), &json!(["tailnet:/", "funnel:/share/"]));
    assert!(
        fb["declared"]["prefixes"]["known"]["source"]["location"]["line"].as_u64().unwrap() > 1
    );
    assert_eq!(inv["hosts"][0]["flavour"], "fork");
}

#[test]
fn homelab_snapshots() {
    let homelab = need_homelab!();
    for host in ["storage", "cloud"] {
        let file = format!("{homelab}/hosts/{host}.nix");
        let table = migrate(&["inventory", &file]);
        insta::assert_snapshot!(format!("homelab_{host}_table"), stdout(&table));
        insta::assert_snapshot!(format!("homelab_{host}_diagnostics"), stderr(&table));
        let j = migrate(&["inventory", &file, "--format", "json"]);
        assert_eq!(j.status.code(), Some(0));
        insta::assert_snapshot!(format!("homelab_{host}_json"), stdout(&j));
    }
}

const FLEET: [&str; 5] =
    ["inventory", "examples/fleet/hosts/nas.nix", "examples/fleet/units", "--host", "edge"];

#[test]
fn example_fleet_snapshots() {
    let out = migrate(&FLEET);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    insta::assert_snapshot!("fleet_table", stdout(&out));
    insta::assert_snapshot!("fleet_diagnostics", stderr(&out));
}

#[test]
fn example_fleet_values_and_unknowns() {
    let mut args = FLEET.to_vec();
    args.extend(["--format", "json"]);
    let inv = json(&migrate(&args));
    // A value from another option of the files is followed.
    assert_eq!(
        value(service(&inv, "grafana"), "effective", "toURL"),
        &json!("http://127.0.0.1:3000")
    );
    // A value from a nixpkgs default is unknown, with the reason and where it arose.
    let jf = service(&inv, "jellyfin");
    let u = &jf["effective"]["toURL"]["unknown"];
    assert!(u["reason"].as_str().unwrap().contains("config.services.jellyfin.port"), "{u}");
    assert_eq!(u["location"]["file"], "examples/fleet/hosts/nas.nix");
    assert_eq!(u["location"]["line"], 17);
    // urlParts build toURL when it is not set.
    let st = service(&inv, "syncthing");
    assert_eq!(value(st, "effective", "toURL"), &json!("http://127.0.0.1:8384"));
    assert_eq!(st["effective"]["toURL"]["known"]["source"]["kind"], "derived");
    // defaults.* reach each service.
    assert_eq!(value(service(&inv, "miniflux"), "effective", "tags"), &json!(["tag:web"]));
    // The unit, the log line and the flavour each say what they are.
    let ntfy = service(&inv, "ntfy");
    assert_eq!(ntfy["flavour"], "upstream");
    assert_eq!(value(ntfy, "effective", "upstreamHeaders"), &json!({"X-Forwarded-Proto": "https"}));
    assert!(service(&inv, "home-assistant")["effective"]["stripPrefix"]["unknown"].is_object());
    assert_eq!(diags(&inv, "unit_cannot_start")[0]["service"], "paperless");
    assert_eq!(inv["schema"], "tailshift.inventory/v2");
}

#[test]
fn flavour_can_be_stated() {
    let out = migrate(&[
        "inventory",
        "examples/fleet/units/tsnsrv-ntfy.service",
        "--tsnsrv",
        "fork",
        "--format",
        "json",
    ]);
    let inv = json(&out);
    assert_eq!(inv["hosts"][0]["flavour"], "fork");
    assert_eq!(inv["hosts"][0]["flavour_basis"]["basis"], "stated");
    assert_eq!(
        value(service(&inv, "ntfy"), "effective", "authPath"),
        &json!("/api/authz/forward-auth")
    );
}

#[test]
fn cmdline_copies_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cmdline");
    std::fs::write(&f, b"/nix/store/x-tsnsrv/bin/tsnsrv\0-name=grafana\0-funnel\0-prefix=/api\0http://127.0.0.1:3000\0").unwrap();
    let out = migrate(&["inventory", f.to_str().unwrap(), "--host", "box", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let inv = json(&out);
    let g = service(&inv, "grafana");
    assert_eq!(value(g, "effective", "funnel"), &json!(true));
    assert_eq!(value(g, "effective", "prefixes"), &json!(["/api"]));
    assert_eq!(value(g, "effective", "toURL"), &json!("http://127.0.0.1:3000"));
    assert_eq!(inv["inputs"][0]["kind"], "cmdline");
}

#[test]
fn fork_service_flags_give_one_service_each() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("start");
    std::fs::write(
        &f,
        "#!/bin/sh\nexec /usr/bin/tsnsrv -prometheusAddr=:9199 -service name=a,upstream=http://127.0.0.1:1,funnel=yes,tag=tag:x -service 'name=b,upstream=http://127.0.0.1:2,prefix=/api'\n",
    )
    .unwrap();
    let out = migrate(&["inventory", f.to_str().unwrap(), "--host", "box", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let inv = json(&out);
    assert_eq!(inv["hosts"][0]["flavour"], "fork");
    let a = service(&inv, "a");
    assert_eq!(value(a, "effective", "funnel"), &json!(true));
    assert_eq!(value(a, "effective", "tags"), &json!(["tag:x"]));
    // The -service form's own defaults: Host kept, prefixes stripped.
    assert_eq!(value(a, "effective", "recommendedProxyHeaders"), &json!(true));
    let b = service(&inv, "b");
    assert_eq!(value(b, "effective", "prefixes"), &json!(["/api"]));
    assert_eq!(value(b, "effective", "toURL"), &json!("http://127.0.0.1:2"));
}

#[test]
fn a_directory_is_walked_and_imported_files_are_not_roots() {
    let out = migrate(&["inventory", "examples/fleet", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let inv = json(&out);
    let names: Vec<&str> =
        inv["services"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "home-assistant",
            "ntfy",
            "audiobookshelf",
            "grafana",
            "jellyfin",
            "miniflux",
            "paperless",
            "syncthing",
            "vaultwarden"
        ]
    );
    // services.nix is imported by hosts/nas.nix: read once, through the host.
    assert!(
        !inv["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["path"] == "examples/fleet/services.nix")
    );
    assert!(diags(&inv, "duplicate_service").is_empty());
}

#[test]
fn a_reader_that_goes_away_is_not_a_panic() {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["inventory", "examples/fleet", "--format", "json"])
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then the pipe closes
    let out = child.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
