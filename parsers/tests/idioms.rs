//! One test per idiom real configurations use, each read through `load` as `migrate inventory`
//! reads it (the differential corpus in the binary's tests checks the same idioms against the
//! real module system).

use serde_json::json;
use std::path::{Path, PathBuf};
use tailshift_parsers::{
    DiagnosticCode, Inventory, LoadOptions, Opt, Presence, Service, Sourced, load,
};

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

fn read(paths: &[PathBuf]) -> Inventory {
    load(paths, &LoadOptions::default()).unwrap()
}

fn svc<'a>(inv: &'a Inventory, name: &str) -> &'a Service {
    inv.services.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!("no {name}: {:?}", inv.services.iter().map(|s| &s.name).collect::<Vec<_>>())
    })
}

fn known<'a>(s: &'a Service, opt: &str) -> &'a serde_json::Value {
    match s.declared.get_named(opt) {
        Some(Sourced::Known { value, .. }) => value,
        other => panic!("{}.{opt}: {other:?}", s.name),
    }
}

const FLAKE_HEAD: &str = r#"inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";"#;

#[test]
fn a_default_declared_in_the_same_file_is_known() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "host.nix",
        r#"{ config, lib, ... }: {
  options.homelab.jellyfin.port = lib.mkOption { type = lib.types.port; default = 8096; };
  config.networking.hostName = "box";
  config.services.tsnsrv.services.jellyfin.toURL =
    "http://127.0.0.1:${toString config.homelab.jellyfin.port}";
}"#,
    );
    let inv = read(&[f]);
    assert_eq!(known(svc(&inv, "jellyfin"), "toURL"), &json!("http://127.0.0.1:8096"));
    assert!(inv.complete);
}

#[test]
fn submodule_options_default_from_their_name_and_each_other() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "host.nix",
        r#"{ config, lib, ... }: with lib; {
  options.apps = mkOption {
    type = types.attrsOf (types.submodule ({ name, config, ... }: {
      options.port = mkOption { type = types.port; };
      options.hostname = mkOption { type = types.str; default = "${name}-lab"; };
      options.url = mkOption { type = types.str; default = "http://localhost:${toString config.port}"; };
    }));
    default = { };
  };
  config.networking.hostName = "box";
  config.apps.grafana.port = 3000;
  config.services.tsnsrv.services = mapAttrs' (n: a: nameValuePair a.hostname { toURL = a.url; }) config.apps;
}"#,
    );
    let inv = read(&[f]);
    assert_eq!(known(svc(&inv, "grafana-lab"), "toURL"), &json!("http://localhost:3000"));
}

#[test]
fn options_probe_is_a_condition_and_the_rest_of_an_update_is_read() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "host.nix",
        r#"{ lib, options, ... }: {
  networking.hostName = "box";
  services.tsnsrv.services = lib.optionalAttrs (options ? disko) { a.toURL = "http://a:1"; }
    // { z.toURL = "http://z:1"; };
}"#,
    );
    let inv = read(&[f]);
    assert!(inv.complete);
    assert_eq!(known(svc(&inv, "z"), "toURL"), &json!("http://z:1"));
    assert_eq!(svc(&inv, "z").presence, Presence::Certain);
    match &svc(&inv, "a").presence {
        Presence::Conditional { condition, .. } => assert_eq!(condition, "options ? disko"),
        p => panic!("{p:?}"),
    }
    assert_eq!(known(svc(&inv, "a"), "toURL"), &json!("http://a:1"));
}

#[test]
fn an_unknowable_definition_makes_the_inventory_incomplete_and_keeps_the_known_part() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "host.nix",
        r#"{ inputs, ... }: {
  networking.hostName = "box";
  services.tsnsrv.services = import "${inputs.private}/x.nix" { } // { z.toURL = "http://z:1"; };
}"#,
    );
    let inv = read(&[f]);
    assert!(!inv.complete);
    assert!(inv.diagnostics.iter().any(|d| d.code == DiagnosticCode::ServicesUnreadable));
    assert_eq!(known(svc(&inv, "z"), "toURL"), &json!("http://z:1"));
}

#[test]
fn secrets_with_to_string_are_strings() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "host.nix",
        r#"{ config, ... }:
let secret = name: { path = "/run/secrets/${name}"; __toString = self: self.path; };
in {
  networking.hostName = "box";
  _module.args.ts = secret "tsnsrv";
  services.tsnsrv.defaults.authKeyPath = "${secret "tsnsrv"}";
  services.tsnsrv.services.a = { toURL = "http://a:1"; };
}"#,
    );
    let inv = read(&[f]);
    assert_eq!(
        svc(&inv, "a").effective.get(Opt::AuthKeyPath).and_then(|v| v.known()),
        Some(&json!("/run/secrets/tsnsrv"))
    );
}

#[test]
fn module_args_reach_modules() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "apps.nix",
        "{ site, ... }: { services.tsnsrv.services.\"${site}-nas\".toURL = \"http://nas:5000\"; }\n",
    );
    let f = write(
        d.path(),
        "host.nix",
        "{ ... }: { imports = [ ./apps.nix ]; networking.hostName = \"box\"; _module.args.site = \"home\"; }\n",
    );
    let inv = read(&[f]);
    assert_eq!(known(svc(&inv, "home-nas"), "toURL"), &json!("http://nas:5000"));
}

#[test]
fn a_flake_binds_self_and_special_args_and_names_hosts_by_attribute() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "flake.nix",
        &format!(
            r#"{{ {FLAKE_HEAD}
  outputs = {{ self, nixpkgs }}@inputs: {{
    nixosModules.gateway = import ./modules/gateway.nix;
    nixosConfigurations = nixpkgs.lib.genAttrs [ "alpha" ] (host: nixpkgs.lib.nixosSystem {{
      specialArgs = {{ inherit self inputs; }};
      modules = [ "${{self}}/hosts/${{host}}.nix" self.nixosModules.gateway ];
    }});
  }};
}}"#
        ),
    );
    write(
        d.path(),
        "hosts/alpha.nix",
        "{ self, ... }: { imports = [ (self + \"/ports.nix\") ]; }\n",
    );
    write(
        d.path(),
        "ports.nix",
        "{ lib, ... }: { options.ports = lib.mkOption { default = builtins.fromTOML (builtins.readFile ./ports.toml); }; }\n",
    );
    write(d.path(), "ports.toml", "grafana = 3000\n");
    write(
        d.path(),
        "modules/gateway.nix",
        "{ config, ... }: { services.tsnsrv.services.grafana.toURL = \"http://127.0.0.1:${toString config.ports.grafana}\"; }\n",
    );
    let inv = read(&[d.path().to_path_buf()]);
    let g = svc(&inv, "grafana");
    assert_eq!(known(g, "toURL"), &json!("http://127.0.0.1:3000"));
    assert_eq!(g.host.known().map(String::as_str), Some("alpha"));
    assert_eq!(inv.hosts[0].flake_attr.as_deref(), Some("alpha"));
}

#[test]
fn the_flake_parts_wrapper_is_read() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "flake.nix",
        r#"{
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
  inputs.flake-parts.url = "github:hercules-ci/flake-parts";
  outputs = inputs@{ flake-parts, nixpkgs, ... }:
    flake-parts.lib.mkFlake { inherit inputs; } {
      systems = [ "x86_64-linux" ];
      imports = [ ./parts/hosts.nix ];
      flake.nixosModules.media = { config, ... }: {
        services.tsnsrv.services.jellyfin.toURL = "http://127.0.0.1:8096";
      };
    };
}"#,
    );
    write(
        d.path(),
        "parts/hosts.nix",
        r#"{ inputs, self, ... }: {
  flake.nixosConfigurations.media = inputs.nixpkgs.lib.nixosSystem {
    modules = [ self.nixosModules.media { networking.hostName = "mediabox"; } ];
  };
}"#,
    );
    let inv = read(&[d.path().to_path_buf()]);
    let j = svc(&inv, "jellyfin");
    assert_eq!(known(j, "toURL"), &json!("http://127.0.0.1:8096"));
    assert_eq!(j.host.known().map(String::as_str), Some("mediabox"));
}

#[test]
fn an_opaque_input_module_is_a_warning_and_not_an_incomplete_inventory() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "flake.nix",
        &format!(
            r#"{{ {FLAKE_HEAD}
  inputs.sops-nix.url = "github:Mic92/sops-nix";
  outputs = {{ self, nixpkgs, sops-nix }}: {{
    nixosConfigurations.box = nixpkgs.lib.nixosSystem {{
      modules = [ sops-nix.nixosModules.sops ./host.nix ];
    }};
  }};
}}"#
        ),
    );
    write(
        d.path(),
        "host.nix",
        "{ ... }: { services.tsnsrv.services.a.toURL = \"http://a:1\"; }\n",
    );
    let inv = read(&[d.path().to_path_buf()]);
    assert!(inv.complete);
    let w: Vec<_> =
        inv.diagnostics.iter().filter(|d| d.code == DiagnosticCode::UnknownModule).collect();
    assert_eq!(w.len(), 1, "{:?}", inv.diagnostics);
    assert!(w[0].message.contains("sops-nix") && w[0].message.contains("may declare services"));
}

#[test]
fn disabled_modules_are_not_read() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "legacy.nix",
        "{ ... }: { services.tsnsrv.services.old.toURL = \"http://old:1\"; }\n",
    );
    let f = write(
        d.path(),
        "host.nix",
        "{ ... }: { imports = [ ./legacy.nix ]; disabledModules = [ ./legacy.nix ]; networking.hostName = \"box\"; services.tsnsrv.services.new.toURL = \"http://new:1\"; }\n",
    );
    let inv = read(&[f]);
    let names: Vec<&str> = inv.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["new"]);
}

#[test]
fn a_missing_module_makes_the_inventory_incomplete() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "host.nix",
        "{ ... }: { imports = [ ./gone.nix ]; networking.hostName = \"box\"; services.tsnsrv.services.a.toURL = \"http://a:1\"; }\n",
    );
    let inv = read(&[f]);
    assert!(!inv.complete);
    assert!(inv.diagnostics.iter().any(|d| d.code == DiagnosticCode::ImportNotFound
        && d.severity == tailshift_parsers::Severity::Error));
    assert_eq!(known(svc(&inv, "a"), "toURL"), &json!("http://a:1"));
}

#[test]
fn snowfall_lib_hosts_come_from_systems_arch_host() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "flake.nix",
        r#"{
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
  inputs.snowfall-lib.url = "github:snowfallorg/lib";
  outputs = inputs: inputs.snowfall-lib.mkFlake { inherit inputs; src = ./.; };
}"#,
    );
    write(
        d.path(),
        "systems/x86_64-linux/nas/default.nix",
        "{ lib, host, ... }: { networking.hostName = host; services.tsnsrv.services.grafana.toURL = \"http://127.0.0.1:3000\"; }\n",
    );
    write(
        d.path(),
        "modules/nixos/tailnet/default.nix",
        "{ config, ... }: { services.tsnsrv.defaults.tags = [ \"tag:lab\" ]; }\n",
    );
    let inv = read(&[d.path().to_path_buf()]);
    let g = svc(&inv, "grafana");
    assert_eq!(g.host.known().map(String::as_str), Some("nas"));
    assert_eq!(g.effective.get(Opt::Tags).and_then(|v| v.known()), Some(&json!(["tag:lab"])));
}

#[test]
fn flake_utils_outputs_beside_hosts_are_read() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "flake.nix",
        r#"{
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
  inputs.flake-utils.url = "github:numtide/flake-utils";
  outputs = { self, nixpkgs, flake-utils }:
    flake-utils.lib.eachDefaultSystem (system: { devShells.default = { }; })
    // {
      nixosConfigurations.box = nixpkgs.lib.nixosSystem {
        system = flake-utils.lib.system.x86_64-linux;
        modules = [ { services.tsnsrv.services.a.toURL = "http://a:1"; } ];
      };
    };
}"#,
    );
    let inv = read(&[d.path().to_path_buf()]);
    assert_eq!(known(svc(&inv, "a"), "toURL"), &json!("http://a:1"));
    assert!(inv.complete);
}
