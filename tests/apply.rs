//! `migrate apply` and `migrate rollback` end to end on loopback, in the emulation of design
//! section 1C: each service's tsnsrv node is a small HTTPS forwarder on its own loopback
//! address, the proxy is on another address with the same port, names resolve through the
//! split-DNS responder the proxy hosts (a legacy records file standing in for MagicDNS), and the
//! `command` adapter stops and starts the forwarders.

use crate::util::{migrate_in, stderr, stdout};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const SERVICES: [(&str, u16); 3] = [("app1", 200), ("app2", 200), ("bad", 500)];

/// The test CA and a leaf per name, as `<dir>/<name>.crt` (leaf + CA) and `.key`.
pub fn certificates(dir: &Path, names: &[String]) -> PathBuf {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name.push(rcgen::DnType::CommonName, "emulated tailnet CA");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = p.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(p, ca_key);
    std::fs::create_dir_all(dir).unwrap();
    for n in names {
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![n.clone()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join(format!("{n}.crt")), format!("{}{}", leaf.pem(), ca.pem()))
            .unwrap();
        std::fs::write(dir.join(format!("{n}.key")), key.serialize_pem()).unwrap();
    }
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    ca_file
}

/// An app: answers every request with `app <name>` and the given status.
pub fn app(name: &'static str, status: u16) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut s = s;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    let body = format!("app {name}");
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A service's tsnsrv node: HTTPS on its own loopback address, `legacy <name>`; it stops
/// listening while `<dir>/stopped-tsnsrv-<name>.service` exists (the adapter's doing).
pub fn forwarder(dir: &Path, name: &'static str, ip: IpAddr, port: u16, certs: &Path) {
    let cfg = crate::util::tls_server_config(certs, &format!("{name}.tailnet.test"));
    let flag = dir.join(format!("stopped-tsnsrv-{name}.service"));
    let status_path = dir.join(format!("legacy-status-{name}"));
    let home = dir.to_path_buf();
    std::thread::spawn(move || {
        let mut listener: Option<TcpListener> = None;
        loop {
            // The test is over (its directory is gone): free the address for the next fleet.
            if !home.exists() {
                return;
            }
            if flag.exists() {
                listener = None;
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            if listener.is_none() {
                match TcpListener::bind((ip, port)) {
                    Ok(l) => {
                        l.set_nonblocking(true).unwrap();
                        listener = Some(l);
                    }
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
            }
            match listener.as_ref().unwrap().accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let cfg = cfg.clone();
                    let status_file = status_path.clone();
                    std::thread::spawn(move || {
                        let conn = rustls::ServerConnection::new(cfg).unwrap();
                        let mut tls = rustls::StreamOwned::new(conn, s);
                        let mut head = Vec::new();
                        let mut b = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") && tls.read(&mut b).unwrap_or(0) == 1 {
                            head.push(b[0]);
                        }
                        let body = format!("legacy {name}");
                        // `<dir>/legacy-status-<name>` changes the node's answer (default 200).
                        let status = std::fs::read_to_string(&status_file)
                            .ok()
                            .and_then(|t| t.trim().parse::<u16>().ok())
                            .unwrap_or(200);
                        let _ = write!(
                            tls,
                            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = tls.flush();
                        tls.conn.send_close_notify();
                        let _ = tls.flush();
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
}

struct Fleet {
    dir: tempfile::TempDir,
    proxy: Child,
    dns: std::net::SocketAddr,
    port: u16,
    ca: PathBuf,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
    }
}

impl Fleet {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The address the name resolves to through the responder.
    fn resolve(&self, name: &str) -> Option<IpAddr> {
        match tailshift_shims::dns::query(self.dns, name, Duration::from_secs(2)).ok()? {
            tailshift_shims::dns::Answer::Addrs(a) => a.first().copied(),
            _ => None,
        }
    }

    /// GET through the old name as a client would: resolved, HTTPS verified against the CA.
    fn get(&self, name: &str) -> (u16, String) {
        crate::util::get_by_name(self.dns, self.port, &self.ca, &format!("{name}.tailnet.test"))
    }

    fn migrate(&self, args: &[&str]) -> std::process::Output {
        migrate_in(self.dir.path(), args)
    }
}

fn fleet() -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let names: Vec<String> = SERVICES.iter().map(|(n, _)| format!("{n}.tailnet.test")).collect();
    let ca = certificates(&d.join("certs"), &names);
    std::fs::write(
        d.join("proxy.toml"),
        format!(
            "state_dir = \"{0}/proxy-state\"\ncert_dir = \"{0}/certs\"\nhealth_interval_s = 0\n[[listener]]\nkind = \"https\"\naddr = \"127.0.20.1:0\"\n[dns]\nlisten = \"127.0.0.1:0\"\nzone = \"tailnet.test\"\nrecords = [\"{0}/records.json\", \"{0}/legacy.json\"]\nttl = 1\n",
            d.display(),
        ),
    )
    .unwrap();
    let mut proxy = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["proxy", "--config"])
        .arg(d.join("proxy.toml"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(proxy.stderr.take().unwrap());
    // Ports chosen by the kernel, read back from the proxy's first line (no race with other
    // tests); the forwarders take the same port on their own addresses.
    let (port, dns_port) = loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            let status = proxy.wait().unwrap();
            panic!("proxy exited before serving ({status})");
        }
        eprint!("{line}");
        if line.contains("tailshift proxy serving") {
            let after = |kind: &str| -> u16 {
                let a = line.split(kind).nth(1).unwrap();
                let a = a.split([',', ';', ' ']).next().unwrap();
                a.rsplit_once(':').unwrap().1.parse().unwrap()
            };
            break (after("https "), after("dns "));
        }
    };
    std::thread::spawn(move || for _ in err.lines() {});
    let mut services_nix = String::new();
    let mut legacy = Vec::new();
    for (i, (name, status)) in SERVICES.iter().enumerate() {
        let up = app(name, *status);
        services_nix
            .push_str(&format!("      {name} = {{ toURL = \"http://127.0.0.1:{up}\"; }};\n"));
        let ip: IpAddr = format!("127.0.10.{}", i + 1).parse().unwrap();
        forwarder(d, name, ip, port, &d.join("certs"));
        legacy.push(serde_json::json!({"name": format!("{name}.tailnet.test"), "type": "A", "value": ip.to_string()}));
    }
    std::fs::write(d.join("legacy.json"), serde_json::to_string(&legacy).unwrap()).unwrap();
    std::fs::create_dir_all(d.join("hosts")).unwrap();
    std::fs::write(
        d.join("hosts/nas.nix"),
        format!("{{ ... }}: {{\n  networking.hostName = \"nas\";\n  services.tsnsrv = {{\n    enable = true;\n    defaults.authKeyPath = \"/run/keys/tailscale\";\n    services = {{\n{services_nix}    }};\n  }};\n}}\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("adapter.sh"),
        format!(
            "#!/bin/sh\ncase \"$TAILSHIFT_ACTION\" in\n  stop) touch {0}/stopped-$TAILSHIFT_UNIT ;;\n  start) rm -f {0}/stopped-$TAILSHIFT_UNIT ;;\n  finalize) touch {0}/finalized-$TAILSHIFT_UNIT ;;\n  *) echo \"cannot $TAILSHIFT_ACTION\" >&2; exit 1 ;;\nesac\n",
            d.display()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("migrate.toml"),
        format!(
            r#"[plan]
tailnet = "tailnet.test"
strategy = "split-dns"
schedule = [1]

[plan.pins]
"nas/app1" = 1
"nas/app2" = 2
"nas/bad" = 3

[apply]
state_dir = "{0}/state"
admin_socket = "{0}/proxy-state/admin.sock"
settle_ms = 100
proxy_addrs = ["127.0.20.1"]
records_file = "{0}/records.json"
resolver = "127.0.0.1:{1}"
legacy = {{ adapter = "command", command = ["/bin/sh", "{0}/adapter.sh"] }}

[apply.check]
resolver = "127.0.0.1:{1}"
port = {2}
ca_file = "{0}/certs/ca.pem"
timeout_ms = 3000
"#,
            d.display(),
            dns_port,
            port
        ),
    )
    .unwrap();
    let f = Fleet { dir, proxy, dns: format!("127.0.0.1:{dns_port}").parse().unwrap(), port, ca };
    let o = f.migrate(&["plan", "hosts/nas.nix", "--config", "migrate.toml", "--out", "plan.json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    f
}

fn wave(f: &Fleet, cmd: &str, n: usize, extra: &[&str]) -> (i32, String) {
    let w = n.to_string();
    let mut args =
        vec![cmd, "--wave", &w, "--host", "nas", "--config", "migrate.toml", "--plan", "plan.json"];
    args.extend_from_slice(extra);
    let o = f.migrate(&args);
    (o.status.code().unwrap_or(-1), format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn waves_move_services_keep_old_names_and_roll_back() {
    let f = fleet();
    assert_eq!(f.get("app1"), (200, "legacy app1".into()));
    // NDJSON events with --format json, one object per line.
    let (code, out) = wave(&f, "apply", 1, &["--dry-run", "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let events: Vec<serde_json::Value> =
        out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "would_run" && e["service"] == "nas/app1" && e["step"] == 0),
        "{out}"
    );
    // Dry run: every action printed, nothing changed.
    let (code, out) = wave(&f, "apply", 1, &["--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nas/app1 step 0: add the route"), "{out}");
    assert_eq!(f.get("app1"), (200, "legacy app1".into()));
    // Wave 1: the old name now leads to the proxy, which serves the app; the node is stopped.
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(f.resolve("app1.tailnet.test"), Some("127.0.20.1".parse().unwrap()));
    assert_eq!(f.get("app1"), (200, "app app1".into()));
    assert!(f.path("stopped-tsnsrv-app1.service").exists());
    assert_eq!(f.get("app2"), (200, "legacy app2".into()), "wave 2 untouched");
    // Wave 3 before wave 2: refused, nothing changed (exit 3).
    let (code, out) = wave(&f, "apply", 3, &[]);
    assert_eq!(code, 3, "{out}");
    let (code, out) = wave(&f, "apply", 2, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(f.get("app2"), (200, "app app2".into()));
    // Wave 3's service answers 500 through the proxy where its node answered 200: the check
    // fails and the wave is rolled back by the tool (exit 4), the legacy path restored.
    let (code, out) = wave(&f, "apply", 3, &[]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("rolling it back"), "{out}");
    assert_eq!(f.get("bad"), (200, "legacy bad".into()));
    assert!(!f.path("stopped-tsnsrv-bad.service").exists());
    // Rolling wave 1 back while wave 2 is applied: refused without --cascade.
    let (code, out) = wave(&f, "rollback", 1, &[]);
    assert_eq!(code, 3, "{out}");
    let (code, out) = wave(&f, "rollback", 2, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(f.get("app2"), (200, "legacy app2".into()));
    let (code, out) = wave(&f, "rollback", 1, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(f.get("app1"), (200, "legacy app1".into()));
    // Nothing of the waves is left: no route, no record, a clean status.
    let routes = std::fs::read_to_string(f.path("proxy-state/routes.json")).unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&routes).unwrap(), serde_json::json!([]));
    assert_eq!(std::fs::read_to_string(f.path("records.json")).unwrap(), "[]\n");
    let o = f.migrate(&["status", "--state-dir", "state"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

/// The lock's id left by a killed run.
fn lock_id(f: &Fleet) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.path("state/lock.json")).unwrap()).unwrap();
    v["id"].as_str().unwrap().to_string()
}

#[test]
fn a_killed_apply_is_reported_exactly_resumed_or_rolled_back() {
    let f = fleet();
    // Killed (SIGKILL, at the documented failpoint) after the intent to stop the legacy node.
    let o = run_to_failpoint(&f, "apply", "apply-nas/app1-3-intent");
    assert_eq!(o.status.code(), None, "killed by a signal: {}", stderr(&o));
    let o = f.migrate(&["status", "--state-dir", "state"]);
    assert_eq!(o.status.code(), Some(9), "{}", stdout(&o));
    assert!(stdout(&o).contains("nas/app1 step 3 (stop tsnsrv-app1.service)"), "{}", stdout(&o));
    assert!(stdout(&o).contains("stale"), "the dead run's lock is named: {}", stdout(&o));
    // The lock stays until someone looks: exit 8, then force-unlock.
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 8, "{out}");
    let id = lock_id(&f);
    assert_eq!(f.migrate(&["force-unlock", &id, "--state-dir", "state"]).status.code(), Some(0));
    // Resumed: the wave completes, the status is clean.
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("step 0: add the route: ok"), "done steps are not run again: {out}");
    assert_eq!(f.get("app1"), (200, "app app1".into()));
    assert_eq!(f.migrate(&["status", "--state-dir", "state"]).status.code(), Some(0));

    // A rollback killed halfway, then run again: nothing of the wave is left.
    let o = run_to_failpoint(&f, "rollback", "rollback-nas/app1-1-intent");
    assert_eq!(o.status.code(), None);
    assert_eq!(f.migrate(&["status", "--state-dir", "state"]).status.code(), Some(9));
    let id = lock_id(&f);
    assert_eq!(f.migrate(&["force-unlock", &id, "--state-dir", "state"]).status.code(), Some(0));
    let (code, out) = wave(&f, "rollback", 1, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(f.get("app1"), (200, "legacy app1".into()));
    assert_eq!(std::fs::read_to_string(f.path("records.json")).unwrap(), "[]\n");
    assert_eq!(f.migrate(&["status", "--state-dir", "state"]).status.code(), Some(0));
}

#[test]
fn another_plans_apply_makes_a_plan_stale_on_this_host() {
    let f = fleet();
    // A second plan, from a second policy file, moves app2 first.
    let text = std::fs::read_to_string(f.path("migrate.toml")).unwrap();
    let b =
        text.replace("\"nas/app1\" = 1\n\"nas/app2\" = 2", "\"nas/app1\" = 2\n\"nas/app2\" = 1");
    assert_ne!(b, text);
    std::fs::write(f.path("migrate-b.toml"), b).unwrap();
    let o =
        f.migrate(&["plan", "hosts/nas.nix", "--config", "migrate-b.toml", "--out", "plan-b.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = f.migrate(&[
        "apply",
        "--wave",
        "1",
        "--host",
        "nas",
        "--config",
        "migrate-b.toml",
        "--plan",
        "plan-b.json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    // The first plan was made before that change: it is stale here now (exit 7), untouched.
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 7, "{out}");
    assert!(out.contains("changed this host"), "{out}");
    assert_eq!(f.get("app1"), (200, "legacy app1".into()));
    // An edited plan file is refused too.
    let plan = std::fs::read_to_string(f.path("plan.json")).unwrap();
    let edited = plan.replacen("\"wave\": 1", "\"wave\": 2", 1);
    assert_ne!(edited, plan);
    std::fs::write(f.path("edited.json"), edited).unwrap();
    let o = f.migrate(&[
        "rollback",
        "--wave",
        "1",
        "--host",
        "nas",
        "--config",
        "migrate.toml",
        "--plan",
        "edited.json",
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert!(stderr(&o).contains("edited"), "{}", stderr(&o));
}

#[test]
fn status_reports_drift_between_the_state_and_the_live_side() {
    let f = fleet();
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 0, "{out}");
    let o = f.migrate(&["status", "--config", "migrate.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    // Someone emptied the proxy's table behind the tool's back.
    let o = Command::new("curl")
        .args(["-s", "-X", "PUT", "--data-binary", "[]", "--unix-socket"])
        .arg(f.path("proxy-state/admin.sock"))
        .arg("http://admin/routes")
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = f.migrate(&["status", "--config", "migrate.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("DRIFT: nas/app1: applied in wave 1, but the proxy has no route"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn an_interrupted_apply_stops_between_steps_and_resumes() {
    let f = fleet();
    let slow = std::fs::read_to_string(f.path("migrate.toml"))
        .unwrap()
        .replace("settle_ms = 100", "settle_ms = 1500");
    std::fs::write(f.path("slow.toml"), slow).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .current_dir(f.dir.path())
        .args([
            "apply",
            "--wave",
            "1",
            "--host",
            "nas",
            "--config",
            "slow.toml",
            "--plan",
            "plan.json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ctrl-C while it settles.
    let t = std::time::Instant::now();
    while !std::fs::read_to_string(f.path("state/journal.ndjson"))
        .unwrap_or_default()
        .contains("\"settle\"")
    {
        assert!(t.elapsed() < Duration::from_secs(20), "never reached the settle step");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("to resume"));
    // Nothing half-done, the lock released; status names the wave as interrupted (exit 9) with
    // the command that resumes it, and resuming completes the wave.
    let status = f.migrate(&["status", "--config", "slow.toml"]);
    assert_eq!(status.status.code(), Some(9));
    let text = stdout(&status);
    let printed = text
        .split("resume with `")
        .nth(1)
        .and_then(|r| r.split('`').next())
        .unwrap_or_else(|| panic!("no resume command: {text}"));
    assert!(printed.contains("--host nas --config slow.toml --plan "), "{printed}");
    assert!(!f.path("state/lock.json").exists());
    // The command status printed runs as printed: the host, the policy and the plan that
    // applied the wave (kept in the state directory) are named.
    let words: Vec<&str> = printed.split_whitespace().skip(1).collect();
    let o = f.migrate(&words);
    assert_eq!(o.status.code(), Some(0), "{printed}: {}{}", stdout(&o), stderr(&o));
    assert_eq!(f.get("app1"), (200, "app app1".into()));
}

/// A bounded client load through the old names, as browsers behave: the name re-resolved for
/// each new connection, an idempotent request retried once on a connection the server closed.
/// Returns (requests, failures, the bodies seen).
type Load = (u32, Vec<String>, std::collections::BTreeSet<String>);

fn load(
    f: &Fleet,
    name: &'static str,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Load> {
    let (dns, port, ca) = (f.dns, f.port, f.ca.clone());
    std::thread::spawn(move || {
        let fqdn = format!("{name}.tailnet.test");
        let (mut n, mut failed, mut seen) = (0u32, Vec::new(), std::collections::BTreeSet::new());
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            // Resolved again for every request (a new connection each time).
            let once = || match crate::util::get_by_name(dns, port, &ca, &fqdn) {
                (200, body) => Ok(body),
                (code, body) => Err(format!("{code}: {body:?}")),
            };
            n += 1;
            match once() {
                Ok(body) => {
                    seen.insert(body);
                }
                // One retry, as a browser does for an idempotent request.
                Err(first) => match once() {
                    Ok(body) => {
                        seen.insert(body);
                    }
                    Err(second) => failed.push(format!("{first}; retry: {second}")),
                },
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (n, failed, seen)
    })
}

#[test]
fn no_request_fails_through_an_apply_and_a_rollback() {
    let f = fleet();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = load(&f, "app1", stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 0, "{out}");
    std::thread::sleep(Duration::from_millis(300));
    let (code, out) = wave(&f, "rollback", 1, &[]);
    assert_eq!(code, 0, "{out}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (n, failed, seen) = client.join().unwrap();
    assert!(n > 20, "only {n} requests");
    // Both sides answered during the run: the legacy node, then the proxy, then the node again.
    assert!(seen.contains("legacy app1") && seen.contains("app app1"), "{seen:?}");
    assert!(failed.is_empty(), "{} of {n} requests failed: {failed:?}", failed.len());
}

#[test]
fn operator_confirmation_or_rollback_by_the_watcher() {
    let f = fleet();
    let text = std::fs::read_to_string(f.path("migrate.toml")).unwrap();
    let op = text.replace(
        "settle_ms = 100\n",
        "settle_ms = 100\nconfirm = \"operator\"\nconfirm_timeout_s = 2\n",
    );
    std::fs::write(f.path("migrate.toml"), op).unwrap();
    // Applied and checked, then paused for the operator (exit 6); the next wave waits for it.
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 6, "{out}");
    assert!(
        out.contains(
            "`migrate confirm --wave 1 --host nas --config migrate.toml --plan plan.json`"
        ),
        "the confirmation to run, as it runs: {out}"
    );
    assert_eq!(f.get("app1"), (200, "app app1".into()));
    let (code, out) = wave(&f, "apply", 2, &[]);
    assert_eq!(code, 3, "{out}");
    // With --format json, confirm prints only its JSON event.
    let o = f.migrate(&[
        "confirm",
        "--wave",
        "1",
        "--host",
        "nas",
        "--config",
        "migrate.toml",
        "--plan",
        "plan.json",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let event: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON event");
    assert_eq!(event["schema"], "tailshift.event/v1");
    assert_eq!(event["result"], "confirmed");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(f.get("app1"), (200, "app app1".into()), "confirmed: the watcher left it");
    // Wave 2 is not confirmed: the watcher, detached from the CLI that already exited, rolls
    // it back at the deadline.
    let (code, out) = wave(&f, "apply", 2, &[]);
    assert_eq!(code, 6, "{out}");
    assert_eq!(f.get("app2"), (200, "app app2".into()));
    let t = std::time::Instant::now();
    while f.get("app2") != (200, "legacy app2".into()) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "not rolled back: {}",
            std::fs::read_to_string(f.path("state/watcher.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let t = std::time::Instant::now();
    while f.path("state/lock.json").exists() {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(f.path("state/watcher.log")).unwrap();
    assert!(log.contains("no confirmation by the deadline"), "{log}");
    assert_eq!(f.get("app1"), (200, "app app1".into()), "the confirmed wave stays");
    // status says why wave 2 is gone (exit 2), until it is applied again.
    let status = f.migrate(&["status", "--config", "migrate.toml"]);
    assert_eq!(status.status.code(), Some(2), "{}", stdout(&status));
    assert!(stdout(&status).contains("ROLLED BACK BY THE WATCHER: wave 2"), "{}", stdout(&status));
}

#[test]
fn a_finalized_wave_can_no_longer_be_rolled_back() {
    let f = fleet();
    let (code, out) = wave(&f, "finalize", 1, &["--yes"]);
    assert_eq!(code, 3, "not applied yet: {out}");
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = wave(&f, "finalize", 1, &["--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("can no longer be rolled back"), "said before it starts: {out}");
    assert!(f.path("finalized-tsnsrv-app1.service").exists());
    let (code, out) = wave(&f, "rollback", 1, &[]);
    assert_eq!(code, 3, "{out}");
    assert_eq!(f.get("app1"), (200, "app app1".into()));
    // Finalizing again changes nothing; the next wave builds on it.
    assert_eq!(wave(&f, "finalize", 1, &["--yes"]).0, 0);
    assert_eq!(wave(&f, "apply", 2, &[]).0, 0);
}

#[test]
fn the_nix_adapter_disables_units_through_its_moves_file_and_a_switch() {
    let f = fleet();
    let d = f.dir.path().display().to_string();
    // Stands for `nixos-rebuild switch`: the units the module disables stop, the others run.
    std::fs::write(
        f.path("switch.sh"),
        format!(
            "#!/bin/sh\nrm -f {d}/stopped-tsnsrv-*\nfor u in $(grep -o '\"tsnsrv-[^\"]*\"' {d}/nixos/tailshift-moves.json | tr -d '\"'); do touch {d}/stopped-$u.service; done\necho switched >> {d}/switches\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(f.path("nixos")).unwrap();
    let text = std::fs::read_to_string(f.path("migrate.toml")).unwrap();
    let nix = text.replace(
        &format!("legacy = {{ adapter = \"command\", command = [\"/bin/sh\", \"{d}/adapter.sh\"] }}"),
        &format!("legacy = {{ adapter = \"nix\", module = \"{d}/nixos/tailshift.nix\", switch = [\"/bin/sh\", \"{d}/switch.sh\"] }}"),
    );
    assert_ne!(nix, text);
    std::fs::write(f.path("migrate.toml"), nix).unwrap();
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(!f.path("nixos/tailshift.nix").exists(), "data, not Nix code");
    assert!(f.path("stopped-tsnsrv-app1.service").exists());
    assert_eq!(f.get("app1"), (200, "app app1".into()));
    // The data tailshift's NixOS module reads (beside where an older tailshift rendered a
    // module): versioned, the unit.
    let moves = || -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(f.path("nixos/tailshift-moves.json")).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        moves(),
        serde_json::json!({"schema": "tailshift.moves/v1", "disabled_units": ["tsnsrv-app1"], "repoints": {}, "shared_processes": {}})
    );
    let (code, out) = wave(&f, "rollback", 1, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(moves()["disabled_units"], serde_json::json!([]), "rollback writes it back");
    assert!(!f.path("stopped-tsnsrv-app1.service").exists());
    assert_eq!(f.get("app1"), (200, "legacy app1".into()));
}

/// Whether nothing of wave 1 is left: the old name on its node, no route, no record.
fn clean(f: &Fleet) {
    assert_eq!(f.get("app1"), (200, "legacy app1".into()));
    let routes =
        std::fs::read_to_string(f.path("proxy-state/routes.json")).unwrap_or_else(|_| "[]".into());
    assert_eq!(serde_json::from_str::<serde_json::Value>(&routes).unwrap(), serde_json::json!([]));
    assert_eq!(
        std::fs::read_to_string(f.path("records.json")).unwrap_or_else(|_| "[]\n".into()),
        "[]\n"
    );
    assert!(!f.path("stopped-tsnsrv-app1.service").exists());
}

/// `migrate <cmd> --wave 1` on nas, stopped by SIGKILL at the failpoint `point`.
fn run_to_failpoint(f: &Fleet, cmd: &str, point: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_migrate"))
        .current_dir(f.dir.path())
        .args([
            cmd,
            "--wave",
            "1",
            "--host",
            "nas",
            "--config",
            "migrate.toml",
            "--plan",
            "plan.json",
        ])
        .env("TAILSHIFT_FAILPOINT", point)
        .output()
        .unwrap()
}

fn killed_at(f: &Fleet, cmd: &str, point: &str) {
    let o = run_to_failpoint(f, cmd, point);
    assert_eq!(o.status.code(), None, "{point}: not killed: {}{}", stdout(&o), stderr(&o));
    let status = f.migrate(&["status", "--state-dir", "state"]);
    // An intent without its result, or a service left applying or rolling back, with no live
    // owner: 9. Otherwise the stale lock alone: 2.
    let state = std::fs::read_to_string(f.path("state/state.json")).unwrap_or_default();
    let stuck = state.contains("\"applying\"") || state.contains("\"rolling-back\"");
    let want = if point.ends_with("-intent") || stuck { 9 } else { 2 };
    assert_eq!(status.status.code(), Some(want), "{point}: {}", stdout(&status));
    let id = lock_id(f);
    assert_eq!(
        f.migrate(&["force-unlock", &id, "--state-dir", "state"]).status.code(),
        Some(0),
        "{point}"
    );
}

#[test]
fn a_kill_at_every_journal_point_resumes_or_rolls_back_cleanly() {
    // Every step of the split-dns strategy: route, record, settle, stop, complete, verify.
    for step in 0..6 {
        for at in ["intent", "result"] {
            let point = format!("apply-nas/app1-{step}-{at}");
            // Resumed: the wave completes.
            let f = fleet();
            killed_at(&f, "apply", &point);
            let (code, out) = wave(&f, "apply", 1, &[]);
            assert_eq!(code, 0, "{point}: {out}");
            assert_eq!(f.get("app1"), (200, "app app1".into()), "{point}");
            assert_eq!(
                f.migrate(&["status", "--state-dir", "state"]).status.code(),
                Some(0),
                "{point}"
            );
            // Or rolled back instead: nothing is left behind.
            let f = fleet();
            killed_at(&f, "apply", &point);
            let (code, out) = wave(&f, "rollback", 1, &[]);
            assert_eq!(code, 0, "{point}: {out}");
            clean(&f);
            let st = f.migrate(&["status", "--state-dir", "state"]);
            let journal =
                std::fs::read_to_string(f.path("state/journal.ndjson")).unwrap_or_default();
            assert_eq!(st.status.code(), Some(0), "{point}: {}\n{journal}", stdout(&st));
        }
    }
    // A rollback killed at each of its own journal points, then run again.
    for step in [0, 1, 2, 3, 4] {
        for at in ["intent", "result"] {
            let point = format!("rollback-nas/app1-{step}-{at}");
            let f = fleet();
            assert_eq!(wave(&f, "apply", 1, &[]).0, 0);
            killed_at(&f, "rollback", &point);
            let (code, out) = wave(&f, "rollback", 1, &[]);
            assert_eq!(code, 0, "{point}: {out}");
            clean(&f);
        }
    }
}

#[test]
fn a_check_that_only_reaches_forward_auth_is_inconclusive_and_pauses() {
    let f = fleet();
    // An auth service that refuses everyone; app2's node refused the check the same way.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let auth = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let _ = s.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsign in");
        }
    });
    std::fs::write(f.path("legacy-status-app2"), "401").unwrap();
    let nix = std::fs::read_to_string(f.path("hosts/nas.nix")).unwrap();
    let guarded = nix.replacen(
        "app2 = { toURL",
        &format!("app2 = {{ authURL = \"http://127.0.0.1:{auth}\"; authPath = \"/verify\"; toURL"),
        1,
    );
    assert_ne!(guarded, nix);
    std::fs::write(f.path("hosts/nas.nix"), guarded).unwrap();
    let o = f.migrate(&["plan", "hosts/nas.nix", "--config", "migrate.toml", "--out", "plan.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(wave(&f, "apply", 1, &[]).0, 0);
    // 401 before, 401 after, both from the auth service: neither a pass nor a failure.
    let (code, out) = wave(&f, "apply", 2, &[]);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("inconclusive"), "{out}");
    assert_eq!(f.get("app2").0, 401);
    assert_eq!(f.resolve("app2.tailnet.test"), Some("127.0.20.1".parse().unwrap()));
    let (code, out) = wave(&f, "confirm", 2, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(f.migrate(&["status", "--config", "migrate.toml"]).status.code(), Some(0));
}

#[test]
fn checks_carry_the_policys_credentials_through_forward_auth() {
    let f = fleet();
    // An auth service that admits the cookie only.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let auth = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut ok = false;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                ok |= h.to_ascii_lowercase().starts_with("cookie: s=ok");
            }
            let resp: &[u8] = if ok {
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            };
            let _ = s.write_all(resp);
        }
    });
    let nix = std::fs::read_to_string(f.path("hosts/nas.nix")).unwrap();
    let guarded = nix.replacen(
        "app2 = { toURL",
        &format!("app2 = {{ authURL = \"http://127.0.0.1:{auth}\"; authPath = \"/verify\"; toURL"),
        1,
    );
    std::fs::write(f.path("hosts/nas.nix"), guarded).unwrap();
    std::fs::write(f.path("check-cookie"), "Cookie: s=ok\n").unwrap();
    let toml = std::fs::read_to_string(f.path("migrate.toml")).unwrap().replace(
        "[apply]",
        &format!(
            "[plan.checks.\"nas/app2\"]\ncredentials_file = \"{}\"\n\n[apply]",
            f.path("check-cookie").display()
        ),
    );
    std::fs::write(f.path("migrate.toml"), toml).unwrap();
    let o = f.migrate(&["plan", "hosts/nas.nix", "--config", "migrate.toml", "--out", "plan.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The plan names the file, never its contents.
    assert!(!std::fs::read_to_string(f.path("plan.json")).unwrap().contains("s=ok"));
    assert_eq!(wave(&f, "apply", 1, &[]).0, 0);
    let (code, out) = wave(&f, "apply", 2, &[]);
    assert_eq!(code, 0, "with the cookie the check passes through the auth service: {out}");
    // Without the credentials the same check gets the auth service's 401: a failure.
    assert_eq!(wave(&f, "rollback", 2, &[]).0, 0);
    std::fs::write(f.path("check-cookie"), "Cookie: s=wrong\n").unwrap();
    let (code, out) = wave(&f, "apply", 2, &[]);
    assert_eq!(code, 4, "{out}");
}

#[test]
fn bad_apply_input_is_exit_1_with_the_place() {
    let f = fleet();
    let (code, out) = wave(&f, "apply", 99, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--wave 99"), "{out}");
    let toml = std::fs::read_to_string(f.path("migrate.toml")).unwrap();
    std::fs::write(f.path("migrate.toml"), toml.replace("settle_ms = 100", "settle_ms = \"soon\""))
        .unwrap();
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("migrate.toml:") && out.contains("expected u64"), "{out}");
    let cut = toml.split("[apply]").next().unwrap().to_string();
    std::fs::write(f.path("migrate.toml"), cut).unwrap();
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no [apply] section"), "{out}");
}

#[test]
fn the_policy_decides_what_a_failed_check_does() {
    let f = fleet();
    let toml = std::fs::read_to_string(f.path("migrate.toml")).unwrap();
    std::fs::write(
        f.path("migrate.toml"),
        toml.replace(
            "settle_ms = 100\n",
            "settle_ms = 100\non_fail = \"pause\"\nconfirm_timeout_s = 600\n",
        ),
    )
    .unwrap();
    assert_eq!(wave(&f, "apply", 1, &[]).0, 0);
    assert_eq!(wave(&f, "apply", 2, &[]).0, 0);
    // `bad` answers 500 through the proxy: with on_fail = "pause" the wave stays for a person.
    let (code, out) = wave(&f, "apply", 3, &[]);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("on_fail = \"pause\""), "{out}");
    assert_eq!(f.get("bad").0, 500);
    let (code, out) = wave(&f, "rollback", 3, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(f.get("bad"), (200, "legacy bad".into()));
}

/// `GET /routes` on the proxy's admin socket.
fn installed_routes(f: &Fleet) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(f.path("proxy-state/admin.sock")).unwrap();
    s.write_all(b"GET /routes HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap()
}

#[test]
fn the_route_sealed_in_the_plan_is_the_route_installed() {
    let f = fleet();
    // A plan whose sealed route differs from what the conversion makes of the inventory entry
    // today: edited here, then sealed again with the plan file's own sealing function.
    let mut plan = tailshift_plans::plan_file::read(&f.path("plan.json")).unwrap();
    let s = plan.services.iter_mut().find(|s| s.id == "nas/app1").unwrap();
    let route = s.route.as_mut().expect("the plan seals a route for each planned service");
    route.upstream_headers.insert("X-Sealed".into(), "in-the-plan".into());
    route.whois.timeout_ms = 4321;
    let sealed = serde_json::to_value(&*route).unwrap();
    let plan = tailshift_plans::plan_file::reseal(plan);
    assert!(tailshift_plans::plan_file::intact(&plan));
    tailshift_plans::plan_file::write_atomic(
        &f.path("plan.json"),
        &tailshift_plans::plan_file::to_text(&plan),
    )
    .unwrap();
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 0, "{out}");
    let installed = installed_routes(&f);
    let app1 = installed.as_array().unwrap().iter().find(|r| r["service"] == "nas/app1").unwrap();
    assert_eq!(app1, &sealed);
}

#[test]
fn each_wave_command_takes_its_own_flags_and_a_dry_run_changes_nothing() {
    let f = fleet();
    // Flags meant for another command are refused, not ignored.
    assert_eq!(wave(&f, "apply", 1, &["--cascade"]).0, 1);
    assert_eq!(wave(&f, "confirm", 1, &["--dry-run"]).0, 1);
    assert_eq!(wave(&f, "rollback", 1, &["--yes"]).0, 1);
    // A typo in the host is an error with a suggestion, not "no service on storgae".
    let o = f.migrate(&["apply", "--wave", "1", "--host", "nsa", "--config", "migrate.toml"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("did you mean --host nas"), "{}", stderr(&o));
    // Without --host: this machine's name only when the plan has it.
    let o = f.migrate(&["apply", "--wave", "1", "--config", "migrate.toml"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("the plan's hosts: nas"), "{}", stderr(&o));
    // A state directory given explicitly must exist.
    assert_eq!(f.migrate(&["status", "--state-dir", "stat"]).status.code(), Some(1));
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 0, "{out}");
    let before = std::fs::read(f.path("state/state.json")).unwrap();
    let journal = std::fs::read(f.path("state/journal.ndjson")).unwrap();
    // Dry runs of rollback and finalize: the steps with their effects, nothing changed.
    let (code, out) = wave(&f, "rollback", 1, &["--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("undo: remove the route"), "{out}");
    assert!(out.contains("TAILSHIFT_ACTION=start"), "the adapter's environment: {out}");
    let (code, out) = wave(&f, "finalize", 1, &["--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("TAILSHIFT_ACTION=finalize"), "{out}");
    assert_eq!(std::fs::read(f.path("state/state.json")).unwrap(), before);
    assert_eq!(std::fs::read(f.path("state/journal.ndjson")).unwrap(), journal);
    assert_eq!(f.get("app1"), (200, "app app1".into()));
    assert!(!f.path("finalized-tsnsrv-app1.service").exists());
    // Finalize cannot be undone: without a terminal it needs --yes.
    let (code, out) = wave(&f, "finalize", 1, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("pass --yes"), "{out}");
    assert!(!f.path("finalized-tsnsrv-app1.service").exists());
}

#[test]
fn a_cascade_rolls_back_every_later_wave_first() {
    let f = fleet();
    assert_eq!(wave(&f, "apply", 1, &[]).0, 0);
    assert_eq!(wave(&f, "apply", 2, &[]).0, 0);
    let (code, out) = wave(&f, "rollback", 1, &["--cascade"]);
    assert_eq!(code, 0, "{out}");
    let two = out.find("wave 2 rolled back").expect(&out);
    let one = out.find("wave 1 rolled back").expect(&out);
    assert!(two < one, "newest first: {out}");
    assert_eq!(f.get("app1"), (200, "legacy app1".into()));
    assert_eq!(f.get("app2"), (200, "legacy app2".into()));
    assert_eq!(f.migrate(&["status", "--state-dir", "state"]).status.code(), Some(0));
}

#[test]
fn an_apply_over_an_unfinished_rollback_is_refused_with_the_command_that_completes_it() {
    let f = fleet();
    assert_eq!(wave(&f, "apply", 1, &[]).0, 0);
    // The rollback is killed after its first undo step.
    let o = run_to_failpoint(&f, "rollback", "rollback-nas/app1-4-result");
    assert_eq!(o.status.code(), None, "{}{}", stdout(&o), stderr(&o));
    let id = lock_id(&f);
    assert_eq!(f.migrate(&["force-unlock", &id, "--state-dir", "state"]).status.code(), Some(0));
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 9, "{out}");
    assert!(out.contains("complete it first with `migrate rollback --wave 1 --host nas"), "{out}");
    let status = f.migrate(&["status", "--state-dir", "state", "--config", "migrate.toml"]);
    assert_eq!(status.status.code(), Some(9), "{}", stdout(&status));
    // The rollback completes it.
    let (code, out) = wave(&f, "rollback", 1, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(f.get("app1"), (200, "legacy app1".into()));
}

#[test]
fn a_wave_applied_by_the_binary_before_issue_16_is_rolled_back() {
    let f = fleet();
    // The world as the old binary left it (route, record, stopped unit): made here by applying
    // wave 1, then the state directory and plan replaced by the old binary's own.
    assert_eq!(wave(&f, "apply", 1, &[]).0, 0);
    let fixture = crate::util::root().join("tests/data/state-before-issue-16");
    for file in ["state.json", "journal.ndjson"] {
        std::fs::copy(fixture.join(file), f.path("state").join(file)).unwrap();
    }
    std::fs::copy(fixture.join("plan.json"), f.path("plan.json")).unwrap();
    let old = tailshift_plans::plan_file::read(&f.path("plan.json")).unwrap();
    assert_eq!(old.format_version, 1);
    assert!(old.services.iter().all(|s| s.route.is_none()), "format 1 has no sealed routes");
    let (code, out) = wave(&f, "rollback", 1, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(f.get("app1"), (200, "legacy app1".into()));
    assert!(!f.path("stopped-tsnsrv-app1.service").exists());
    assert_eq!(installed_routes(&f), serde_json::json!([]));
    assert_eq!(std::fs::read_to_string(f.path("records.json")).unwrap(), "[]\n");
    assert_eq!(f.migrate(&["status", "--state-dir", "state"]).status.code(), Some(0));
    // Applying with it is refused: it holds no routes to install.
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_ne!(code, 0, "{out}");
}

/// An adapter whose `stop` takes `secs`, marking when it starts and when it ends.
fn slow_adapter(f: &Fleet, secs: u32) {
    let d = f.dir.path().display();
    std::fs::write(
        f.path("adapter.sh"),
        format!(
            "#!/bin/sh\ncase \"$TAILSHIFT_ACTION\" in\n  stop) touch {d}/started-$TAILSHIFT_UNIT; sleep {secs}; touch {d}/stopped-$TAILSHIFT_UNIT ;;\n  start) rm -f {d}/stopped-$TAILSHIFT_UNIT ;;\n  *) exit 0 ;;\nesac\n"
        ),
    )
    .unwrap();
}

/// `migrate apply --wave 1` in a process group of its own, as a terminal runs a foreground job.
fn apply_in_own_group(f: &Fleet) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    Command::new(env!("CARGO_BIN_EXE_migrate"))
        .current_dir(f.dir.path())
        .args(["apply", "--wave", "1", "--host", "nas", "--config", "migrate.toml"])
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for(path: &Path) {
    let t = std::time::Instant::now();
    while !path.exists() {
        assert!(t.elapsed() < Duration::from_secs(30), "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ctrl-C at a terminal: the signal goes to the whole foreground process group.
fn ctrl_c(child: &std::process::Child) {
    // SAFETY: signalling the process group the test created.
    unsafe {
        libc::killpg(child.id() as i32, libc::SIGINT);
    }
}

#[test]
fn ctrl_c_lets_the_running_adapter_finish_then_stops_resumable() {
    let f = fleet();
    slow_adapter(&f, 2);
    let child = apply_in_own_group(&f);
    wait_for(&f.path("started-tsnsrv-app1.service"));
    ctrl_c(&child);
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("to resume"), "{err}");
    // The adapter was not killed with the command: its step finished whole.
    assert!(f.path("stopped-tsnsrv-app1.service").exists(), "{err}");
    let status = f.migrate(&["status", "--state-dir", "state"]);
    assert_eq!(status.status.code(), Some(9), "{}", stdout(&status));
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(f.get("app1"), (200, "app app1".into()));
}

#[test]
fn a_second_signal_says_what_runs_and_a_third_stops_the_adapter() {
    let f = fleet();
    slow_adapter(&f, 60);
    let started = std::time::Instant::now();
    let child = apply_in_own_group(&f);
    wait_for(&f.path("started-tsnsrv-app1.service"));
    ctrl_c(&child);
    std::thread::sleep(Duration::from_millis(300));
    ctrl_c(&child);
    std::thread::sleep(Duration::from_millis(300));
    ctrl_c(&child);
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("still running: /bin/sh"), "{err}");
    assert!(err.contains("stopped by a third signal"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "the adapter was stopped, not awaited");
    assert!(!f.path("stopped-tsnsrv-app1.service").exists(), "the adapter did not finish");
    // Resumable: the stop step runs again.
    slow_adapter(&f, 0);
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn an_adapter_past_its_timeout_is_stopped_and_the_wave_rolled_back() {
    let f = fleet();
    slow_adapter(&f, 60);
    let toml = std::fs::read_to_string(f.path("migrate.toml")).unwrap();
    std::fs::write(
        f.path("migrate.toml"),
        toml.replace("settle_ms = 100\n", "settle_ms = 100\nadapter_timeout_s = 1\n"),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("still running after 1 s ([apply] adapter_timeout_s); stopped"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(f.get("app1"), (200, "legacy app1".into()));
}

#[test]
fn a_rollback_of_a_wave_never_applied_says_so_and_writes_nothing() {
    let f = fleet();
    let (code, out) = wave(&f, "rollback", 1, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing of wave 1 is applied on nas: nothing to roll back"), "{out}");
    assert!(!f.path("state/state.json").exists(), "nothing written");
    assert!(!f.path("state/journal.ndjson").exists(), "nothing journaled");
}

#[test]
fn a_state_that_cannot_be_saved_mid_wave_is_exit_9_not_bad_input() {
    let f = fleet();
    let d = f.dir.path().display();
    // The legacy adapter's stop succeeds, but the state file can no longer be replaced (a
    // directory now stands where it was): the wave stops after changing things.
    std::fs::write(
        f.path("adapter.sh"),
        format!(
            "#!/bin/sh\ncase \"$TAILSHIFT_ACTION\" in\n  stop) rm -f {d}/state/state.json; mkdir -p {d}/state/state.json/x ;;\n  *) exit 0 ;;\nesac\n"
        ),
    )
    .unwrap();
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 9, "{out}");
    assert!(out.contains("the command stopped after changing things"), "{out}");
    assert!(out.contains("migrate status --state-dir"), "{out}");
    // A usage error, before anything is journaled, stays exit 1.
    let (code, out) = wave(&f, "apply", 1, &["--host", "nass"]);
    assert_eq!(code, 1, "{out}");
}

/// The fleet's services run by the fork's one `tsnsrv-all` process, driven by the `systemd`
/// adapter. `systemctl` is the host's, emulated on PATH: the unit is one process for all of
/// nas's legacy names, so a restart silences every one of them, then brings back those its
/// configuration lists (the drop-in's YAML, else all three).
fn shared_process_fleet() -> Fleet {
    let f = fleet();
    let d = f.dir.path().display().to_string();
    let o = f.migrate(&[
        "plan",
        "hosts/nas.nix",
        "--tsnsrv",
        "fork-all",
        "--config",
        "migrate.toml",
        "--out",
        "plan.json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::create_dir_all(f.path("bin")).unwrap();
    std::fs::write(
        f.path("bin/systemctl"),
        format!(
            r#"#!/bin/sh
echo "$*" >> {d}/systemctl.log
all="app1 app2 bad"
down() {{ for n in $all; do touch {d}/stopped-tsnsrv-$n.service; done; }}
case "$1" in
  daemon-reload|unmask) ;;
  mask) touch {d}/masked ;;
  stop) down ;;
  start|restart)
    down
    sleep 0.5
    conf=$(sed -n 's/^LoadCredential=tailshift-config://p' {d}/systemd/tsnsrv-all.service.d/50-tailshift.conf 2>/dev/null)
    for n in $all; do
      if [ -z "$conf" ] || grep -q "^- name: $n\$" "$conf"; then rm -f {d}/stopped-tsnsrv-$n.service; fi
    done ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
"#
        ),
    )
    .unwrap();
    std::process::Command::new("chmod").arg("+x").arg(f.path("bin/systemctl")).status().unwrap();
    let toml = std::fs::read_to_string(f.path("migrate.toml")).unwrap();
    let systemd = toml
        .lines()
        .map(|l| {
            if l.starts_with("legacy = ") {
                format!("legacy = {{ adapter = \"systemd\" }}\nsystemd_dir = \"{d}/systemd\"\ntsnsrv = \"/usr/bin/tsnsrv\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(f.path("migrate.toml"), systemd).unwrap();
    f
}

/// A wave command with the emulated `systemctl` first on PATH.
fn shared_wave(f: &Fleet, cmd: &str, n: usize) -> (i32, String) {
    let w = n.to_string();
    let path = format!("{}:{}", f.path("bin").display(), std::env::var("PATH").unwrap_or_default());
    let o = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args([
            cmd,
            "--wave",
            &w,
            "--host",
            "nas",
            "--config",
            "migrate.toml",
            "--plan",
            "plan.json",
        ])
        .current_dir(f.dir.path())
        .env("PATH", path)
        .output()
        .unwrap();
    (o.status.code().unwrap_or(-1), format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn a_wave_takes_its_services_out_of_the_forks_shared_process_and_the_others_answer_again() {
    let f = shared_process_fleet();
    // The plan states the restart and its cost.
    let o = f.migrate(&["plan", "--check", "plan.json", "--config", "migrate.toml"]);
    let plan = std::fs::read_to_string(f.path("plan.json")).unwrap();
    assert!(plan.contains("shared_process"), "{}", stderr(&o));
    assert!(plan.contains("wave 1 (2 remain, ~6 s)"), "the forecast restart cost: {plan}");
    let (code, out) = shared_wave(&f, "apply", 1);
    assert_eq!(code, 0, "{out}");
    // app1 moved; the process was restarted once, and its other names answer again.
    assert_eq!(f.get("app1"), (200, "app app1".into()));
    assert_eq!(f.get("app2"), (200, "legacy app2".into()));
    assert_eq!(f.get("bad"), (200, "legacy bad".into()));
    let log = || std::fs::read_to_string(f.path("systemctl.log")).unwrap_or_default();
    assert_eq!(log().matches("restart tsnsrv-all.service").count(), 1, "{}", log());
    assert!(
        !log().lines().any(|l| l.starts_with("stop") || l.starts_with("mask")),
        "never stopped: {}",
        log()
    );
    assert!(out.contains("baseline nas/app2 (stays in tsnsrv-all.service)"), "{out}");
    // The drop-in points the unit at the YAML of what remains (0600: a credential).
    let dropin =
        std::fs::read_to_string(f.path("systemd/tsnsrv-all.service.d/50-tailshift.conf")).unwrap();
    assert!(
        dropin.contains("ExecStart=\nExecStart=/usr/bin/tsnsrv -config=%d/tailshift-config"),
        "{dropin}"
    );
    let yaml = std::fs::read_to_string(f.path("state/shared/tsnsrv-all.yaml")).unwrap();
    assert!(yaml.contains("- name: app2") && yaml.contains("- name: bad"), "{yaml}");
    assert!(!yaml.contains("app1"), "{yaml}");
    assert!(yaml.contains("stateDir: /var/lib/tsnsrv-all/app2"), "state kept: {yaml}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            std::fs::metadata(f.path("state/shared/tsnsrv-all.yaml")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The next wave takes one more out: one more restart.
    let (code, out) = shared_wave(&f, "apply", 2);
    assert_eq!(code, 0, "{out}");
    assert_eq!(f.get("app2"), (200, "app app2".into()));
    assert_eq!(f.get("bad"), (200, "legacy bad".into()));
    assert_eq!(log().matches("restart").count(), 2, "{}", log());
    // Rollback gives the process back its services, the drop-in rewritten, then removed.
    let (code, out) = shared_wave(&f, "rollback", 2);
    assert_eq!(code, 0, "{out}");
    assert_eq!(f.get("app2"), (200, "legacy app2".into()));
    assert_eq!(f.get("bad"), (200, "legacy bad".into()));
    assert!(
        std::fs::read_to_string(f.path("state/shared/tsnsrv-all.yaml")).unwrap().contains("app2")
    );
    let (code, out) = shared_wave(&f, "rollback", 1);
    assert_eq!(code, 0, "{out}");
    assert!(!f.path("systemd/tsnsrv-all.service.d/50-tailshift.conf").exists());
    for (n, want) in [("app1", 200), ("app2", 200), ("bad", 200)] {
        assert_eq!(f.get(n), (want, format!("legacy {n}")));
    }
    assert_eq!(log().matches("restart").count(), 4, "{}", log());
    assert_eq!(f.migrate(&["status", "--state-dir", "state"]).status.code(), Some(0));
}

#[test]
fn a_shared_process_whose_remaining_yaml_cannot_be_written_is_refused_before_any_change() {
    let f = shared_process_fleet();
    // app2's upstream becomes unknown to the inventory: its YAML entry cannot be written.
    let nix = std::fs::read_to_string(f.path("hosts/nas.nix")).unwrap();
    let up = nix.lines().find(|l| l.contains("app2 =")).unwrap().to_string();
    std::fs::write(
        f.path("hosts/nas.nix"),
        nix.replace(&up, "      app2 = { toURL = builtins.readFile ./url; };"),
    )
    .unwrap();
    let o = f.migrate(&[
        "plan",
        "hosts/nas.nix",
        "--tsnsrv",
        "fork-all",
        "--config",
        "migrate.toml",
        "--out",
        "plan.json",
        "--accept-unknown",
    ]);
    if o.status.code() != Some(0) {
        eprintln!("skipped: the planner refused the unknown toURL: {}", stderr(&o));
        return;
    }
    let (code, out) = shared_wave(&f, "apply", 1);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("cannot write the YAML of the services that remain"), "{out}");
    assert!(!f.path("systemctl.log").exists(), "nothing ran");
    assert_eq!(f.get("app1"), (200, "legacy app1".into()));
    assert!(!f.path("state/journal.ndjson").exists(), "nothing was journaled");
}

#[test]
fn the_nix_adapter_puts_what_remains_of_the_shared_process_in_the_moves_file() {
    let f = shared_process_fleet();
    let d = f.dir.path().display().to_string();
    // Stands for `nixos-rebuild switch` evaluating tailshift's module: the one process
    // restarts (all its names silent), then serves what the moves file leaves in it.
    std::fs::write(
        f.path("switch.sh"),
        format!(
            "#!/bin/sh\nm={d}/nixos/tailshift-moves.json\nfor n in app1 app2 bad; do touch {d}/stopped-tsnsrv-$n.service; done\nsleep 0.3\nfor n in app1 app2 bad; do\n  if ! grep -q config_yaml $m 2>/dev/null || grep -q \"name: $n\\\\\\\\n\" $m; then rm -f {d}/stopped-tsnsrv-$n.service; fi\ndone\necho switched >> {d}/switches\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(f.path("nixos")).unwrap();
    let toml = std::fs::read_to_string(f.path("migrate.toml")).unwrap();
    std::fs::write(
        f.path("migrate.toml"),
        toml.replace(
            "legacy = { adapter = \"systemd\" }",
            &format!("legacy = {{ adapter = \"nix\", data = \"{d}/nixos/tailshift-moves.json\", switch = [\"/bin/sh\", \"{d}/switch.sh\"] }}"),
        ),
    )
    .unwrap();
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 0, "{out}");
    let moves = || -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(f.path("nixos/tailshift-moves.json")).unwrap(),
        )
        .unwrap()
    };
    let m = moves();
    assert_eq!(m["disabled_units"], serde_json::json!([]), "the unit is never disabled: {m}");
    assert_eq!(m["shared_processes"]["tsnsrv-all"]["services"], serde_json::json!(["app2", "bad"]));
    let yaml = m["shared_processes"]["tsnsrv-all"]["config_yaml"].as_str().unwrap();
    assert!(yaml.contains("- name: app2\n") && !yaml.contains("app1"), "{yaml}");
    assert_eq!(f.get("app1"), (200, "app app1".into()));
    assert_eq!(f.get("app2"), (200, "legacy app2".into()));
    assert_eq!(f.get("bad"), (200, "legacy bad".into()));
    let (code, out) = wave(&f, "rollback", 1, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(moves()["shared_processes"], serde_json::json!({}), "rollback writes it back");
    assert_eq!(f.get("app1"), (200, "legacy app1".into()));
    assert_eq!(f.get("app2"), (200, "legacy app2".into()));
}

#[test]
fn a_kept_node_the_systemd_adapter_cannot_repoint_is_refused_before_any_change() {
    let f = fleet();
    let d = f.dir.path().display().to_string();
    let toml = std::fs::read_to_string(f.path("migrate.toml")).unwrap();
    let toml = toml
        .replace("[plan.pins]", "[plan.strategies]\n\"nas/app1\" = \"keep-node\"\n\n[plan.pins]")
        .lines()
        .map(|l| {
            if l.starts_with("legacy = ") {
                format!("legacy = {{ adapter = \"systemd\" }}\n\n[apply.keep_node]\ndir = \"{d}/kept\"\n")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    // [apply.keep_node] must come after the [apply] keys: move the table to the end.
    let (head, kept) = toml.split_once("\n[apply.keep_node]").unwrap();
    let (kept, rest) = kept.split_once("\n[apply.check]").unwrap();
    std::fs::write(
        f.path("migrate.toml"),
        format!("{head}\n[apply.check]{rest}\n[apply.keep_node]{kept}\n"),
    )
    .unwrap();
    let o = f.migrate(&["plan", "hosts/nas.nix", "--config", "migrate.toml", "--out", "plan.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (code, out) = wave(&f, "apply", 1, &[]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(
            "nas/app1: keep-node re-points tsnsrv-app1.service, which the systemd adapter cannot do"
        ),
        "{out}"
    );
    assert!(!f.path("state/journal.ndjson").exists(), "nothing was journaled");
}

#[test]
fn finalize_removes_only_the_moved_nodes_state() {
    let f = fleet();
    let d = f.dir.path().display().to_string();
    std::fs::write(f.path("switch.sh"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::create_dir_all(f.path("nixos")).unwrap();
    let text = std::fs::read_to_string(f.path("migrate.toml")).unwrap();
    let nix = text.replace(
        &format!("legacy = {{ adapter = \"command\", command = [\"/bin/sh\", \"{d}/adapter.sh\"] }}"),
        &format!("legacy = {{ adapter = \"nix\", module = \"{d}/nixos/tailshift.nix\", switch = [\"/bin/sh\", \"{d}/switch.sh\"] }}\nlegacy_state_root = \"{d}/var-lib\""),
    );
    assert_ne!(nix, text);
    std::fs::write(f.path("migrate.toml"), nix).unwrap();
    // systemd's DynamicUser layout: the state under private/, a symlink beside it.
    for node in ["tsnsrv-app1", "tsnsrv-app2"] {
        std::fs::create_dir_all(f.path(&format!("var-lib/private/{node}"))).unwrap();
        std::fs::write(f.path(&format!("var-lib/private/{node}/tailscaled.state")), "{}").unwrap();
        std::os::unix::fs::symlink(format!("private/{node}"), f.path(&format!("var-lib/{node}")))
            .unwrap();
    }
    assert_eq!(wave(&f, "apply", 1, &[]).0, 0);
    let (code, out) = wave(&f, "finalize", 1, &["--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("var-lib/private/tsnsrv-app1 and the symlink"), "{out}");
    assert!(f.path("var-lib/private/tsnsrv-app1").exists(), "a dry run removes nothing");
    let (code, out) = wave(&f, "finalize", 1, &["--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(!f.path("var-lib/private/tsnsrv-app1").exists(), "{out}");
    assert!(std::fs::symlink_metadata(f.path("var-lib/tsnsrv-app1")).is_err());
    // Another service's node is untouched.
    assert!(f.path("var-lib/private/tsnsrv-app2/tailscaled.state").exists());
    assert!(std::fs::symlink_metadata(f.path("var-lib/tsnsrv-app2")).is_ok());
}

#[test]
fn each_service_is_undone_with_the_plan_that_applied_it() {
    let f = fleet();
    assert_eq!(wave(&f, "apply", 1, &[]).0, 0);
    // The plan kept in the state directory, by its id, readable by its owner only.
    let plan = tailshift_plans::plan_file::read(&f.path("plan.json")).unwrap();
    let kept = f.path(&format!("state/plans/{}.json", plan.plan_id));
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // A new plan in which nas/app1 sits in wave 2 and wave 1 holds another service.
    let toml = std::fs::read_to_string(f.path("migrate.toml")).unwrap();
    std::fs::write(
        f.path("migrate.toml"),
        toml.replace("\"nas/app1\" = 1\n\"nas/app2\" = 2", "\"nas/app1\" = 2\n\"nas/app2\" = 1"),
    )
    .unwrap();
    let o = f.migrate(&["plan", "hosts/nas.nix", "--config", "migrate.toml", "--out", "plan.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Rolling back wave 1 undoes what wave 1 of the applying plan did: app1.
    let (code, out) = wave(&f, "rollback", 1, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nas/app1"), "{out}");
    assert_eq!(f.get("app1"), (200, "legacy app1".into()));
    assert_eq!(f.get("app2"), (200, "legacy app2".into()), "never touched");
    assert_eq!(f.migrate(&["status", "--state-dir", "state"]).status.code(), Some(0));
}
