//! The whole fleet, two hosts, wave by wave: the emulation of design section 1C with a fleet of
//! the project's own making. `storage` uses the tsnsrv fork (forward auth to `auth` on the other
//! host, an alias pair); `cloud` uses upstream tsnsrv and has a public (Funnel) service that the
//! plan keeps on its node. One proxy per host on its own loopback address, all on one port; one
//! responder (hosted by storage's proxy) serving both hosts' records files and the legacy file.
//! Three ways to drive the legacy side: the `command` adapter, the `nix` adapter with the module
//! evaluated by the switch command, and the same with storage on the fork's one `tsnsrv-all`
//! process (`separateProcesses = false`).

use crate::apply::{app, certificates, forwarder};
use crate::util::{migrate_in, stderr, stdout};
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const STORAGE: [&str; 7] = ["files", "photos", "music", "books", "docs", "media", "media-alt"];
const CLOUD: [&str; 6] = ["auth", "grafana", "prom", "git", "chat", "public"];

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a proxy; returns it and the (https port, dns port) it printed.
fn proxy(config: &Path) -> (Proxy, u16, Option<u16>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["proxy", "--config"])
        .arg(config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "proxy exited before serving");
        if line.contains("tailshift proxy serving") {
            break;
        }
    }
    std::thread::spawn(move || for _ in err.lines() {});
    let port = |kind: &str| -> Option<u16> {
        let a = line.split(kind).nth(1)?.split([',', ';', ' ']).next()?;
        a.rsplit_once(':')?.1.parse().ok()
    };
    (Proxy(child), port("https ").unwrap(), port("dns "))
}

fn get(dns: std::net::SocketAddr, port: u16, ca: &Path, name: &str) -> (u16, String) {
    crate::util::get_by_name(dns, port, ca, &format!("{name}.tailnet.test"))
}

#[test]
fn the_whole_fleet_moves_wave_by_wave_across_two_hosts_and_back() {
    whole_fleet(None, false);
}

/// The same fleet with the `nix` adapter: it writes each host's moves file, and the switch
/// command evaluates the host's configuration with tailshift's NixOS module reading that file
/// (nixpkgs' module system, Nix 2.8: `tests/nixos/eval.nix`); the tsnsrv units it no longer
/// enables are the nodes that stop.
#[test]
fn the_fleet_moves_with_the_nix_adapter_and_the_module_reading_its_moves() {
    let Some(lib) = crate::nixos::oracle() else { return };
    whole_fleet(Some(&lib), false);
}

/// The same with storage on the fork's one `tsnsrv-all` process (`separateProcesses = false`):
/// one emulated process serves all of storage's names and reads its service list when it
/// restarts, from the YAML the unit the module evaluates to runs (its switch command restarts it
/// when that unit changes, as `nixos-rebuild switch` does). After each wave the unit's YAML holds
/// exactly the services that remain; rollback brings back the fork's own unit.
#[test]
fn the_fleet_moves_out_of_the_forks_tsnsrv_all_process_with_the_nix_adapter_and_back() {
    let Some(lib) = crate::nixos::oracle() else { return };
    whole_fleet(Some(&lib), true);
}

/// The tsnsrv units the module leaves enabled on a host (each with its `exec` and the `yaml`
/// it reads), evaluated with its moves file (or without: the host's own units).
fn units(
    lib: &Path,
    d: &Path,
    host: &str,
    with_moves: bool,
) -> serde_json::Map<String, serde_json::Value> {
    let moves = d.join(format!("moves-{host}.json"));
    let moves = if with_moves {
        format!("{{ services.tailshift.moves = {}; }}", moves.display())
    } else {
        String::new()
    };
    let modules = format!("[ {} {moves} ]", d.join(format!("hosts/{host}.nix")).display());
    let v = crate::nixos::eval(lib, &modules);
    assert_eq!(v["failed"], serde_json::json!([]), "{v}");
    v["tsnsrv"].as_object().unwrap().clone()
}

/// The tsnsrv units the module leaves enabled on a host, evaluated with its moves file.
fn enabled_units(lib: &Path, d: &Path, host: &str) -> Vec<String> {
    units(lib, d, host, true).keys().cloned().collect()
}

/// The services of a `tsnsrv-all` YAML (the fork's schema, reference section 1.6), sorted, each
/// with its `upstream` and `stateDir`.
fn yaml_services(yaml: &str) -> Vec<(String, String, String)> {
    let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    let field = |s: &serde_yaml::Value, k: &str| s[k].as_str().unwrap_or_default().to_string();
    let mut out: Vec<_> = v["services"]
        .as_sequence()
        .unwrap_or_else(|| panic!("no services list: {yaml}"))
        .iter()
        .map(|s| (field(s, "name"), field(s, "upstream"), field(s, "stateDir")))
        .collect();
    out.sort();
    out
}

fn whole_fleet(oracle: Option<&Path>, shared: bool) {
    assert!(oracle.is_some() || !shared, "the shared process is driven by the module");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let all: Vec<&'static str> = STORAGE.iter().chain(CLOUD.iter()).copied().collect();
    let names: Vec<String> = all.iter().map(|n| format!("{n}.tailnet.test")).collect();
    let ca = certificates(&d.join("certs"), &names);
    // The proxies first: the kernel picks storage's port, cloud's takes the same one.
    std::fs::write(
        d.join("proxy-storage.toml"),
        format!(
            "state_dir = \"{0}/ps\"\ncert_dir = \"{0}/certs\"\nhealth_interval_s = 0\nupstream_ca = \"{0}/certs/ca.pem\"\n[[listener]]\nkind = \"https\"\naddr = \"127.0.20.1:0\"\n[dns]\nlisten = \"127.0.0.1:0\"\nzone = \"tailnet.test\"\nrecords = [\"{0}/records-storage.json\", \"{0}/records-cloud.json\", \"{0}/legacy.json\"]\nttl = 1\n",
            d.display()
        ),
    )
    .unwrap();
    // Its own responder also resolves auth.tailnet.test for forward auth (names in its zone).
    let (_ps, port, dns_port) = proxy(&d.join("proxy-storage.toml"));
    let dns: std::net::SocketAddr = format!("127.0.0.1:{}", dns_port.unwrap()).parse().unwrap();
    std::fs::write(
        d.join("proxy-cloud.toml"),
        format!(
            "state_dir = \"{0}/pc\"\ncert_dir = \"{0}/certs\"\nhealth_interval_s = 0\n[[listener]]\nkind = \"https\"\naddr = \"127.0.20.2:{port}\"\n",
            d.display()
        ),
    )
    .unwrap();
    let (_pc, _, _) = proxy(&d.join("proxy-cloud.toml"));

    // Apps, nodes (forwarders) and the legacy records.
    let mut legacy = Vec::new();
    let mut nix = std::collections::BTreeMap::new();
    let mut to_url = std::collections::BTreeMap::new();
    for (host, list, net) in [("storage", &STORAGE[..], 10), ("cloud", &CLOUD[..], 11)] {
        let mut entries = String::new();
        let mut media_port = 0;
        for (i, name) in list.iter().enumerate() {
            let up = if *name == "media-alt" { media_port } else { app(name, 200) };
            if *name == "media" {
                media_port = up;
            }
            let ip: IpAddr = format!("127.0.{net}.{}", i + 1).parse().unwrap();
            forwarder(d, name, ip, port, &d.join("certs"));
            legacy.push(serde_json::json!({"name": format!("{name}.tailnet.test"), "type": "A", "value": ip.to_string()}));
            let extra = match *name {
                // Forward auth to a service of the other host (the fork's options).
                "docs" => format!(
                    "authURL = \"https://auth.tailnet.test:{port}\"; authPath = \"/api/verify\"; "
                ),
                "public" => "funnel = true; ".to_string(),
                _ => String::new(),
            };
            entries.push_str(&format!(
                "      \"{name}\" = {{ {extra}toURL = \"http://127.0.0.1:{up}\"; }};\n"
            ));
            to_url.insert(*name, format!("http://127.0.0.1:{up}"));
        }
        nix.insert(host, entries);
    }
    std::fs::write(d.join("legacy.json"), serde_json::to_string(&legacy).unwrap()).unwrap();
    std::fs::create_dir_all(d.join("hosts")).unwrap();
    for (host, entries) in &nix {
        // The fork's one process, when asked: storage declares its services the same way.
        let mode =
            if shared && *host == "storage" { "    separateProcesses = false;\n" } else { "" };
        std::fs::write(
            d.join(format!("hosts/{host}.nix")),
            format!("{{ ... }}: {{\n  networking.hostName = \"{host}\";\n  services.tsnsrv = {{\n    enable = true;\n{mode}    defaults.authKeyPath = \"/run/keys/tailscale\";\n    services = {{\n{entries}    }};\n  }};\n}}\n"),
        )
        .unwrap();
    }
    // storage's tsnsrv-all runs its own configuration until a switch changes its unit.
    let own_unit = match oracle {
        Some(lib) if shared => {
            let own = units(lib, d, "storage", false);
            assert_eq!(own.keys().collect::<Vec<_>>(), ["tsnsrv-all"], "{own:?}");
            let all = &own["tsnsrv-all"];
            let mut want: Vec<_> = STORAGE
                .iter()
                .map(|n| (n.to_string(), to_url[n].clone(), format!("/var/lib/tsnsrv-all/{n}")))
                .collect();
            want.sort();
            assert_eq!(yaml_services(all["yaml"].as_str().unwrap()), want);
            let exec = all["exec"].as_str().unwrap().to_string();
            std::fs::write(d.join("tsnsrv-all.running"), &exec).unwrap();
            Some(exec)
        }
        _ => None,
    };
    std::fs::write(
        d.join("adapter.sh"),
        format!("#!/bin/sh\ncase \"$TAILSHIFT_ACTION\" in\n  stop) touch {0}/stopped-$TAILSHIFT_UNIT ;;\n  start) rm -f {0}/stopped-$TAILSHIFT_UNIT ;;\n  *) exit 1 ;;\nesac\n", d.display()),
    )
    .unwrap();
    let plan_part =
        "[plan]\ntailnet = \"tailnet.test\"\nstrategy = \"split-dns\"\nschedule = [2, 4]\n";
    for (host, ip, letter) in [("storage", "127.0.20.1", "s"), ("cloud", "127.0.20.2", "c")] {
        let legacy = match oracle {
            None => format!(
                "legacy = {{ adapter = \"command\", command = [\"/bin/sh\", \"{}/adapter.sh\"] }}",
                d.display()
            ),
            Some(lib) => {
                // Stands for `nixos-rebuild switch`: evaluate the host with the module and its
                // moves file; the nodes of the units it does not enable stop, the others run.
                let services = if host == "storage" { &STORAGE[..] } else { &CLOUD[..] };
                // storage's one process: when the unit the module evaluates to changes, it
                // restarts (every one of its names silent), reads the YAML that unit runs and
                // serves exactly those names; a unit no longer enabled stops it.
                let script = if shared && host == "storage" {
                    format!(
                        "#!/bin/sh\nset -e\nrun=$(nix-instantiate --eval --strict --read-write-mode -E 'let t = (import {eval} {{ nixpkgsLib = {lib}; modules = [ {0}/hosts/{host}.nix {{ services.tailshift.moves = {0}/moves-{host}.json; }} ]; }}).tsnsrv; in assert builtins.all (u: u == \"tsnsrv-all\") (builtins.attrNames t); t.tsnsrv-all.exec or \"\"')\nrun=$(printf '%s' \"$run\" | tr -d '\"')\nif [ \"$run\" != \"$(cat {0}/tsnsrv-all.running)\" ]; then\n  for s in {list}; do touch {0}/stopped-tsnsrv-$s.service; done\n  sleep 0.3\n  if [ -n \"$run\" ]; then\n    for s in $(sed -n 's/^ *- name: *//p' \"${{run##*-config=}}\"); do rm -f {0}/stopped-tsnsrv-$s.service; done\n    echo restart >> {0}/tsnsrv-all.log\n  else\n    echo stop >> {0}/tsnsrv-all.log\n  fi\n  printf '%s' \"$run\" > {0}/tsnsrv-all.running\nfi\necho tsnsrv-all >> {0}/switches-{host}\n",
                        d.display(),
                        eval = crate::util::root().join("tests/nixos/eval.nix").display(),
                        lib = lib.display(),
                        list = services.join(" "),
                    )
                } else {
                    format!(
                        "#!/bin/sh\nset -e\nunits=$(nix-instantiate --eval --strict --read-write-mode -E 'builtins.concatStringsSep \" \" (builtins.attrNames (import {eval} {{ nixpkgsLib = {lib}; modules = [ {0}/hosts/{host}.nix {{ services.tailshift.moves = {0}/moves-{host}.json; }} ]; }}).tsnsrv)')\nunits=$(printf '%s' \"$units\" | tr -d '\"')\nfor s in {list}; do\n  case \" $units \" in\n    *\" tsnsrv-$s \"*) rm -f {0}/stopped-tsnsrv-$s.service ;;\n    *) touch {0}/stopped-tsnsrv-$s.service ;;\n  esac\ndone\necho \"$units\" >> {0}/switches-{host}\n",
                        d.display(),
                        eval = crate::util::root().join("tests/nixos/eval.nix").display(),
                        lib = lib.display(),
                        list = services.join(" "),
                    )
                };
                std::fs::write(d.join(format!("switch-{host}.sh")), script).unwrap();
                format!(
                    "legacy = {{ adapter = \"nix\", data = \"{0}/moves-{host}.json\", switch = [\"/bin/sh\", \"{0}/switch-{host}.sh\"] }}",
                    d.display()
                )
            }
        };
        std::fs::write(
            d.join(format!("{host}.toml")),
            format!(
                "{plan_part}\n[apply]\nstate_dir = \"{0}/state-{host}\"\nadmin_socket = \"{0}/p{letter}/admin.sock\"\nsettle_ms = 50\nproxy_addrs = [\"{ip}\"]\nrecords_file = \"{0}/records-{host}.json\"\nresolver = \"{dns}\"\n{legacy}\n\n[apply.check]\nresolver = \"{dns}\"\nport = {port}\nca_file = \"{0}/certs/ca.pem\"\ntimeout_ms = 3000\n",
                d.display()
            ),
        )
        .unwrap();
    }
    // Each host reads the other's state (here both are on one machine): a rollback needs it
    // to know whether a service over there still depends on what it would take back.
    for (host, other) in [("storage", "cloud"), ("cloud", "storage")] {
        let path = d.join(format!("{host}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(d.join(format!("{host}-alone.toml")), &text).unwrap();
        std::fs::write(
            &path,
            text.replace(
                "\n[apply.check]",
                &format!("\n[apply.peers.{other}]\nstate_dir = \"{}/state-{other}\"\nconfig = \"{other}.toml\"\n\n[apply.check]", d.display()),
            ),
        )
        .unwrap();
    }
    let o = migrate_in(
        d,
        &[
            "plan",
            "hosts/storage.nix",
            "hosts/cloud.nix",
            "--config",
            "storage.toml",
            "--out",
            "plan.json",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("plan.json")).unwrap()).unwrap();
    let waves = plan["waves"].as_array().unwrap().len();
    assert!(waves >= 3, "{waves} waves");
    // docs waits for auth: auth's wave comes first.
    let wave_of = |id: &str| {
        plan["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .and_then(|s| s["wave"].as_u64())
    };
    assert!(
        wave_of("cloud/auth") < wave_of("storage/docs"),
        "{:?} {:?}",
        wave_of("cloud/auth"),
        wave_of("storage/docs")
    );
    assert_eq!(wave_of("storage/media"), wave_of("storage/media-alt"), "aliases move together");
    assert_eq!(wave_of("cloud/public"), None, "public: kept on its node until decided");
    let flavour = |id: &str| {
        plan["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["inventory"]["flavour"].clone())
    };
    assert_ne!(flavour("storage/docs"), flavour("cloud/git"), "both tsnsrv flavours");

    let everyone_answers = |when: &str| {
        for n in &all {
            let (code, body) = get(dns, port, &ca, n);
            assert_eq!(code, 200, "{when}: {n}: {body}");
        }
    };
    everyone_answers("before");
    // One host's part of a wave, as the operator runs it: it must succeed.
    let wave = |cmd: &str, w: usize, host: &str| {
        let (w, config) = (w.to_string(), format!("{host}.toml"));
        let args = [cmd, "--wave", &w, "--host", host, "--config", &config, "--plan", "plan.json"];
        let o = migrate_in(d, &args);
        assert_eq!(o.status.code(), Some(0), "{cmd} {w} on {host}: {}{}", stdout(&o), stderr(&o));
    };
    let host_of = |n: &str| if STORAGE.contains(&n) { "storage" } else { "cloud" };
    // With the waves up to `through` applied: their names answer from a proxy, the others from
    // their nodes (storage's: its one process, if shared).
    let each_answers_from_its_side = |through: usize, when: &str| {
        for n in &all {
            let moved =
                wave_of(&format!("{}/{n}", host_of(n))).is_some_and(|w| w as usize <= through);
            let want = match (moved, *n) {
                (false, _) => format!("legacy {n}"),
                // The alias pair shares one upstream.
                (true, "media-alt") => "app media".to_string(),
                (true, _) => format!("app {n}"),
            };
            assert_eq!(get(dns, port, &ca, n), (200, want), "{when}: {n}");
        }
    };
    // storage's tsnsrv-all as the module evaluates it with the moves file, with the waves up to
    // `through` applied: its YAML holds exactly the services that remain, each with its upstream
    // and its node's state directory; none left: no unit. The process runs that unit.
    let shared_unit_holds = |through: usize, when: &str| {
        let (Some(lib), true) = (oracle, shared) else { return };
        let mut rest: Vec<_> = STORAGE
            .iter()
            .filter(|n| wave_of(&format!("storage/{n}")).is_none_or(|w| w as usize > through))
            .map(|n| (n.to_string(), to_url[n].clone(), format!("/var/lib/tsnsrv-all/{n}")))
            .collect();
        rest.sort();
        let now = units(lib, d, "storage", true);
        let running = std::fs::read_to_string(d.join("tsnsrv-all.running")).unwrap();
        // No wave applied yet: no file, nothing moved.
        let moves: serde_json::Value = match std::fs::read(d.join("moves-storage.json")) {
            Ok(m) => serde_json::from_slice(&m).unwrap(),
            Err(_) => serde_json::json!({"disabled_units": [], "shared_processes": {}}),
        };
        if rest.is_empty() {
            assert!(now.is_empty(), "{when}: {now:?}");
            assert_eq!(moves["disabled_units"], serde_json::json!(["tsnsrv-all"]), "{when}");
            assert_eq!(running, "", "{when}: the process stopped");
            return;
        }
        assert_eq!(now.keys().collect::<Vec<_>>(), ["tsnsrv-all"], "{when}: {now:?}");
        let unit = &now["tsnsrv-all"];
        assert_eq!(yaml_services(unit["yaml"].as_str().unwrap()), rest, "{when}: {unit}");
        assert_eq!(unit["exec"].as_str().unwrap(), running, "{when}: the process runs the unit");
        assert_eq!(moves["disabled_units"], serde_json::json!([]), "{when}: no per-service unit");
        if rest.len() == STORAGE.len() {
            // Every one is back: the fork's own unit, no entry in the moves file.
            assert_eq!(Some(&running), own_unit.as_ref(), "{when}");
            assert_eq!(moves["shared_processes"], serde_json::json!({}), "{when}");
        } else {
            let names: Vec<&str> = rest.iter().map(|r| r.0.as_str()).collect();
            assert_eq!(
                moves["shared_processes"]["tsnsrv-all"]["services"],
                serde_json::json!(names),
                "{when}"
            );
        }
    };
    shared_unit_holds(0, "before");
    for w in 1..=waves {
        for host in ["storage", "cloud"] {
            wave("apply", w, host);
        }
        everyone_answers(&format!("after wave {w}"));
        each_answers_from_its_side(w, &format!("after wave {w}"));
        shared_unit_holds(w, &format!("after wave {w}"));
    }
    // Everything planned now answers from a proxy; the public service from its node.
    for n in &all {
        let (_, body) = get(dns, port, &ca, n);
        let want = match *n {
            "public" => format!("legacy {n}"),
            // The alias pair shares one upstream.
            "media-alt" => "app media".to_string(),
            _ => format!("app {n}"),
        };
        assert_eq!(body, want, "{n}");
    }
    // The module, reading each host's moves file, disables exactly the moved services' units:
    // everything but the public service, kept on its node.
    if let Some(lib) = oracle {
        for (host, list) in [("storage", &STORAGE[..]), ("cloud", &CLOUD[..])] {
            let moves: serde_json::Value = serde_json::from_slice(
                &std::fs::read(d.join(format!("moves-{host}.json"))).unwrap(),
            )
            .unwrap();
            let moved: Vec<String> = if shared && host == "storage" {
                // Nothing remains in the fork's one process: its unit is disabled.
                vec!["tsnsrv-all".to_string()]
            } else {
                list.iter().filter(|n| **n != "public").map(|n| format!("tsnsrv-{n}")).collect()
            };
            let mut sorted = moved.clone();
            sorted.sort();
            assert_eq!(moves["schema"], "tailshift.moves/v1");
            assert_eq!(moves["disabled_units"], serde_json::json!(sorted), "{host}");
            let left = if host == "cloud" { vec!["tsnsrv-public".to_string()] } else { vec![] };
            assert_eq!(enabled_units(lib, d, host), left, "{host}");
        }
    }
    // cloud cannot take auth back while storage/docs, which needs it, is applied on storage:
    // refused before anything changes, with the command to run there first.
    let (aw, dw) = (wave_of("cloud/auth").unwrap(), wave_of("storage/docs").unwrap());
    for extra in [&["--cascade"][..], &[][..]] {
        let w = aw.to_string();
        let mut args = vec![
            "rollback",
            "--wave",
            &w,
            "--host",
            "cloud",
            "--config",
            "cloud.toml",
            "--plan",
            "plan.json",
        ];
        args.extend_from_slice(extra);
        let o = migrate_in(d, &args);
        let out = format!("{}{}", stdout(&o), stderr(&o));
        assert_eq!(o.status.code(), Some(3), "{out}");
        if !extra.is_empty() {
            assert!(out.contains("storage/docs on storage depends on cloud/auth"), "{out}");
            assert!(
                out.contains(&format!("`migrate rollback --wave {dw} --host storage --cascade --config storage.toml --plan plan.json`"))
                    || out.contains(&format!("`migrate rollback --wave {dw} --host storage --config storage.toml --plan plan.json`")),
                "{out}"
            );
        }
    }
    assert_eq!(get(dns, port, &ca, "auth").1, "app auth", "nothing changed");
    // Without a way to read storage's state, cloud cannot tell: refused too, saying why.
    let w = aw.to_string();
    let o = migrate_in(
        d,
        &[
            "rollback",
            "--wave",
            &w,
            "--host",
            "cloud",
            "--config",
            "cloud-alone.toml",
            "--plan",
            "plan.json",
            "--cascade",
        ],
    );
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(out.contains("cannot be told from cloud: [apply.peers.storage] is not set"), "{out}");
    assert_eq!(get(dns, port, &ca, "auth").1, "app auth", "nothing changed");
    // And back, last wave first.
    for w in (1..=waves).rev() {
        for host in ["cloud", "storage"] {
            wave("rollback", w, host);
        }
        everyone_answers(&format!("after rolling back wave {w}"));
        each_answers_from_its_side(w - 1, &format!("after rolling back wave {w}"));
        shared_unit_holds(w - 1, &format!("after rolling back wave {w}"));
    }
    for n in &all {
        assert_eq!(get(dns, port, &ca, n).1, format!("legacy {n}"), "{n}");
    }
    // Rollback's moves files bring every unit back.
    if let Some(lib) = oracle {
        for (host, list) in [("storage", &STORAGE[..]), ("cloud", &CLOUD[..])] {
            let moves: serde_json::Value = serde_json::from_slice(
                &std::fs::read(d.join(format!("moves-{host}.json"))).unwrap(),
            )
            .unwrap();
            assert_eq!(moves["disabled_units"], serde_json::json!([]), "{host}");
            let mut all: Vec<String> = if shared && host == "storage" {
                vec!["tsnsrv-all".to_string()]
            } else {
                list.iter().map(|n| format!("tsnsrv-{n}")).collect()
            };
            all.sort();
            assert_eq!(enabled_units(lib, d, host), all, "{host}");
            assert!(d.join(format!("switches-{host}")).exists(), "the switch ran on {host}");
        }
    }
    // The one process changed once per wave that took services out of it (the last one
    // stopped it), and once per wave that gave them back.
    if shared {
        let mut storage_waves: Vec<u64> =
            STORAGE.iter().filter_map(|n| wave_of(&format!("storage/{n}"))).collect();
        storage_waves.sort();
        storage_waves.dedup();
        let log = std::fs::read_to_string(d.join("tsnsrv-all.log")).unwrap();
        let mut want = vec!["restart"; storage_waves.len() - 1];
        want.push("stop");
        want.extend(vec!["restart"; storage_waves.len()]);
        assert_eq!(log.lines().collect::<Vec<_>>(), want, "{storage_waves:?}");
    }
}
