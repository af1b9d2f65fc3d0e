//! `migrate demo` end to end: the whole example homelab migrated on loopback, judged from the
//! JSON summary and from outside (nothing of it may be left running or listening); Ctrl-C in
//! the middle; and a real browser opening a service by its old name before and after its wave.

use crate::util::{migrate, stderr, stdout};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Addresses of the demo that must not accept connections once it is gone.
fn demo_addresses(env: &Value) -> Vec<SocketAddr> {
    let port = env["https_port"].as_u64().unwrap() as u16;
    let mut a: Vec<SocketAddr> = env["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["proxy"].as_str().unwrap().parse().unwrap())
        .collect();
    for s in env["services"].as_array().unwrap() {
        a.push(SocketAddr::new(s["node"].as_str().unwrap().parse().unwrap(), port));
    }
    a.push(env["dns"].as_str().unwrap().parse().unwrap());
    a
}

/// Processes whose command line names the demo's directory.
fn processes_naming(dir: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(dir) {
            found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    found
}

fn assert_gone(env: &Value) {
    let dir = env["directory"].as_str().unwrap();
    assert!(!Path::new(dir).exists(), "{dir} is left behind");
    assert_eq!(processes_naming(dir), Vec::<String>::new(), "processes left");
    for a in demo_addresses(env) {
        assert!(
            TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_err(),
            "{a} still accepts connections"
        );
    }
    let dns: SocketAddr = env["dns"].as_str().unwrap().parse().unwrap();
    assert!(
        tailshift_shims::dns::query(dns, "auth.tailnet.test", Duration::from_millis(500)).is_err(),
        "the responder still answers"
    );
}

fn round_ok(r: &Value, when: &str) {
    assert_eq!(r["answered"], r["names"], "{when}: {r}");
    assert_eq!(r["misplaced"].as_array().unwrap().len(), 0, "{when}: {r}");
}

#[test]
fn the_demo_moves_every_wave_keeps_every_name_and_leaves_nothing_behind() {
    let o = migrate(&["demo", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let s: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(s["schema"], "tailshift.demo/v1");
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["services"], 70);
    // Every wave of the plan applied, every old name answering from where the plan put it.
    let waves = s["waves"].as_array().unwrap();
    assert_eq!(waves.len() as u64, s["plan"]["waves"].as_u64().unwrap());
    assert!(waves.len() >= 4, "{}", waves.len());
    for w in waves {
        assert_eq!(w["applied"], true, "{w}");
        round_ok(&w["check"], &format!("after wave {}", w["wave"]));
    }
    let last = &waves[waves.len() - 1]["check"];
    assert_eq!(last["from_proxy"], s["plan"]["planned"], "every planned name ends on a proxy");
    // The last wave went back and forward again.
    let r = &s["rollback"];
    assert_eq!(r["wave"].as_u64(), Some(waves.len() as u64));
    assert_eq!(r["rolled_back"], true);
    assert_eq!(r["reapplied"], true);
    round_ok(&r["after_rollback"], "after the rollback");
    round_ok(&r["after_reapply"], "after the re-apply");
    assert!(
        r["after_rollback"]["from_proxy"].as_u64() < r["after_reapply"]["from_proxy"].as_u64(),
        "{r}"
    );
    assert_eq!(s["every_name_answered"], true);
    // Requests, measured: many, none failed.
    assert_eq!(s["requests"]["kind"], "measured");
    assert_eq!(s["requests"]["failed"], 0, "{}", s["requests"]);
    assert!(s["requests"]["total"].as_u64().unwrap() >= 70 * 10);
    // cloud's one tsnsrv-all process lost its moved services in restarts (its names silent
    // meanwhile, counted apart), and every name answered again after each.
    assert!(s["requests"]["shared_restarts"].as_u64().unwrap() >= 1, "{}", s["requests"]);
    // Legacy nodes: all before, only the held-back (Funnel) ones after.
    let held = s["plan"]["held_back"].as_array().unwrap().len() as u64;
    assert_eq!(s["legacy_nodes"]["before"], 70);
    assert_eq!(s["legacy_nodes"]["after"].as_u64(), Some(held));
    // The proxies' cost, from /proc, and the forecast labelled as such.
    let proxies = s["proxies"]["proxies"].as_array().unwrap();
    assert_eq!(proxies.len(), 2);
    let routes: u64 = proxies.iter().map(|p| p["routes"].as_u64().unwrap()).sum();
    assert_eq!(Some(routes), s["plan"]["planned"].as_u64());
    for p in proxies {
        assert!(p["rss_kib"].as_u64().unwrap() > 1000, "{p}");
        assert!(p["cpu_ms"].as_u64().is_some(), "{p}");
    }
    assert_eq!(s["forecast"]["kind"], "forecast");
    assert_eq!(s["forecast"]["nodes_retired"], s["plan"]["planned"]);
    assert_eq!(s["large_body"]["bytes"].as_u64(), Some(64 << 20));
    assert_eq!(s["websocket_echo"]["echoed"], true);
    // Nothing left: by its own account, and from outside.
    let c = &s["cleanup"];
    assert_eq!(c["processes_left"], 0, "{c}");
    assert_eq!(c["listening_left"].as_array().unwrap().len(), 0, "{c}");
    assert_eq!(c["directory_removed"], true, "{c}");
    assert_gone(&s["environment"]);
}

#[test]
fn ctrl_c_in_the_middle_of_a_wave_stops_and_removes_everything() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["demo", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in err.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        // Waves have started: interrupt during the second one.
        if line.contains("wave  1") {
            break;
        }
    }
    std::thread::spawn(move || for _ in err {});
    assert!(seen.contains("wave  1"), "{seen}");
    // The terminal's Ctrl-C: SIGINT to the demo.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stdout));
    let s: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(s["ok"], false);
    assert_eq!(s["cleanup"]["processes_left"], 0, "{s}");
    assert_gone(&s["environment"]);
}

#[test]
fn a_bad_services_count_is_refused_naming_the_flag() {
    let o = migrate(&["demo", "--services", "0", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--services"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("inventory"), "refused before anything started: {}", stderr(&o));
}

/// A headless Chromium driven through chromedriver (the W3C WebDriver protocol over HTTP).
struct Browser {
    driver: Child,
    base: String,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn wd(method: &str, url: &str, body: Option<Value>) -> Value {
    let text = match body {
        Some(b) => ureq::post(url)
            .header("Content-Type", "application/json")
            .send(b.to_string())
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
            .body_mut()
            .read_to_string()
            .unwrap(),
        None => ureq::get(url)
            .call()
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
            .body_mut()
            .read_to_string()
            .unwrap(),
    };
    serde_json::from_str(&text).unwrap()
}

impl Browser {
    /// Launches Chromium with the names mapped to addresses and the development CA trusted.
    fn launch(rules: &str, spki: &str, profile: &Path) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while ureq::get(&format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap();
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": binary, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1000,700",
                format!("--user-data-dir={}", profile.display()),
                format!("--host-resolver-rules={rules}"),
                format!("--ignore-certificate-errors-spki-list={spki}"),
            ]}
        }}});
        let r = wd("POST", &format!("{base}/session"), Some(caps));
        let session = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("{r}")).to_string();
        Browser { driver, base, session }
    }

    fn open(&self, url: &str) {
        wd(
            "POST",
            &format!("{}/session/{}/url", self.base, self.session),
            Some(serde_json::json!({"url": url})),
        );
    }

    fn text(&self, id: &str) -> String {
        let r = wd(
            "POST",
            &format!("{}/session/{}/execute/sync", self.base, self.session),
            Some(
                serde_json::json!({"script": format!("const e = document.getElementById('{id}'); return e ? e.textContent : '';"), "args": []}),
            ),
        );
        r["value"].as_str().unwrap_or_default().to_string()
    }

    /// Waits for the page's WebSocket echo.
    fn echo(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let t = self.text("echo");
            if t != "waiting" && !t.is_empty() {
                return t;
            }
            assert!(Instant::now() < deadline, "no echo; page says via: {}", self.text("via"));
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let r = wd("GET", &format!("{}/session/{}/screenshot", self.base, self.session), None);
        let png =
            base64::engine::general_purpose::STANDARD.decode(r["value"].as_str().unwrap()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

#[test]
fn a_browser_opens_a_service_by_its_old_name_before_and_after_its_wave() {
    if !on_path("chromedriver")
        || !(Path::new("/usr/bin/chromium").exists()
            || Path::new("/usr/bin/chromium-browser").exists())
    {
        return tailshift_util::testing::skip(
            "chromium and chromium-driver are not installed (.ci/run installs them)",
        );
    }
    // A small environment, kept up, with nothing applied: this test drives the waves.
    let (env, stop) = kept_demo("6");
    let env = &env;
    let port = env["https_port"].as_u64().unwrap();
    let dns: SocketAddr = env["dns"].as_str().unwrap().parse().unwrap();
    let spki = env["ca_spki_sha256"].as_str().unwrap();
    // The canary's first service.
    let svc = env["services"].as_array().unwrap().iter().find(|s| s["wave"] == 1).unwrap();
    let name = svc["name"].as_str().unwrap();
    let short = name.split('.').next().unwrap();
    let url = format!("https://{name}:{port}/");
    let resolve = || match tailshift_shims::dns::query(dns, name, Duration::from_secs(2)).unwrap() {
        tailshift_shims::dns::Answer::Addrs(a) => a[0].to_string(),
        other => panic!("{other:?}"),
    };
    let target = crate::util::root().join("target").join("demo-browser");
    let profile = tempfile::tempdir().unwrap();

    // Before its wave: the legacy node answers the old name.
    let before_ip = resolve();
    assert_eq!(before_ip, svc["node"].as_str().unwrap());
    {
        let b =
            Browser::launch(&format!("MAP {name} {before_ip}"), spki, &profile.path().join("a"));
        b.open(&url);
        assert_eq!(b.echo(), format!("echo from {short} via {name}:{port}"));
        assert!(b.text("via").contains("legacy tsnsrv node"), "{}", b.text("via"));
        b.screenshot(&target.join(format!("{short}-before.png")));
    }

    // Its wave, on both hosts, as an operator runs it.
    for h in env["hosts"].as_array().unwrap() {
        let o = migrate(&[
            "apply",
            "--wave",
            "1",
            "--host",
            h["name"].as_str().unwrap(),
            "--config",
            h["config"].as_str().unwrap(),
            "--plan",
            env["plan"].as_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    }

    // After: the same name now resolves to the proxy; Chromium is relaunched with the new rule.
    let after_ip = resolve();
    assert_ne!(after_ip, before_ip);
    assert!(
        env["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["proxy"].as_str().unwrap().starts_with(&format!("{after_ip}:")))
    );
    let b = Browser::launch(&format!("MAP {name} {after_ip}"), spki, &profile.path().join("b"));
    b.open(&url);
    assert_eq!(b.echo(), format!("echo from {short} via {name}:{port}"));
    assert!(b.text("via").contains("tailshift proxy"), "{}", b.text("via"));
    assert_eq!(b.text("app"), short);
    let shot = target.join(format!("{short}-after.png"));
    b.screenshot(&shot);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"), "{} bytes", png.len());
    println!("screenshot: {}", shot.display());
    eprintln!("screenshot: {}", shot.display());
    drop(b);
    drop(stop);
}

/// Stops a `--keep` demo (Ctrl-C) and removes its directory when dropped.
struct Stop(Child, String);

impl Drop for Stop {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGINT);
        }
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn scopeguard(c: Child, dir: String) -> Stop {
    Stop(c, dir)
}

/// A `--keep` demo of `services` services with nothing applied: its environment (the first
/// JSON line) and the guard that stops it and removes its directory.
fn kept_demo(services: &str) -> (Value, Stop) {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["demo", "--keep", "--services", services, "--waves", "0", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(demo.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let s: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let env = s["environment"].clone();
    let dir = env["directory"].as_str().unwrap().to_string();
    (env, scopeguard(demo, dir))
}

#[test]
fn a_kept_demo_can_be_driven_through_finalize() {
    let (env, _stop) = kept_demo("4");
    let env = &env;
    let dir = env["directory"].as_str().unwrap().to_string();
    let plan = env["plan"].as_str().unwrap();
    for h in env["hosts"].as_array().unwrap() {
        let (host, config) = (h["name"].as_str().unwrap(), h["config"].as_str().unwrap());
        let wave = |cmd: &str, extra: &[&str]| {
            let mut args =
                vec![cmd, "--wave", "1", "--host", host, "--config", config, "--plan", plan];
            args.extend_from_slice(extra);
            migrate(&args)
        };
        let o = wave("apply", &[]);
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        let moved = !stdout(&o).contains("no service on");
        let o = wave("finalize", &["--yes"]);
        assert_eq!(o.status.code(), Some(0), "as MIGRATION.md says: {}{}", stdout(&o), stderr(&o));
        // Finalized for good: no way back (on a host that had services in the wave).
        let o = wave("rollback", &[]);
        let want = if moved { 3 } else { 0 };
        assert_eq!(o.status.code(), Some(want), "{}{}", stdout(&o), stderr(&o));
    }
    let finalized = std::fs::read_dir(Path::new(&dir).join("units"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".finalized"))
        .count();
    // cloud's nodes live in its one tsnsrv-all process: finalize removes a moved node's state
    // (`tsnsrv-all/<name>`), never the process's or another node's.
    let (mut gone, mut kept) = (0, 0);
    for v in env["services"].as_array().unwrap() {
        let Some(short) = v["id"].as_str().unwrap().strip_prefix("cloud/") else { continue };
        let state = Path::new(&dir).join("var-lib-cloud/tsnsrv-all").join(short);
        if v["wave"].as_u64() == Some(1) {
            assert!(!state.exists(), "{short}: finalized, its state is gone");
            gone += 1;
        } else {
            assert!(state.exists(), "{short}: not moved, its state stays");
            kept += 1;
        }
    }
    assert!(finalized + gone > 0, "the emulated nodes of wave 1 are retired");
    assert!(kept > 0);
}

#[test]
fn the_demos_tsnsrv_all_host_loses_a_wave_in_one_restart_and_its_other_names_answer_again() {
    let (env, _stop) = kept_demo("70");
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(env["plan"].as_str().unwrap()).unwrap())
            .unwrap();
    // The plan says which waves restart cloud's one process, and what that costs.
    let finding = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "shared_process")
        .unwrap_or_else(|| panic!("no shared_process finding: {}", plan["findings"]));
    let msg = finding["message"].as_str().unwrap();
    assert!(msg.contains("on cloud") && msg.contains(" remain, ~"), "{msg}");
    let services = env["services"].as_array().unwrap();
    let cloud: Vec<&Value> =
        services.iter().filter(|v| v["id"].as_str().unwrap().starts_with("cloud/")).collect();
    let first = cloud.iter().filter_map(|v| v["wave"].as_u64()).min().unwrap();
    let host = env["hosts"].as_array().unwrap().iter().find(|h| h["name"] == "cloud").unwrap();
    let config = host["config"].as_str().unwrap();
    let dir = env["directory"].as_str().unwrap();
    for w in 1..=first {
        let w = w.to_string();
        let o = migrate(&[
            "apply",
            "--wave",
            &w,
            "--host",
            "cloud",
            "--config",
            config,
            "--plan",
            env["plan"].as_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    }
    // The moves file holds what remains in the process; it restarted once and took it.
    let moves: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/cloud-moves.json")).unwrap())
            .unwrap();
    let remain = moves["shared_processes"]["tsnsrv-all"]["services"].as_array().unwrap();
    assert_eq!(moves["disabled_units"], serde_json::json!([]), "{moves}");
    let dns: std::net::SocketAddr = env["dns"].as_str().unwrap().parse().unwrap();
    let port = env["https_port"].as_u64().unwrap() as u16;
    let ca = Path::new(env["ca_file"].as_str().unwrap());
    for v in &cloud {
        let name = v["name"].as_str().unwrap();
        let short = name.split('.').next().unwrap();
        let moved = v["wave"].as_u64().is_some_and(|w| w <= first);
        assert_eq!(remain.iter().any(|r| r == short), !moved, "{name}: {moves}");
        let (code, _) = crate::util::get_by_name(dns, port, ca, name);
        assert_eq!(code, 200, "{name} answers after the restart");
        let addr = match tailshift_shims::dns::query(dns, name, std::time::Duration::from_secs(2)) {
            Ok(tailshift_shims::dns::Answer::Addrs(a)) => a[0].to_string(),
            other => panic!("{name}: {other:?}"),
        };
        if !moved {
            assert_eq!(addr, v["node"].as_str().unwrap(), "{name} is still its node's");
        }
    }
}
