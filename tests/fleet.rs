//! The whole fleet, two hosts, wave by wave: the emulation of design section 1C with a fleet of
//! the project's own making. `storage` uses the tsnsrv fork (forward auth to `auth` on the other
//! host, an alias pair); `cloud` uses upstream tsnsrv and has a public (Funnel) service that the
//! plan keeps on its node. One proxy per host on its own loopback address, all on one port; one
//! responder (hosted by storage's proxy) serving both hosts' records files and the legacy file.

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
    whole_fleet(None);
}

/// The same fleet with the `nix` adapter: it writes each host's moves file, and the switch
/// command evaluates the host's configuration with tailshift's NixOS module reading that file
/// (nixpkgs' module system, Nix 2.8: `tests/nixos/eval.nix`); the tsnsrv units it no longer
/// enables are the nodes that stop.
#[test]
fn the_fleet_moves_with_the_nix_adapter_and_the_module_reading_its_moves() {
    let Some(lib) = crate::nixos::oracle() else { return };
    whole_fleet(Some(&lib));
}

/// The tsnsrv units the module leaves enabled on a host, evaluated with its moves file.
fn enabled_units(lib: &Path, d: &Path, host: &str) -> Vec<String> {
    let moves = d.join(format!("moves-{host}.json"));
    let modules = format!(
        "[ {} {{ services.tailshift.moves = {}; }} ]",
        d.join(format!("hosts/{host}.nix")).display(),
        moves.display()
    );
    let v = crate::nixos::eval(lib, &modules);
    assert_eq!(v["failed"], serde_json::json!([]), "{v}");
    v["tsnsrv"].as_object().unwrap().keys().cloned().collect()
}

fn whole_fleet(oracle: Option<&Path>) {
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
        }
        nix.insert(host, entries);
    }
    std::fs::write(d.join("legacy.json"), serde_json::to_string(&legacy).unwrap()).unwrap();
    std::fs::create_dir_all(d.join("hosts")).unwrap();
    for (host, entries) in &nix {
        std::fs::write(
            d.join(format!("hosts/{host}.nix")),
            format!("{{ ... }}: {{\n  networking.hostName = \"{host}\";\n  services.tsnsrv = {{\n    enable = true;\n    defaults.authKeyPath = \"/run/keys/tailscale\";\n    services = {{\n{entries}    }};\n  }};\n}}\n"),
        )
        .unwrap();
    }
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
                std::fs::write(
                    d.join(format!("switch-{host}.sh")),
                    format!(
                        "#!/bin/sh\nset -e\nunits=$(nix-instantiate --eval --strict --read-write-mode -E 'builtins.concatStringsSep \" \" (builtins.attrNames (import {eval} {{ nixpkgsLib = {lib}; modules = [ {0}/hosts/{host}.nix {{ services.tailshift.moves = {0}/moves-{host}.json; }} ]; }}).tsnsrv)' | tr -d '\"')\nfor s in {list}; do\n  case \" $units \" in\n    *\" tsnsrv-$s \"*) rm -f {0}/stopped-tsnsrv-$s.service ;;\n    *) touch {0}/stopped-tsnsrv-$s.service ;;\n  esac\ndone\necho \"$units\" >> {0}/switches-{host}\n",
                        d.display(),
                        eval = crate::util::root().join("tests/nixos/eval.nix").display(),
                        lib = lib.display(),
                        list = services.join(" "),
                    ),
                )
                .unwrap();
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
    for w in 1..=waves {
        for host in ["storage", "cloud"] {
            wave("apply", w, host);
        }
        everyone_answers(&format!("after wave {w}"));
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
            let moved: Vec<String> =
                list.iter().filter(|n| **n != "public").map(|n| format!("tsnsrv-{n}")).collect();
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
            let mut all: Vec<String> = list.iter().map(|n| format!("tsnsrv-{n}")).collect();
            all.sort();
            assert_eq!(enabled_units(lib, d, host), all, "{host}");
            assert!(d.join(format!("switches-{host}")).exists(), "the switch ran on {host}");
        }
    }
}
