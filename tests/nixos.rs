//! tailshift's NixOS module (`nix/module.nix`), evaluated by the oracle: nixpkgs' real module
//! system (`../shared/nixpkgs-lib`) under Nix 2.8, with the NixOS options it sets declared by
//! `tests/nixos/stubs.nix`, a minimal `pkgs` (`tests/nixos/pkgs.nix`: `formats.toml` renders JSON
//! and refuses null) and a tsnsrv stand-in (`tests/nixos/tsnsrv.nix`). One test per placement,
//! the assertions each on a configuration that violates it, the unit measured with
//! `systemd-analyze security --offline=yes`, the settings run by a real proxy, and the moves.

use crate::util::{root, stderr, stdout};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use tailshift_util::testing::skip;

/// `../shared/nixpkgs-lib` and Nix, or why the test cannot run.
pub fn oracle() -> Option<PathBuf> {
    let lib = root().join("../shared/nixpkgs-lib");
    if !lib.join("lib/default.nix").is_file() {
        skip("../shared/nixpkgs-lib is absent");
        return None;
    }
    if Command::new("nix-instantiate").arg("--version").output().is_err() {
        skip("nix-instantiate is not installed (nix-bin)");
        return None;
    }
    Some(lib.canonicalize().unwrap())
}

/// Evaluates the module with `modules` (a Nix list of modules) as the host's configuration;
/// `Err` holds Nix's error.
pub fn try_eval(lib: &Path, modules: &str) -> Result<Value, String> {
    try_eval_with(lib, modules, &[])
}

/// [`try_eval`] with more arguments for `nix-instantiate` (`--show-trace`, `--arg ...`).
fn try_eval_with(lib: &Path, modules: &str, extra: &[&str]) -> Result<Value, String> {
    let o = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "--read-write-mode"])
        .args(extra)
        .arg(root().join("tests/nixos/eval.nix"))
        .arg("--arg")
        .arg("nixpkgsLib")
        .arg(lib)
        .arg("--arg")
        .arg("modules")
        .arg(modules)
        .output()
        .expect("run nix-instantiate");
    if !o.status.success() {
        return Err(stderr(&o));
    }
    Ok(serde_json::from_slice(&o.stdout).unwrap())
}

pub fn eval(lib: &Path, modules: &str) -> Value {
    try_eval(lib, modules).unwrap_or_else(|e| panic!("evaluation failed: {e}\nmodules: {modules}"))
}

/// The settings as the TOML the proxy reads (what `pkgs.formats.toml` writes on NixOS).
fn to_toml(settings: &Value) -> String {
    toml::to_string(&toml::Value::try_from(settings).unwrap()).unwrap()
}

/// The unit file NixOS writes from a `serviceConfig`: booleans yes/no, a list one line per
/// element (`[""]` resets).
fn unit_file(unit: &Value) -> String {
    let mut out = String::from("[Unit]\nDescription=tailshift proxy\n");
    for k in ["after", "wants"] {
        let v: Vec<&str> =
            unit[k].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
        out.push_str(&format!(
            "{}={}\n",
            if k == "after" { "After" } else { "Wants" },
            v.join(" ")
        ));
    }
    out.push_str("[Service]\n");
    for (k, v) in unit["serviceConfig"].as_object().unwrap() {
        let one = |v: &Value| match v {
            Value::Bool(b) => {
                if *b {
                    "yes".to_string()
                } else {
                    "no".to_string()
                }
            }
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match v {
            Value::Array(items) => {
                for i in items {
                    out.push_str(&format!("{k}={}\n", one(i)));
                }
            }
            v => out.push_str(&format!("{k}={}\n", one(v))),
        }
    }
    out.push_str("[Install]\nWantedBy=multi-user.target\n");
    out
}

/// `systemd-analyze security --offline=yes` of the unit: (exposure, band).
fn exposure(unit: &Value) -> Option<(f64, String)> {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        skip("systemd-analyze is not installed (systemd)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tailshift-proxy.service");
    std::fs::write(&file, unit_file(unit)).unwrap();
    let o = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&file)
        .output()
        .unwrap();
    let text = stdout(&o);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("{text}{}", stderr(&o)));
    let mut words = line.rsplit(':').next().unwrap().split_whitespace();
    let level = words.next().unwrap().parse().unwrap();
    Some((level, words.next().unwrap().to_string()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An upstream answering every request with `hello from the module test`.
fn upstream() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = "hello from the module test";
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes the rendered settings as TOML, with the host's directories moved under `dir`,
/// checks them with `--check-config` and starts the proxy from them, as the unit does
/// (`Type=notify`: it must say READY=1).
fn run_settings(settings: &Value, dir: &Path) -> Running {
    let text = serde_json::to_string(settings)
        .unwrap()
        .replace("/var/lib/tailshift", &dir.join("state").display().to_string())
        .replace("/run/tailshift", &dir.join("run").display().to_string())
        .replace("/var/run/tailscale", &dir.join("tailscale").display().to_string());
    std::fs::create_dir_all(dir.join("run")).unwrap();
    let toml = to_toml(&serde_json::from_str(&text).unwrap());
    let file = dir.join("proxy.toml");
    std::fs::write(&file, &toml).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["proxy", "--check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{toml}\n{}{}", stdout(&o), stderr(&o));
    // As systemd runs it (Type=notify): READY=1 on NOTIFY_SOCKET once it serves.
    let notify = std::os::unix::net::UnixDatagram::bind(dir.join("notify")).unwrap();
    notify.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["proxy", "--workers", "1", "--config"])
        .arg(&file)
        .env("NOTIFY_SOCKET", dir.join("notify"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut printed = String::new();
    loop {
        use std::io::BufRead;
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "proxy exited: {printed}\n{toml}");
        printed.push_str(&line);
        if line.contains("tailshift proxy serving") {
            break;
        }
    }
    std::thread::spawn(move || {
        use std::io::BufRead;
        for _ in err.lines() {}
    });
    let mut buf = [0u8; 64];
    let n = notify.recv(&mut buf).expect("READY=1 on NOTIFY_SOCKET");
    assert_eq!(&buf[..n], b"READY=1");
    Running(child)
}

fn put_routes(dir: &Path, routes: &Value) {
    let (code, body) = crate::proxy::put_routes_in(dir, routes);
    assert_eq!(code, 200, "{body}");
}

fn route(name: &str, upstream: u16, listen: Value) -> Value {
    json!({
        "service": format!("host/{}", name.split('.').next().unwrap()),
        "hosts": [{"name": name, "mount": "/"}],
        "listen": listen,
        "upstream": {"url": format!("http://127.0.0.1:{upstream}")},
        "strip_prefix": true,
        "host_header": "keep",
        "proxy_headers": true,
        "funnel": false,
        "tailnet": true,
        "whois": {"enabled": false, "timeout_ms": 1000}
    })
}

fn curl(args: &[&str]) -> String {
    let o = Command::new("curl").args(["-s", "-m", "10"]).args(args).output().unwrap();
    stdout(&o)
}

const SC: &str = "serviceConfig";

/// What both placements share: the unit as docs say.
fn common_unit(unit: &Value) {
    let sc = &unit[SC];
    assert_eq!(sc["Type"], "notify");
    assert_eq!(
        sc["ExecStart"],
        "/nix/store/00000000000000000000000000000000-tailshift-0.1.0/bin/migrate proxy --config /etc/tailshift/proxy.toml"
    );
    assert!(sc["ExecReload"].as_str().unwrap().ends_with("/bin/kill -HUP $MAINPID"));
    assert_eq!(sc["StateDirectory"], "tailshift");
    assert_eq!(sc["RuntimeDirectory"], "tailshift");
    assert_eq!(sc["RuntimeDirectoryPreserve"], "yes");
    assert_eq!(sc["LimitNOFILE"], 65536);
    assert_eq!(sc["User"], "tailshift");
    for list in ["after", "wants"] {
        assert!(
            unit[list].as_array().unwrap().contains(&json!("tailscaled.service")),
            "{list}: {unit}"
        );
    }
    for (k, v) in [
        ("NoNewPrivileges", json!(true)),
        ("PrivateMounts", json!(true)),
        ("ProtectSystem", json!("strict")),
        ("ProtectHome", json!(true)),
        ("PrivateTmp", json!(true)),
        ("PrivateDevices", json!(true)),
        ("MemoryDenyWriteExecute", json!(true)),
        ("RestrictAddressFamilies", json!(["AF_UNIX", "AF_INET", "AF_INET6"])),
        ("SystemCallFilter", json!(["@system-service", "~@privileged"])),
    ] {
        assert_eq!(sc[k], v, "{k}");
    }
    if let Some((level, band)) = exposure(unit) {
        eprintln!("systemd-analyze security: {level} {band}");
        assert!(
            matches!(band.as_str(), "OK" | "SAFE"),
            "exposure {level} {band}\n{}",
            unit_file(unit)
        );
    }
}

#[test]
fn placement_a_trusted_sockets_serve_a_route_from_the_rendered_settings() {
    let Some(lib) = oracle() else { return };
    let v = eval(
        &lib,
        r#"[ { services.tailscale.enable = true; services.tailshift = { enable = true; placement = "tailscale-services"; settings.metrics_addr = "127.0.0.1:0"; settings.drain_ms = 2000; }; } ]"#,
    );
    assert_eq!(v["failed"], json!([]), "{v}");
    let s = &v["settings"];
    assert_eq!(s["state_dir"], "/var/lib/tailshift");
    assert_eq!(s["localapi_socket"], "/var/run/tailscale/tailscaled.sock");
    assert_eq!(
        s["listener"],
        json!([{"kind": "trusted", "path": "/run/tailshift/node.sock"}, {"kind": "services", "dir": "/run/tailshift/services"}])
    );
    assert_eq!(s["drain_ms"], 2000);
    assert!(s.get("cert_dir").is_none(), "unset keys are left to the proxy: {s}");
    common_unit(&v["unit"]);
    let sc = &v["unit"][SC];
    assert_eq!(sc["CapabilityBoundingSet"], json!([""]), "no capability without a low port");
    assert_eq!(sc["PrivateUsers"], true);
    assert_eq!(v["users"], json!(["tailshift"]));

    let dir = tempfile::tempdir().unwrap();
    let _proxy = run_settings(s, dir.path());
    let up = upstream();
    put_routes(
        dir.path(),
        &json!([route("app.tailnet.test", up, json!({"kind": "https", "port": 443}))]),
    );
    // As tailscaled's serve sends it: to the node's socket, the name in X-Forwarded-Host; and
    // to the Service's own socket, which the route's table created.
    let node = dir.path().join("run/node.sock");
    let body = curl(&[
        "--unix-socket",
        node.to_str().unwrap(),
        "-H",
        "X-Forwarded-Host: app.tailnet.test",
        "-H",
        "X-Forwarded-For: 100.64.0.7",
        "http://localhost/",
    ]);
    assert_eq!(body, "hello from the module test");
    let svc = dir.path().join("run/services/app.sock");
    let body = curl(&[
        "--unix-socket",
        svc.to_str().unwrap(),
        "-H",
        "X-Forwarded-Host: app",
        "-H",
        "X-Forwarded-For: 100.64.0.7",
        "http://localhost/",
    ]);
    assert_eq!(body, "hello from the module test");
}

#[test]
fn placement_b_binds_tailnet_addresses_and_serves_a_route() {
    let Some(lib) = oracle() else { return };
    // On the real ports: the capability to bind them, no user namespace (it would void it).
    let v = eval(
        &lib,
        r#"[ { services.tailshift = { enable = true; placement = "tailnet-address"; addresses = [ "100.64.0.1" "fd7a:115c:a1e0::1" ]; certDir = "/var/lib/acme/tailshift"; supplementaryGroups = [ "acme" ]; openFirewall = true; dns = { enable = true; zone = "home.example.com"; }; }; } ]"#,
    );
    assert_eq!(v["failed"], json!([]), "{v}");
    let s = &v["settings"];
    assert_eq!(
        s["listener"],
        json!([
            {"kind": "https", "addr": "100.64.0.1:443"},
            {"kind": "https", "addr": "[fd7a:115c:a1e0::1]:443"},
            {"kind": "http", "addr": "100.64.0.1:80"},
            {"kind": "http", "addr": "[fd7a:115c:a1e0::1]:80"}
        ])
    );
    assert_eq!(s["cert_dir"], "/var/lib/acme/tailshift");
    assert_eq!(s["localapi_certificates"], false);
    assert_eq!(
        s["dns"],
        json!({"listen": "100.64.0.1:53", "zone": "home.example.com", "records": ["/var/lib/tailshift/records.json"], "ttl": 30})
    );
    common_unit(&v["unit"]);
    let sc = &v["unit"][SC];
    assert_eq!(sc["CapabilityBoundingSet"], json!(["CAP_NET_BIND_SERVICE"]));
    assert_eq!(sc["AmbientCapabilities"], json!(["CAP_NET_BIND_SERVICE"]));
    assert_eq!(sc["PrivateUsers"], false);
    assert_eq!(sc["SupplementaryGroups"], json!(["acme"]));
    assert_eq!(
        v["firewall"],
        json!({"interfaces": {"tailscale0": {"allowedTCPPorts": [443, 80, 53], "allowedUDPPorts": [53]}}})
    );
    // Certificates from tailscaled for the proxy's user: tailscaled is told to permit it.
    let v = eval(
        &lib,
        r#"[ { services.tailscale.enable = true; services.tailshift = { enable = true; placement = "tailnet-address"; addresses = [ "100.64.0.1" ]; }; } ]"#,
    );
    assert_eq!(v["failed"], json!([]), "{v}");
    assert_eq!(v["settings"]["localapi_certificates"], true);
    assert_eq!(v["tailscaledEnv"], json!({"TS_PERMIT_CERT_UID": "tailshift"}));

    // Served: loopback stands for the tailnet address; 192.0.2.7 is an address this host does
    // not have (yet), bound all the same (IP_FREEBIND), as at boot before tailscale0 is up.
    let (https, http) = (free_port(), free_port());
    let v = eval(
        &lib,
        &format!(
            r#"[ {{ services.tailshift = {{ enable = true; placement = "tailnet-address"; addresses = [ "127.0.0.1" "192.0.2.7" ]; httpsPort = {https}; httpPort = {http}; certDir = "/var/lib/tailshift/certs"; }}; }} ]"#
        ),
    );
    assert_eq!(v["failed"], json!([]), "{v}");
    assert_eq!(v["unit"][SC]["CapabilityBoundingSet"], json!([""]), "high ports need none");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state/certs")).unwrap();
    let _proxy = run_settings(&v["settings"], dir.path());
    let up = upstream();
    put_routes(
        dir.path(),
        &json!([route("app.example.com", up, json!({"kind": "plaintext", "port": 80}))]),
    );
    let body = curl(&["-H", "Host: app.example.com", &format!("http://127.0.0.1:{http}/")]);
    assert_eq!(body, "hello from the module test");
}

#[test]
fn every_assertion_fires_with_its_message() {
    let Some(lib) = oracle() else { return };
    let cases: &[(&str, &str)] = &[
        (
            r#"services.tailshift = { enable = true; placement = "tailscale-services"; };"#,
            "enable services.tailscale (tailscaled)",
        ),
        (
            r#"services.tailscale.enable = true; services.tailshift = { enable = true; placement = "tailnet-address"; };"#,
            "set services.tailshift.addresses",
        ),
        (r#"services.tailshift.enable = true;"#, "the proxy has nothing to serve"),
        (
            r#"services.tailscale.enable = true; services.tailshift = { enable = true; placement = "tailscale-services"; settings.state_dir = "/srv/tailshift"; };"#,
            "can write only its StateDirectory under /var/lib",
        ),
        (
            r#"services.tailshift = { enable = true; placement = "tailnet-address"; addresses = [ "100.64.0.1" ]; certDir = "/home/me/certs"; supplementaryGroups = [ "me" ]; };"#,
            "the unit cannot read it (ProtectHome=yes)",
        ),
        (
            r#"services.tailshift = { enable = true; placement = "tailnet-address"; addresses = [ "100.64.0.1" ]; user = "root"; certDir = "/nix/store/00000000000000000000000000000000-certs"; };"#,
            "private keys in the Nix store",
        ),
        (
            r#"services.tailshift = { enable = true; placement = "tailnet-address"; addresses = [ "100.64.0.1" ]; certDir = "/var/lib/acme/tailshift"; };"#,
            "cannot read another user's private keys",
        ),
        (
            r#"services.tailscale.enable = true; services.tailshift = { enable = true; placement = "tailnet-address"; addresses = [ "100.64.0.1" ]; certDir = "/var/lib/tailshift/c"; settings.localapi_certificates = true; };"#,
            "cert_dir and localapi_certificates both",
        ),
        (
            r#"services.tailshift = { enable = true; settings = { localapi_certificates = true; listener = [ { kind = "https"; addr = "127.0.0.1:8443"; } ]; }; };"#,
            "localapi_certificates needs localapi_socket",
        ),
        (
            r#"services.tailscale.enable = true; services.tailshift = { enable = true; placement = "tailscale-services"; dns = { enable = true; zone = "tail1234.ts.net"; }; };"#,
            "MagicDNS answers *.ts.net first",
        ),
        (
            r#"services.tailshift.moves = builtins.toFile "m.json" ''{"schema": "tailshift.moves/v9", "disabled_units": ["tsnsrv-a"]}'';"#,
            "this module reads tailshift.moves/v1",
        ),
        // Placement B, certificates from tailscaled, and no tailscaled.
        (
            r#"services.tailshift = { enable = true; placement = "tailnet-address"; addresses = [ "100.64.0.1" ]; };"#,
            "takes its certificates from tailscaled (no certDir): enable services.tailscale",
        ),
        // The responder without its zone: said as such (not "MagicDNS answers *.ts.net").
        (
            r#"services.tailscale.enable = true; services.tailshift = { enable = true; placement = "tailscale-services"; dns.enable = true; };"#,
            "set services.tailshift.dns.zone",
        ),
        // A cert_dir the unit cannot read at all: that reason only, not also the group's.
        (
            r#"services.tailshift = { enable = true; placement = "tailnet-address"; addresses = [ "100.64.0.1" ]; certDir = "/home/me/certs"; };"#,
            "the unit cannot read it (ProtectHome=yes)",
        ),
        (
            r#"services.tailshift = { enable = true; placement = "tailnet-address"; addresses = [ "100.64.0.1" ]; certDir = "/nix/store/00000000000000000000000000000000-certs"; };"#,
            "private keys in the Nix store",
        ),
        // The moves, checked against the host.
        (
            r#"services.tailshift.moves = builtins.toFile "m.json" ''{"disabled_units": []}'';"#,
            "has no `schema`",
        ),
        (
            r#"services.tailshift.moves = builtins.toFile "m.json" ''{"schema": "tailshift.moves/v1", "disabled_unit": ["tsnsrv-a"]}'';"#,
            r#"unknown field(s) "disabled_unit""#,
        ),
        (
            r#"services.tsnsrv = { enable = true; separateProcesses = false; services.a.toURL = "http://127.0.0.1:1"; }; services.tailshift.moves = builtins.toFile "m.json" ''{"schema": "tailshift.moves/v1", "shared_processes": {"tsnsrv-all": {"config_yaml": "", "services": [], "restart": true}}}'';"#,
            r#"unknown field(s) "shared_processes.tsnsrv-all.restart""#,
        ),
        (
            r#"services.tsnsrv = { enable = true; services.a.toURL = "http://127.0.0.1:1"; }; services.tailshift.moves = builtins.toFile "m.json" ''{"schema": "tailshift.moves/v1", "disabled_units": ["tsnsrv-a", "tsnsrv-jellyfin"]}'';"#,
            r#"disabled_units "tsnsrv-jellyfin": no such unit on this host"#,
        ),
        (
            r#"services.tsnsrv = { enable = true; services.a.toURL = "http://127.0.0.1:1"; }; services.tailshift.moves = builtins.toFile "m.json" ''{"schema": "tailshift.moves/v1", "repoints": {"vault": "http://127.0.0.1:8200"}}'';"#,
            r#"repoints "vault": no such service in services.tsnsrv.services"#,
        ),
        (
            r#"services.tsnsrv = { enable = true; services.a.toURL = "http://127.0.0.1:1"; }; services.tailshift.moves = builtins.toFile "m.json" ''{"schema": "tailshift.moves/v1", "shared_processes": {"tsnsrv-all": {"config_yaml": "", "services": []}}}'';"#,
            r#"shared_processes "tsnsrv-all": no such unit on this host"#,
        ),
    ];
    for (config, message) in cases {
        let v = eval(&lib, &format!("[ {{ {config} }} ]"));
        let failed = v["failed"].as_array().unwrap();
        assert!(
            failed.len() == 1 && failed[0].as_str().unwrap().contains(message),
            "{config}\nwanted only: {message}\nfailed: {failed:#?}"
        );
    }
}

/// A host with tsnsrv services (per-service units, or the fork's `tsnsrv-all`) and a moves file.
pub fn host_with_moves(services: &[&str], separate: bool, moves: Option<&Path>) -> String {
    let svcs: String =
        services.iter().map(|s| format!("{s}.toURL = \"http://127.0.0.1:80/{s}\"; ")).collect();
    let moves =
        moves.map(|m| format!("services.tailshift.moves = {};", m.display())).unwrap_or_default();
    format!(
        "[ {{ services.tsnsrv = {{ enable = true; separateProcesses = {separate}; services = {{ {svcs}}}; }}; {moves} }} ]"
    )
}

#[test]
fn the_moves_disable_repoint_and_rewrite_the_shared_process() {
    let Some(lib) = oracle() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tailshift-moves.json");
    let units =
        |v: &Value| -> Vec<String> { v["tsnsrv"].as_object().unwrap().keys().cloned().collect() };
    // Nothing moved: every unit runs; the proxy itself need not be enabled for the moves.
    let v = eval(&lib, &host_with_moves(&["a", "b", "c"], true, None));
    assert_eq!(units(&v), ["tsnsrv-a", "tsnsrv-b", "tsnsrv-c"]);
    assert_eq!(v["unit"], Value::Null);
    // Today's file (schema and units only), and one with every field.
    std::fs::write(&file, r#"{"schema": "tailshift.moves/v1", "disabled_units": ["tsnsrv-b"]}"#)
        .unwrap();
    let v = eval(&lib, &host_with_moves(&["a", "b", "c"], true, Some(&file)));
    assert_eq!(v["failed"], json!([]));
    assert_eq!(units(&v), ["tsnsrv-a", "tsnsrv-c"]);
    std::fs::write(
        &file,
        r#"{"schema": "tailshift.moves/v1", "disabled_units": ["tsnsrv-a", "tsnsrv-b"], "repoints": {"c": "http://10.1.2.3:8096"}}"#,
    )
    .unwrap();
    let v = eval(&lib, &host_with_moves(&["a", "b", "c"], true, Some(&file)));
    assert_eq!(units(&v), ["tsnsrv-c"]);
    assert_eq!(v["toURL"]["c"], "http://10.1.2.3:8096");
    assert!(v["tsnsrv"]["tsnsrv-c"]["exec"].as_str().unwrap().ends_with("http://10.1.2.3:8096"));
    // The fork's one process: its unit runs the YAML of what remains.
    let yaml = "services:\n  - name: c\n    toURL: http://127.0.0.1:80/c\n";
    std::fs::write(
        &file,
        json!({"schema": "tailshift.moves/v1", "shared_processes": {"tsnsrv-all": {"config_yaml": yaml, "services": ["c"]}}}).to_string(),
    )
    .unwrap();
    let v = eval(&lib, &host_with_moves(&["a", "b", "c"], false, Some(&file)));
    assert_eq!(units(&v), ["tsnsrv-all"]);
    assert_eq!(v["tsnsrv"]["tsnsrv-all"]["yaml"], yaml);
    assert!(
        v["tsnsrv"]["tsnsrv-all"]["exec"]
            .as_str()
            .unwrap()
            .contains("-tsnsrv-0.0.0/bin/tsnsrv -config=")
    );
    // Everything moved: the shared unit goes.
    std::fs::write(
        &file,
        json!({"schema": "tailshift.moves/v1", "shared_processes": {"tsnsrv-all": {"config_yaml": "services: []\n", "services": []}}}).to_string(),
    )
    .unwrap();
    let v = eval(&lib, &host_with_moves(&["a", "b", "c"], false, Some(&file)));
    assert_eq!(units(&v), Vec::<String>::new());
    // A host without tsnsrv's module: the moves still evaluate (nothing to re-point there).
    std::fs::write(&file, r#"{"schema": "tailshift.moves/v1", "disabled_units": ["tsnsrv-a"]}"#)
        .unwrap();
    let o = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "--read-write-mode"])
        .arg(root().join("tests/nixos/eval.nix"))
        .args(["--arg", "withTsnsrv", "false", "--arg", "nixpkgsLib"])
        .arg(&lib)
        .arg("--arg")
        .arg("modules")
        .arg(format!("[ {{ services.tailshift.moves = {}; }} ]", file.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A user's flake that takes tailshift's flake as an input and imports its module, as
/// MIGRATION.md section 3 says. tailshift's own reader understands the module (no opaque
/// input, no unknown module), reports the services its moves file moved, and a plan made
/// before the moves is not stale after them (design section 3).
#[test]
fn a_users_flake_importing_tailshift_is_read_and_its_moves_keep_the_plan_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("flake.nix"),
        r#"{
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";
    tsnsrv.url = "github:boinkor-net/tsnsrv";
    tailshift.url = "github:example/tailshift";
    tailshift.inputs.nixpkgs.follows = "nixpkgs";
  };
  outputs = { self, nixpkgs, tsnsrv, tailshift, ... }: {
    nixosConfigurations.nas = nixpkgs.lib.nixosSystem {
      system = "x86_64-linux";
      modules = [ tsnsrv.nixosModules.default tailshift.nixosModules.default ./nas.nix ];
    };
  };
}
"#,
    )
    .unwrap();
    let nas = r#"{ ... }: {
  networking.hostName = "nas";
  services.tailscale.enable = true;
  services.tailshift = {
    enable = true;
    placement = "tailscale-services";
    moves = ./tailshift-moves.json;
  };
  services.tsnsrv = {
    enable = true;
    defaults.authKeyPath = "/run/keys/tailscale";
    services.jellyfin.toURL = "http://127.0.0.1:8096";
    services.grafana.toURL = "http://127.0.0.1:3000";
    services.keep.toURL = "http://127.0.0.1:4000";
  };
}
"#;
    std::fs::write(d.join("nas.nix"), nas).unwrap();
    std::fs::write(
        d.join("migrate.toml"),
        "[plan]\ntailnet = \"tailnet.test\"\nstrategy = \"split-dns\"\nschedule = [1]\n",
    )
    .unwrap();
    let run = |args: &[&str]| crate::util::migrate_in(d, args);
    // Before any wave: no moves file yet; the module is read, not opaque.
    let o = run(&["inventory", "."]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(!stderr(&o).contains("unknown_module"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("opaque_input"), "{}", stderr(&o));
    assert!(!stdout(&o).contains("moved to the proxy"), "{}", stdout(&o));
    let o = run(&["plan", ".", "--config", "migrate.toml", "--out", "plan.json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));

    // What `migrate apply`'s nix adapter writes once waves moved jellyfin and re-pointed keep.
    std::fs::write(
        d.join("tailshift-moves.json"),
        r#"{"schema": "tailshift.moves/v1", "disabled_units": ["tsnsrv-jellyfin"], "repoints": {"keep": "http://10.0.0.5:4000"}}"#,
    )
    .unwrap();
    let o = run(&["inventory", ".", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let inv = crate::util::json(&o);
    let moved = |n: &str| {
        inv["services"].as_array().unwrap().iter().find(|s| s["name"] == n).unwrap()["moved"]
            .clone()
    };
    assert_eq!(moved("jellyfin")["how"], "unit_disabled");
    assert!(moved("jellyfin")["file"].as_str().unwrap().ends_with("tailshift-moves.json"));
    assert_eq!(moved("keep")["how"], "repointed");
    assert_eq!(moved("keep")["to_url"], "http://10.0.0.5:4000");
    assert_eq!(moved("grafana"), Value::Null);
    let o = run(&["inventory", "."]);
    assert!(stdout(&o).contains("jellyfin: tsnsrv-jellyfin disabled"), "{}", stdout(&o));
    // The plan made before the moves is still fresh.
    let o = run(&["plan", "--check", "plan.json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    // A file of another schema is said, and moves nothing.
    std::fs::write(d.join("tailshift-moves.json"), r#"{"schema": "tailshift.moves/v9"}"#).unwrap();
    let o = run(&["inventory", "."]);
    assert!(stderr(&o).contains("moves_unreadable"), "{}", stderr(&o));

    // The real module, on the same host file, does what the reader says.
    let Some(lib) = oracle() else { return };
    std::fs::write(
        d.join("tailshift-moves.json"),
        r#"{"schema": "tailshift.moves/v1", "disabled_units": ["tsnsrv-jellyfin"], "repoints": {"keep": "http://10.0.0.5:4000"}}"#,
    )
    .unwrap();
    let v = eval(&lib, &format!("[ {} ]", d.join("nas.nix").display()));
    assert_eq!(v["failed"], json!([]), "{v}");
    let units: Vec<&String> = v["tsnsrv"].as_object().unwrap().keys().collect();
    assert_eq!(units, ["tsnsrv-grafana", "tsnsrv-keep"]);
    assert_eq!(v["toURL"]["keep"], "http://10.0.0.5:4000");
}

/// A moves file that is set but absent (not written yet, or in a flake not `git add`ed) moves
/// nothing, and says so: a warning naming the path, not an assertion (before the first apply
/// there is nothing to move).
#[test]
fn a_moves_file_that_is_not_there_is_a_warning_naming_it() {
    let Some(lib) = oracle() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("storage-moves.json");
    let v = eval(&lib, &host_with_moves(&["a", "b"], true, Some(&file)));
    assert_eq!(v["failed"], json!([]), "{v}");
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = warnings[0].as_str().unwrap();
    assert!(w.contains(&file.display().to_string()) && w.contains("`git add` it"), "{w}");
    assert_eq!(v["tsnsrv"].as_object().unwrap().len(), 2, "nothing moved");
    // Written: no warning.
    std::fs::write(&file, r#"{"schema": "tailshift.moves/v1"}"#).unwrap();
    let v = eval(&lib, &host_with_moves(&["a", "b"], true, Some(&file)));
    assert_eq!(v["warnings"], json!([]));
}

/// `disabled_units` written with `.service` (by hand) means the same unit; the adapter writes
/// the name without it.
#[test]
fn moves_units_named_with_service_are_the_same_units() {
    let Some(lib) = oracle() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.json");
    std::fs::write(
        &file,
        r#"{"schema": "tailshift.moves/v1", "disabled_units": ["tsnsrv-b.service"]}"#,
    )
    .unwrap();
    let v = eval(&lib, &host_with_moves(&["a", "b"], true, Some(&file)));
    assert_eq!(v["failed"], json!([]), "{v}");
    assert_eq!(v["tsnsrv"].as_object().unwrap().keys().collect::<Vec<_>>(), ["tsnsrv-a"]);
    // The fork's one process on a host without tsnsrv at all: refused, not invented.
    std::fs::write(
        &file,
        r#"{"schema": "tailshift.moves/v1", "shared_processes": {"tsnsrv-all.service": {"config_yaml": "", "services": []}}}"#,
    )
    .unwrap();
    let v = try_eval_with(
        &lib,
        &format!("[ {{ services.tailshift.moves = {}; }} ]", file.display()),
        &["--arg", "withTsnsrv", "false"],
    )
    .unwrap();
    let failed = v["failed"].as_array().unwrap();
    assert!(
        failed.len() == 1
            && failed[0]
                .as_str()
                .unwrap()
                .contains(r#"shared_processes "tsnsrv-all": no such unit"#),
        "{failed:#?}"
    );
}

/// A moves file Nix cannot read is named, with the field: bad JSON (Nix's parser error, with
/// the file in the trace that newer Nix prints by default and 2.8 with `--show-trace`), a
/// field of the wrong type (the message itself).
#[test]
fn moves_file_errors_name_the_file_and_the_field() {
    let Some(lib) = oracle() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("storage-moves.json");
    let modules = format!("[ {{ services.tailshift.moves = {}; }} ]", file.display());
    let name = file.display().to_string();
    std::fs::write(&file, r#"{"schema": "tailshift.moves/v1", "disabled_units": "x"}"#).unwrap();
    let e = try_eval(&lib, &modules).unwrap_err();
    assert!(e.contains(&name) && e.contains("`disabled_units` must be a list"), "{e}");
    assert!(!e.contains("attrsets.nix"), "{e}");
    for (text, field) in [
        (r#"{"schema": "tailshift.moves/v1", "repoints": ["a"]}"#, "`repoints`"),
        (
            r#"{"schema": "tailshift.moves/v1", "shared_processes": {"tsnsrv-all": {"services": "a"}}}"#,
            "`shared_processes`",
        ),
        (r#"{"schema": 1}"#, "`schema`"),
        ("[]", "must be a JSON object"),
    ] {
        std::fs::write(&file, text).unwrap();
        let e = try_eval(&lib, &modules).unwrap_err();
        assert!(e.contains(&name) && e.contains(field), "{text}: {e}");
    }
    std::fs::write(&file, r#"{"schema": "#).unwrap();
    let e = try_eval_with(&lib, &modules, &["--show-trace"]).unwrap_err();
    assert!(e.contains("parse_error"), "{e}");
    assert!(e.contains(&format!("while reading services.tailshift.moves ({name}")), "{e}");
}

/// The responder listens on the placement's first address unless told otherwise.
#[test]
fn the_responder_listens_on_the_first_address_by_default() {
    let Some(lib) = oracle() else { return };
    let v = eval(
        &lib,
        r#"[ { services.tailshift = { enable = true; placement = "tailnet-address"; addresses = [ "100.100.7.9" "fd7a:115c:a1e0::9" ]; certDir = "/var/lib/tailshift/certs"; dns = { enable = true; zone = "home.example.com"; }; }; } ]"#,
    );
    assert_eq!(v["failed"], json!([]), "{v}");
    assert_eq!(v["settings"]["dns"]["listen"], "100.100.7.9:53");
    let v = eval(
        &lib,
        r#"[ { services.tailshift = { enable = true; placement = "tailnet-address"; addresses = [ "fd7a:115c:a1e0::9" ]; certDir = "/var/lib/tailshift/certs"; dns = { enable = true; zone = "home.example.com"; }; }; } ]"#,
    );
    assert_eq!(v["settings"]["dns"]["listen"], "[fd7a:115c:a1e0::9]:53");
}

/// `settings.cert_dir` alone is a certificate source as `certDir` is: tailscaled's is off, no
/// assertion says both were chosen, tailscaled is not asked to permit the proxy's user.
#[test]
fn settings_cert_dir_alone_takes_certificates_from_files() {
    let Some(lib) = oracle() else { return };
    let v = eval(
        &lib,
        r#"[ { services.tailscale.enable = true; services.tailshift = { enable = true; placement = "tailnet-address"; addresses = [ "100.64.0.1" ]; settings.cert_dir = "/var/lib/tailshift/certs"; }; } ]"#,
    );
    assert_eq!(v["failed"], json!([]), "{v}");
    assert_eq!(v["settings"]["cert_dir"], "/var/lib/tailshift/certs");
    assert_eq!(v["settings"]["localapi_certificates"], false);
    assert_eq!(v["tailscaledEnv"], json!({}));
}

/// tailscaled's unit is touched only on a host that runs tailscaled.
#[test]
fn tailscaled_is_left_alone_when_tailscale_is_off() {
    let Some(lib) = oracle() else { return };
    let v = eval(
        &lib,
        r#"[ { services.tailshift = { enable = true; placement = "tailnet-address"; addresses = [ "100.64.0.1" ]; certDir = "/var/lib/tailshift/certs"; }; } ]"#,
    );
    assert_eq!(v["failed"], json!([]), "{v}");
    assert_eq!(v["tailscaledDefined"], false, "{v}");
    // A user's own settings asking tailscaled for certificates, without tailscaled here.
    let v = eval(
        &lib,
        r#"[ { services.tailshift = { enable = true; settings = { localapi_socket = "/run/ts.sock"; localapi_certificates = true; listener = [ { kind = "https"; addr = "127.0.0.1:8443"; } ]; }; }; } ]"#,
    );
    assert_eq!(v["tailscaledDefined"], false, "{v}");
}

/// The rendered TOML is checked when the system is built, by the package's own parser: the
/// file is a derivation running `migrate proxy --check-config` on it (no import from
/// derivation); the parser refuses the typos freeform `settings` lets through.
#[test]
fn the_rendered_toml_is_checked_at_build_time() {
    let Some(lib) = oracle() else { return };
    let v = eval(
        &lib,
        r#"[ { services.tailscale.enable = true; services.tailshift = { enable = true; placement = "tailscale-services"; settings.metrics_adr = "127.0.0.1:9199"; }; } ]"#,
    );
    assert_eq!(v["failed"], json!([]), "a typo passes evaluation: {v}");
    let check = v["configCheck"].as_str().unwrap_or_else(|| panic!("no check: {v}"));
    assert!(
        check.contains(
            "/nix/store/00000000000000000000000000000000-tailshift-0.1.0/bin/migrate proxy --check-config --config \"$checked\""
        ),
        "{check}"
    );
    assert!(check.contains("cp \"$unchecked\" \"$out\""), "{check}");
    // What is checked is the file but for what a build cannot see: the state directory (its
    // routes.json is the proxy's, 0600) and a CA file outside the store.
    let mut want = v["settings"].clone();
    want["state_dir"] = json!("/var/empty/tailshift-check");
    assert_eq!(v["checkedSettings"], want);
    let ca = eval(
        &lib,
        r#"[ { services.tailscale.enable = true; services.tailshift = { enable = true; placement = "tailscale-services"; settings.upstream_ca = "/etc/ssl/home-ca.pem"; }; } ]"#,
    );
    assert_eq!(ca["settings"]["upstream_ca"], "/etc/ssl/home-ca.pem");
    assert!(ca["checkedSettings"].get("upstream_ca").is_none(), "{ca}");
    // The checked file of a configuration without a typo passes the check a build runs.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.toml");
    std::fs::write(&file, to_toml(&ca["checkedSettings"])).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["proxy", "--check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    // What that build step does with the rendered file: refuse it, naming the key.
    let dir = tempfile::tempdir().unwrap();
    for (settings, key) in [
        (v["checkedSettings"].clone(), "metrics_adr"),
        (
            json!({"state_dir": "/var/lib/tailshift", "listener": [{"kind": "http", "adr": "100.64.0.1:80"}]}),
            "adr",
        ),
    ] {
        let file = dir.path().join("proxy.toml");
        std::fs::write(&file, to_toml(&settings)).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_migrate"))
            .args(["proxy", "--check-config", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
        assert!(stderr(&o).contains(&format!("unknown field `{key}`")), "{}", stderr(&o));
    }
    // Off: the rendered file itself.
    let v = eval(
        &lib,
        r#"[ { services.tailscale.enable = true; services.tailshift = { enable = true; placement = "tailscale-services"; checkConfig = false; }; } ]"#,
    );
    assert_eq!(v["configCheck"], Value::Null);
    assert_eq!(v["settings"]["localapi_socket"], "/var/run/tailscale/tailscaled.sock");
}

/// MIGRATION.md section 3's host file, as printed, evaluates with the module: it names no
/// `tailshift` (the flake input is not in scope in a host file) and no `pkgs.tailshift` (no
/// overlay is added there), and its moves file, not written yet, is a warning.
#[test]
fn the_host_file_of_migration_md_evaluates() {
    let Some(lib) = oracle() else { return };
    let doc = std::fs::read_to_string(root().join("MIGRATION.md")).unwrap();
    let start = doc.find("```nix\n# hosts/storage.nix\n").expect("the host example");
    let block = doc[start + "```nix\n".len()..].split("```").next().unwrap();
    let code: Vec<&str> = block.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    assert!(!code.iter().any(|l| l.contains("pkgs.tailshift")), "{block}");
    let args = block.lines().find(|l| l.contains("...")).unwrap();
    assert!(!args.contains("tailshift") && !args.contains("pkgs"), "{args}");
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("storage.nix");
    std::fs::write(&host, block).unwrap();
    let v = eval(&lib, &format!("[ {} ]", host.display()));
    assert_eq!(v["failed"], json!([]), "{v}");
    assert_eq!(v["systemPackages"], json!(["tailshift-0.1.0"]));
    assert_eq!(v["settings"]["metrics_addr"], "127.0.0.1:9199");
    let w = v["warnings"].as_array().unwrap();
    assert!(w.len() == 1 && w[0].as_str().unwrap().contains("storage-moves.json"), "{w:?}");
}
