//! A whole configuration repository given as one directory, as users run `migrate inventory .`:
//! hosts, shared modules, helper libraries, overlays, packages, secrets, Go tests, translations,
//! a policy file, JSON data, tailshift's own plan and state, and symlinks. Every service is read
//! exactly once; every other file is skipped with an `info` naming it and why, never an error.

use crate::util::*;
use serde_json::Value;
use std::path::Path;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Writes the repository under `dir/repo` (the plan is made by the real `migrate plan`).
/// A repository shaped like a real one; without its `flake.nix` (a plain tree, walked), or with
/// it (read as the flake: its hosts only).
fn repo(dir: &Path) {
    repo_with(dir, false)
}

fn repo_with(dir: &Path, flake: bool) {
    let r = dir.join("repo");
    if flake {
        write(
            &r,
            "flake.nix",
            r#"{
  description = "my machines";
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
  outputs = { self, nixpkgs }: {
    nixosConfigurations = nixpkgs.lib.genAttrs [ "alpha" "beta" ] (host:
      nixpkgs.lib.nixosSystem { modules = [ ./hosts/${host} ]; });
  };
}
"#,
        );
    }
    write(
        &r,
        "hosts/alpha/default.nix",
        r#"{ config, lib, pkgs, ... }:
let
  h = import ../../lib/helpers.nix { inherit lib; };
in
{
  imports = [ ../../modules/tsnsrv-common.nix ./hardware.nix ];
  networking.hostName = "alpha";
  services.tsnsrv.services.grafana = h.mkSvc 3000;
}
"#,
    );
    write(
        &r,
        "hosts/alpha/hardware.nix",
        r#"{ config, lib, modulesPath, ... }:
{
  boot.loader.grub.enable = true;
  fileSystems."/" = { device = "/dev/sda1"; fsType = "ext4"; };
}
"#,
    );
    write(
        &r,
        "hosts/beta/default.nix",
        r#"{ lib, ... }:
{
  imports = [ ../../modules/tsnsrv-common.nix ];
  networking.hostName = "beta";
  services.tsnsrv.services.jellyfin = {
    toURL = "http://127.0.0.1:8096";
    funnel = true;
  };
}
"#,
    );
    write(
        &r,
        "modules/tsnsrv-common.nix",
        r#"{ config, lib, ... }:
{
  services.tsnsrv.enable = true;
  services.tsnsrv.defaults.tags = [ "tag:web" ];
}
"#,
    );
    // A module no host imports, about something else: read, and declares nothing.
    write(
        &r,
        "modules/desktop.nix",
        "{ config, pkgs, ... }:\n{\n  services.xserver.enable = true;\n  environment.systemPackages = [ pkgs.firefox ];\n}\n",
    );
    write(
        &r,
        "lib/helpers.nix",
        "{ lib }:\n{\n  mkSvc = port: { toURL = \"http://127.0.0.1:${toString port}\"; };\n}\n",
    );
    write(&r, "overlays/default.nix", "final: prev: { }\n");
    write(
        &r,
        "pkgs/foo/default.nix",
        r#"{ stdenv, fetchurl }:
stdenv.mkDerivation {
  pname = "foo";
  version = "1.0";
  src = fetchurl { url = "https://example.org/foo-1.0.tar.gz"; sha256 = "0000"; };
}
"#,
    );
    write(
        &r,
        "secrets/secrets.yaml",
        r#"services:
    - name: ENC[AES256_GCM,data:Zm9v,iv:YmFy,tag:YmF6,type:str]
      toURL: ENC[AES256_GCM,data:aHR0cA==,iv:YmFy,tag:YmF6,type:str]
sops:
    age:
        - recipient: age1qqqq
    lastmodified: "2026-01-01T00:00:00Z"
    version: 3.9.0
"#,
    );
    write(
        &r,
        "tools/serve_test.go",
        "package main\n\nimport \"testing\"\n\nfunc TestServing(t *testing.T) {\n\t_ = \"INFO Serving name=web destURL=http://127.0.0.1:1 funnel=false\" // tsnsrv\n}\n",
    );
    write(&r, "po/de.po", "msgid \"Serving name=%s\"\nmsgstr \"Bediene name=%s\"\n");
    write(
        &r,
        "policy.hujson",
        "{\n  // tsnsrv nodes\n  \"tagOwners\": { \"tag:web\": [\"autogroup:admin\"] },\n}\n",
    );
    write(&r, "data/ports.json", r#"{"grafana": 3000, "services": ["grafana"]}"#);
    write(&r, "data/compose.json", r#"{"services": {"web": {"image": "nginx"}}}"#);
    write(
        &r,
        "state.json",
        r#"{"schema": "tailshift.state/v1", "lineage": "00", "serial": 1, "services": {"beta/jellyfin": {"toURL": "http://127.0.0.1:8096"}}}"#,
    );
    write(&r, "README.md", "# my machines (tsnsrv on alpha and beta)\n");
    // Inputs other than Nix, each recognised by its content.
    write(
        &r,
        "edge/tsnsrv-all.yaml",
        "services:\n  - name: ntfy\n    upstream: http://127.0.0.1:2586\n",
    );
    write(
        &r,
        "edge/journal.txt",
        "2026/11/02 09:14:03 INFO Serving name=home-assistant listenAddr=:443 tags=[tag:web] prefixes=[] destURL=http://127.0.0.1:8123 plaintext=false funnel=false funnelOnly=false\n",
    );
    write(
        &r,
        "edge/eval.json",
        r#"{"services": {"miniflux": {"toURL": "http://127.0.0.1:8070"}}}"#,
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink("../nowhere.nix", r.join("hosts/gamma.nix")).unwrap();
        // The host directories again, and one host file again, through symlinks.
        symlink("hosts", r.join("machines")).unwrap();
        symlink("hosts/beta/default.nix", r.join("current.nix")).unwrap();
        // A loop.
        symlink("..", r.join("modules/up")).unwrap();
        // A named pipe is never opened (reading it would block).
        let _ = std::process::Command::new("mkfifo").arg(r.join("edge/pipe")).status();
    }
    // tailshift's own plan, made from the repository by `migrate plan`.
    write(dir, "migrate.toml", "[plan]\ntailnet = \"example-tailnet.ts.net\"\n");
    let out = migrate_in(dir, &["plan", "repo/hosts/beta/default.nix", "--out", "repo/plan.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(dir.join("repo/plan.json").is_file());
}

fn inventory(dir: &Path, args: &[&str]) -> (Option<i32>, Value, String) {
    let mut a = vec!["inventory"];
    a.extend_from_slice(args);
    a.extend(["--format", "json"]);
    let out = migrate_in(dir, &a);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    (out.status.code(), json(&out), stderr(&out))
}

fn messages<'a>(inv: &'a Value, code: &str) -> Vec<&'a str> {
    diags(inv, code).iter().map(|d| d["message"].as_str().unwrap()).collect()
}

#[test]
fn a_configuration_repository_reads_each_service_once_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    repo(dir.path());
    let (code, inv, err) = inventory(dir.path(), &["repo"]);
    let errors = errors(&inv);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(code, Some(0), "{err}");

    let names = service_names(&inv);
    assert_eq!(names, ["grafana", "home-assistant", "jellyfin", "miniflux", "ntfy"]);
    assert_eq!(service(&inv, "grafana")["host"]["known"]["value"], "alpha");
    assert_eq!(service(&inv, "jellyfin")["host"]["known"]["value"], "beta");
    // Read by its real path, so its imports resolve.
    assert_eq!(service(&inv, "jellyfin")["location"]["file"], "repo/hosts/beta/default.nix");
    assert!(diags(&inv, "import_not_found").is_empty(), "{:#?}", diags(&inv, "import_not_found"));

    let inputs: Vec<&str> =
        inv["inputs"].as_array().unwrap().iter().map(|i| i["path"].as_str().unwrap()).collect();
    for read in [
        "repo/hosts/alpha/default.nix",
        "repo/hosts/beta/default.nix",
        "repo/edge/tsnsrv-all.yaml",
        "repo/edge/journal.txt",
        "repo/edge/eval.json",
    ] {
        assert_eq!(inputs.iter().filter(|i| **i == read).count(), 1, "{read} in {inputs:?}");
    }
    // Imported by the hosts: not roots.
    assert!(!inputs.contains(&"repo/modules/tsnsrv-common.nix"), "{inputs:?}");
    assert!(!inputs.contains(&"repo/hosts/alpha/hardware.nix"), "{inputs:?}");

    let skipped = messages(&inv, "skipped_input");
    for (file, why) in [
        ("repo/lib/helpers.nix", "helper library"),
        ("repo/overlays/default.nix", "final: prev"),
        ("repo/pkgs/foo/default.nix", "package expression"),
        ("repo/secrets/secrets.yaml", "sops"),
        ("repo/tools/serve_test.go", "Go source"),
        ("repo/po/de.po", "gettext"),
        ("repo/policy.hujson", "policy"),
        ("repo/data/ports.json", "nix eval"),
        ("repo/data/compose.json", "nix eval"),
        ("repo/plan.json", "tailshift plan"),
        ("repo/state.json", "tailshift.state/v1"),
        ("repo/README.md", "not a tsnsrv input"),
    ] {
        let m = skipped
            .iter()
            .find(|m| m.starts_with(&format!("{file} ")))
            .unwrap_or_else(|| panic!("no info for {file}: {skipped:#?}"));
        assert!(m.contains(why), "{m}");
        assert!(!inputs.contains(&file), "{file} was read");
    }
    for d in diags(&inv, "skipped_input") {
        assert_eq!(d["severity"], "info", "{d}");
    }

    #[cfg(unix)]
    {
        let dangling = messages(&inv, "dangling_symlink");
        assert_eq!(dangling.len(), 1, "{dangling:?}");
        assert!(dangling[0].contains("repo/hosts/gamma.nix"), "{dangling:?}");
        assert_eq!(diags(&inv, "dangling_symlink")[0]["severity"], "warning");
        let again = messages(&inv, "already_read");
        for link in ["repo/machines ", "repo/current.nix ", "repo/modules/up "] {
            assert!(again.iter().any(|m| m.starts_with(link)), "{link}: {again:#?}");
        }
    }
    assert!(diags(&inv, "duplicate_service").is_empty());
}

#[test]
fn the_table_names_each_skipped_file_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    repo(dir.path());
    let out = migrate_in(dir.path(), &["inventory", "repo"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("info[skipped_input]: repo/lib/helpers.nix is not read"), "{err}");
    assert!(!err.contains("a function where a set was expected"), "{err}");
    assert!(err.contains("0 error(s)"), "{err}");
}

#[test]
fn nothing_to_read_exits_1_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let out = migrate_in(d, &["inventory", "no-such-dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no-such-dir does not exist"), "{}", stderr(&out));

    std::fs::create_dir_all(d.join("empty/.git")).unwrap();
    std::fs::write(d.join("empty/.git/HEAD"), "ref: refs/heads/main\n").unwrap();
    let out = migrate_in(d, &["inventory", "empty"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("empty is an empty directory"), "{}", stderr(&out));

    write(d, "plain/lib/helpers.nix", "{ lib }: { mkSvc = x: x; }\n");
    write(d, "plain/modules/desktop.nix", "{ config, ... }: { services.xserver.enable = true; }\n");
    write(d, "plain/README.md", "# notes\n");
    let (code, inv, _) = inventory(d, &["plain"]);
    assert_eq!(code, Some(1));
    let no = diags(&inv, "no_tsnsrv");
    assert_eq!(no.len(), 1, "{inv:#}");
    assert!(no[0]["message"].as_str().unwrap().contains("in plain"), "{}", no[0]);
    let notes = no[0]["notes"].to_string();
    assert!(notes.contains("3 file(s) looked at, 1 NixOS module(s)"), "{notes}");
    // The skipped files are still named, so the user sees why nothing was found.
    assert_eq!(diags(&inv, "skipped_input").len(), 2, "{inv:#}");
}

#[test]
fn explicit_paths_keep_their_behaviour() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.hujson", "{ \"acls\": [] }\n");
    let out = migrate_in(dir.path(), &["inventory", "policy.hujson"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot tell what kind of input"), "{}", stderr(&out));
}

#[cfg(unix)]
#[test]
fn an_unreadable_file_is_a_warning_and_the_rest_is_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "tree/host.nix",
        "{ ... }: { networking.hostName = \"h\"; services.tsnsrv.services.a.toURL = \"http://127.0.0.1:1\"; }\n",
    );
    write(d, "tree/locked.nix", "{ ... }: { }\n");
    let locked = d.join("tree/locked.nix");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads any file: as root (CI), the reader runs as `nobody`, to whom the tree is
    // readable and `locked.nix` is not.
    let out = if std::fs::read(&locked).is_ok() {
        for p in [d, &d.join("tree")] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(d.join("tree/host.nix"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_migrate"))
            .args(["inventory", "tree", "--format", "json"])
            .current_dir(d)
            .output()
            .expect("setpriv (util-linux) runs the reader as nobody")
    } else {
        migrate_in(d, &["inventory", "tree", "--format", "json"])
    };
    let (code, inv, err) = (out.status.code(), json(&out), stderr(&out));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(service(&inv, "a")["host"]["known"]["value"], "h");
    let w = messages(&inv, "unreadable_input");
    assert!(w.len() == 1 && w[0].contains("tree/locked.nix"), "{w:?}");
}

#[test]
fn input_kind_narrows_a_walk_to_files_of_that_kind() {
    let dir = tempfile::tempdir().unwrap();
    repo(dir.path());
    let (code, inv, err) = inventory(dir.path(), &["repo", "--input-kind", "yaml"]);
    assert_eq!(code, Some(0), "{err}");
    let names: Vec<&str> =
        inv["services"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ntfy"]);
    let skipped = messages(&inv, "skipped_input");
    assert!(
        skipped.iter().any(|m| m.starts_with("repo/hosts/beta/default.nix ")
            && m.contains("not --input-kind yaml")),
        "{skipped:#?}"
    );
}

#[test]
fn a_flake_repository_reads_its_hosts_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    repo_with(dir.path(), true);
    let (code, inv, err) = inventory(dir.path(), &["repo"]);
    let errors = errors(&inv);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(inv["complete"], true);
    let names = service_names(&inv);
    // What the flake's hosts declare; the fork YAML, logs and JSON beside it are not the flake's.
    assert_eq!(names, ["grafana", "jellyfin"]);
    assert_eq!(service(&inv, "grafana")["host"]["known"]["value"], "alpha");
    assert_eq!(service(&inv, "jellyfin")["host"]["known"]["value"], "beta");
    assert_eq!(value(service(&inv, "grafana"), "declared", "toURL"), "http://127.0.0.1:3000");
    assert_eq!(
        value(service(&inv, "jellyfin"), "effective", "tags"),
        &serde_json::json!(["tag:web"])
    );
    let attrs: Vec<&str> = inv["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["flake_attr"].as_str().unwrap())
        .collect();
    assert_eq!(attrs, ["alpha", "beta"]);
    assert_eq!(inv["inputs"][0]["kind"], "flake");
}
