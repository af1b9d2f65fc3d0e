//! No service lost in silence: definitions whose service names cannot be known make the
//! inventory incomplete (exit 1, `services_unreadable`), the known part is still read,
//! conditional services carry their condition, and `migrate plan` acts on both.

use crate::util::*;
use serde_json::Value;
use std::path::Path;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn inventory(dir: &Path, args: &[&str]) -> (Option<i32>, Value, String) {
    let mut all = vec!["inventory"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let out = migrate_in(dir, &all);
    (out.status.code(), json(&out), stderr(&out))
}

/// A host whose services come partly from what cannot be read (an input's file), partly from
/// an unknowable condition, partly certain.
fn host(dir: &Path) {
    write(
        dir,
        "host.nix",
        r#"{ config, lib, inputs, options, ... }:
{
  imports = [ ./apps.nix ];
  networking.hostName = "box";
  services.tsnsrv.defaults.authKeyPath = "/run/secrets/ts";
  services.tsnsrv.services =
    lib.optionalAttrs (options ? disko) { disk.toURL = "http://127.0.0.1:1"; }
    // { z.toURL = "http://127.0.0.1:2"; };
}
"#,
    );
    write(
        dir,
        "apps.nix",
        r#"{ config, lib, inputs, ... }:
lib.mkMerge [
  (lib.mkIf config.services.jellyfin.enable {
    services.tsnsrv.services.jellyfin = { toURL = "http://127.0.0.1:8096"; funnel = true; };
  })
  { services.tsnsrv.services = import "${inputs.private}/services.nix" { }; }
  { services.tsnsrv.services.grafana.toURL = "http://127.0.0.1:3000"; }
]
"#,
    );
}

#[test]
fn unknowable_names_make_the_inventory_incomplete_and_the_rest_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path());
    let (code, inv, err) = inventory(dir.path(), &["host.nix"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(inv["complete"], false);
    assert_eq!(inv["hosts"][0]["complete"], false);
    let unreadable = diags(&inv, "services_unreadable");
    assert_eq!(unreadable.len(), 1, "{unreadable:#?}");
    assert_eq!(unreadable[0]["severity"], "error");
    assert_eq!(unreadable[0]["location"]["file"], "apps.nix");
    assert_eq!(unreadable[0]["location"]["line"], 6);
    assert!(unreadable[0]["message"].as_str().unwrap().contains("inputs.private"));
    let why = &inv["hosts"][0]["incomplete"][0];
    assert_eq!(why["location"]["line"], 6);
    // Everything whose name is known is there, with its values.
    assert_eq!(service_names(&inv), ["disk", "grafana", "jellyfin", "z"]);
    assert_eq!(value(service(&inv, "z"), "declared", "toURL"), "http://127.0.0.1:2");
    assert_eq!(value(service(&inv, "grafana"), "declared", "toURL"), "http://127.0.0.1:3000");
}

#[test]
fn conditional_services_are_listed_with_their_values_and_condition() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path());
    let (_, inv, _) = inventory(dir.path(), &["host.nix"]);
    let jellyfin = service(&inv, "jellyfin");
    let c = &jellyfin["presence"]["conditional"];
    assert_eq!(c["condition"], "config.services.jellyfin.enable");
    assert_eq!(c["location"]["file"], "apps.nix");
    assert_eq!(value(jellyfin, "declared", "toURL"), "http://127.0.0.1:8096");
    assert_eq!(value(jellyfin, "declared", "funnel"), true);
    assert_eq!(service(&inv, "disk")["presence"]["conditional"]["condition"], "options ? disko");
    // Certain services carry no presence at all (as in v1).
    assert!(service(&inv, "z").get("presence").is_none());
    assert!(service(&inv, "grafana").get("presence").is_none());
}

#[test]
fn plan_refuses_an_incomplete_inventory_unless_allowed_and_then_records_it() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path());
    write(dir.path(), "migrate.toml", "[plan]\ntailnet = \"tailnet.test\"\n");
    let out = migrate_in(dir.path(), &["plan", "host.nix"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("inventory is incomplete") && err.contains("--allow-incomplete"), "{err}");
    assert!(err.contains("apps.nix:6"), "{err}");
    assert!(!dir.path().join("plan.json").exists(), "nothing written");

    let out = migrate_in(dir.path(), &["plan", "host.nix", "--allow-incomplete"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("plan.json")).unwrap())
            .unwrap();
    let missing = plan["may_miss_services"].as_array().unwrap();
    assert_eq!(missing.len(), 1);
    assert!(missing[0].as_str().unwrap().starts_with("apps.nix:6:"), "{missing:?}");
    assert!(stdout(&out).contains("this plan may miss services"), "{}", stdout(&out));
    let status = |id: &str| {
        plan["services"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap()["status"]
            .clone()
    };
    assert_eq!(status("box/jellyfin"), "presence-unknown");
    assert_eq!(status("box/disk"), "presence-unknown");
    assert_eq!(status("box/z"), "planned");
}

#[test]
fn plan_present_states_whether_a_conditional_service_exists() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path());
    write(
        dir.path(),
        "migrate.toml",
        "[plan]\ntailnet = \"tailnet.test\"\nstrategy = \"keep-node\"\n[plan.present]\n\"box/jellyfin\" = true\ndisk = false\n",
    );
    let out =
        migrate_in(dir.path(), &["plan", "host.nix", "--allow-incomplete", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = json(&out);
    let entry = |id: &str| {
        plan["services"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap().clone()
    };
    assert_eq!(entry("box/jellyfin")["status"], "planned");
    assert!(entry("box/jellyfin")["reasons"].to_string().contains("stated present"));
    assert_eq!(entry("box/disk")["status"], "excluded");
    // A name [plan.present] does not know is refused like any policy key.
    write(
        dir.path(),
        "migrate.toml",
        "[plan]\ntailnet = \"tailnet.test\"\n[plan.present]\nnope = true\n",
    );
    let out = migrate_in(dir.path(), &["plan", "host.nix", "--allow-incomplete"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
}

#[test]
fn plan_check_rereads_inputs_as_the_plan_did() {
    // A command line only --input-kind says how to read: `plan --check` must read it the same
    // way (without the flag, the file cannot be read at all).
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "dump.txt",
        "/nix/store/x-tsnsrv/bin/tsnsrv -name grafana -ephemeral http://127.0.0.1:3000\n",
    );
    write(dir.path(), "migrate.toml", "[plan]\ntailnet = \"tailnet.test\"\n");
    let out = migrate_in(
        dir.path(),
        &["plan", "dump.txt", "--input-kind", "script", "--host", "box", "--accept-unknown"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("plan.json")).unwrap())
            .unwrap();
    assert_eq!(plan["input_options"]["input_kind"], "script");
    let out = migrate_in(dir.path(), &["plan", "--check", "plan.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_flake_sees_only_git_tracked_files_as_nix_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "flake.nix",
        r#"{
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
  outputs = { self, nixpkgs }: {
    nixosConfigurations.box = nixpkgs.lib.nixosSystem {
      modules = [ ./host.nix "${self}/new.nix" ];
    };
  };
}
"#,
    );
    write(
        d,
        "host.nix",
        "{ ... }: { services.tsnsrv.services.a.toURL = \"http://127.0.0.1:1\"; }\n",
    );
    write(
        d,
        "new.nix",
        "{ ... }: { services.tsnsrv.services.b.toURL = \"http://127.0.0.1:2\"; }\n",
    );
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git").args(args).current_dir(d).status().unwrap();
        assert!(ok.success());
    };
    git(&["init", "-q", "."]);
    git(&["add", "flake.nix", "host.nix"]);
    let (_, inv, err) = inventory(d, &["."]);
    assert_eq!(service_names(&inv), ["a"], "{err}");
    let w = diags(&inv, "untracked_file");
    assert_eq!(w.len(), 1, "{inv:#}");
    assert!(w[0]["message"].as_str().unwrap().contains("new.nix"));
    assert_eq!(w[0]["severity"], "error");
    git(&["add", "new.nix"]);
    let (code, inv, err) = inventory(d, &["."]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(service_names(&inv), ["a", "b"]);
    assert_eq!(service(&inv, "a")["host"]["known"]["value"], "box");
}

#[test]
fn plan_warns_of_open_ended_funnel_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "host.nix",
        "{ ... }: { networking.hostName = \"box\"; services.tsnsrv.defaults.authKeyPath = \"/k\"; services.tsnsrv.services.share = { toURL = \"http://127.0.0.1:1\"; funnel = true; prefixes = [ \"funnel:/pub\" \"funnel:/ok/\" \"tailnet:/\" ]; }; }\n",
    );
    write(
        dir.path(),
        "migrate.toml",
        "[plan]\ntailnet = \"tailnet.test\"\nstrategy = \"keep-node\"\n",
    );
    let out = migrate_in(dir.path(), &["plan", "host.nix", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = json(&out);
    let open: Vec<String> = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "funnel_prefix_open_ended")
        .map(|f| f["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(open[0].contains("funnel:/pub"), "{open:?}");
}

#[test]
fn access_rules_and_timeouts_from_the_policy_reach_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "host.nix",
        "{ ... }: { networking.hostName = \"box\"; services.tsnsrv.defaults.authKeyPath = \"/k\"; services.tsnsrv.services.grafana.toURL = \"http://127.0.0.1:3000\"; services.tsnsrv.services.api.toURL = \"http://127.0.0.1:4000\"; }\n",
    );
    write(
        dir.path(),
        "migrate.toml",
        "[plan]\ntailnet = \"tailnet.test\"\n[plan.access]\ngrafana = [ { kind = \"user\", value = \"alice@example.com\" }, { kind = \"tag\", value = \"tag:admin\" } ]\n[plan.timeouts]\n\"box/api\" = { response_header_ms = 30000 }\n",
    );
    let out = migrate_in(dir.path(), &["plan", "host.nix", "--format", "routes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let routes = json(&out);
    let route = |svc: &str| {
        routes.as_array().unwrap().iter().find(|r| r["service"] == svc).unwrap().clone()
    };
    assert_eq!(
        route("box/grafana")["access"],
        serde_json::json!([{"kind": "user", "value": "alice@example.com"}, {"kind": "tag", "value": "tag:admin"}])
    );
    assert_eq!(route("box/api")["timeouts"]["response_header_ms"], 30000);
    // Converted from tsnsrv, which had none: no response-header timeout by default.
    assert!(route("box/grafana")["timeouts"].get("response_header_ms").is_none());
    // A rule of an unknown kind is refused with the policy file named.
    write(
        dir.path(),
        "migrate.toml",
        "[plan]\ntailnet = \"tailnet.test\"\n[plan.access]\ngrafana = [ { kind = \"role\", value = \"x\" } ]\n",
    );
    let out = migrate_in(dir.path(), &["plan", "host.nix"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("migrate.toml"), "{}", stderr(&out));
}

/// Secrets at rest (issue 15): a plan holds upstream header values, which can be credentials,
/// so the plan file is written 0600 and no human rendering of it prints them.
#[test]
fn plans_keep_upstream_header_values_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "host.nix",
        "{ ... }: { networking.hostName = \"box\"; services.tsnsrv.defaults.authKeyPath = \"/k\"; services.tsnsrv.services.api = { toURL = \"http://127.0.0.1:4000\"; funnel = true; upstreamHeaders = { Authorization = \"Bearer s3cret-token\"; }; }; }\n",
    );
    write(dir.path(), "migrate.toml", "[plan]\ntailnet = \"tailnet.test\"\n");
    for format in ["table", "markdown", "dot", "mermaid"] {
        let out = migrate_in(dir.path(), &["plan", "host.nix", "--format", format]);
        assert_eq!(out.status.code(), Some(0), "{format}: {}", stderr(&out));
        let shown = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!shown.contains("s3cret"), "{format} prints the header value:\n{shown}");
    }
    // The plan file carries it (apply installs it), readable by its owner only.
    let plan = dir.path().join("plan.json");
    assert!(std::fs::read_to_string(&plan).unwrap().contains("s3cret-token"));
    assert_eq!(std::fs::metadata(&plan).unwrap().permissions().mode() & 0o777, 0o600);
}
