//! The demo's phases, top to bottom: environment, inventory, plan, waves, rollback and
//! re-apply, measurements, cleanup.

use crate::apps::{self, Shared};
use crate::example::{self, Listen, PortEntry};
use crate::nodes::{self, Node, Target};
use crate::procs::{self, Daemon};
use crate::summary::{self, CheckRound, Measured, Summary};
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tailshift_checks::{CheckConfig, Outcome, check};
use tailshift_util::exit::Exit;

/// `migrate demo`'s options.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Keep everything running after the summary (until Ctrl-C), and the directory afterwards.
    pub keep: bool,
    /// Move only the first N services (the others stay on their nodes).
    pub services: Option<usize>,
    /// Apply only the first N waves (0: set up and plan only; default: all).
    pub waves: Option<usize>,
    /// The summary as JSON on stdout.
    pub json: bool,
}

const TAILNET: &str = "tailnet.test";
const HOSTS: [(&str, Ipv4Addr, u8); 2] =
    [("storage", Ipv4Addr::new(127, 70, 0, 1), 1), ("cloud", Ipv4Addr::new(127, 70, 0, 2), 2)];

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// One service of the example, as the inventory read it.
#[derive(Clone, Debug)]
struct Svc {
    id: String,
    host: String,
    name: String,
    app: String,
    node: IpAddr,
    wave: Option<usize>,
}

/// Counts of the client requests.
#[derive(Default)]
struct Counter {
    total: AtomicU64,
    served: AtomicU64,
    failed: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Counter {
    fn count(&self, name: &str, o: &Outcome) -> bool {
        self.total.fetch_add(1, Ordering::Relaxed);
        let ok = matches!(o, Outcome::Status { code, .. } if (200..300).contains(code));
        if ok {
            self.served.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            if f.len() < 20 {
                f.push(format!("{name}: {o:?}"));
            }
        }
        ok
    }
}

/// Everything the demo started, stopped in reverse order.
struct World {
    dir: PathBuf,
    rt: Option<tokio::runtime::Runtime>,
    proxies: Vec<Daemon>,
    listening: Vec<SocketAddr>,
    load_stop: Arc<AtomicBool>,
    load: Option<std::thread::JoinHandle<()>>,
}

impl World {
    fn stop_load(&mut self) {
        self.load_stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.load.take() {
            let _ = h.join();
        }
    }

    /// Stops everything; says what is left.
    fn cleanup(&mut self, remove: bool) -> summary::Cleanup {
        self.stop_load();
        for p in self.proxies.iter_mut().rev() {
            p.stop();
        }
        let processes_left = self
            .proxies
            .iter_mut()
            .map(|p| p.child.try_wait())
            .filter(|w| matches!(w, Ok(None)))
            .count();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        let listening_left = self
            .listening
            .iter()
            .filter(|a| std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok())
            .map(|a| a.to_string())
            .collect();
        let directory_removed = remove && std::fs::remove_dir_all(&self.dir).is_ok();
        summary::Cleanup { processes_left, listening_left, directory_removed }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if self.rt.is_some() {
            self.cleanup(false);
        }
    }
}

/// A progress line on stderr (data goes to stdout). A reader that went away does not stop
/// the demo before it has cleaned up.
fn say(line: impl AsRef<str>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{}", line.as_ref());
}

/// Runs the demo.
pub fn run(opts: &Options) -> anyhow::Result<Exit> {
    let started = Instant::now();
    if opts.services == Some(0) {
        bail!("--services 0: the demo moves at least one service");
    }
    // SAFETY: installing a handler that only stores to an atomic; ignoring SIGPIPE so that a
    // closed pipe is an error to handle (the cleanup still runs), not the end of the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let dir = std::env::temp_dir().join(format!(
        "tailshift-demo-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos()
    ));
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut world = World {
        dir: dir.clone(),
        rt: Some(rt),
        proxies: Vec::new(),
        listening: Vec::new(),
        load_stop: Arc::new(AtomicBool::new(false)),
        load: None,
    };
    let mut s = Summary { schema: "tailshift.demo/v1", ..Default::default() };
    let result = phases(opts, &mut world, &mut s);
    let exit = match result {
        Ok(e) => e,
        Err(e) if interrupted() => {
            s.problems.push(format!("interrupted: {e:#}"));
            Exit::Interrupted
        }
        Err(e) => {
            say(format!("error: {e:#}"));
            s.problems.push(format!("{e:#}"));
            Exit::BadInput
        }
    };
    let exit = if interrupted() { Exit::Interrupted } else { exit };
    if opts.keep && exit != Exit::Interrupted {
        s.exit_code = exit.code();
        s.elapsed_s = started.elapsed().as_secs_f64();
        print_summary(opts, &s)?;
        say(format!(
            "--keep: everything stays up until Ctrl-C; the directory {} is kept. Try, for instance:",
            dir.display()
        ));
        for h in &s.environment.hosts {
            say(format!(
                "  migrate apply --wave 1 --host {} --config {} --plan {}",
                h.name, h.config, s.environment.plan
            ));
        }
        if let Some(v) = s.environment.services.first() {
            say(format!(
                "  curl --cacert {} --resolve {}:{}:<address> https://{}:{}/   (the address: dig @{} -p {} {})",
                s.environment.ca_file,
                v.name,
                s.environment.https_port,
                v.name,
                s.environment.https_port,
                s.environment.dns.split(':').next().unwrap_or_default(),
                s.environment.dns.rsplit(':').next().unwrap_or_default(),
                v.name
            ));
        }
        while !interrupted() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let c = world.cleanup(false);
        say(format!(
            "stopped: {} processes, {} addresses still listening; {} kept",
            c.processes_left,
            c.listening_left.len(),
            dir.display()
        ));
        return Ok(exit);
    }
    // A failed run keeps its directory: the logs say why.
    let remove = exit == Exit::Ok || exit == Exit::Interrupted;
    say(if remove {
        "cleaning up: stopping the proxies, apps and nodes; removing the directory".to_string()
    } else {
        format!(
            "cleaning up: stopping the proxies, apps and nodes; the directory {} stays for its logs",
            dir.display()
        )
    });
    let c = world.cleanup(remove);
    if c.processes_left > 0 || !c.listening_left.is_empty() {
        s.problems.push(format!(
            "cleanup left {} processes and {:?} listening",
            c.processes_left, c.listening_left
        ));
    }
    s.cleanup = Some(c);
    s.ok = s.ok && s.problems.is_empty();
    s.exit_code = exit.code();
    s.elapsed_s = started.elapsed().as_secs_f64();
    print_summary(opts, &s)?;
    Ok(exit)
}

fn print_summary(opts: &Options, s: &Summary) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if opts.json {
        // One line: a reader of a `--keep` run can take it before the demo exits.
        let _ = writeln!(out, "{}", serde_json::to_string(s)?);
    } else {
        let _ = writeln!(out, "\n{}", summary::table(s));
    }
    let _ = out.flush();
    Ok(())
}

/// Binds an app's free port (kept bound: no other process can take it before the app runs).
fn bind_app(e: &PortEntry, sockets: &Path) -> anyhow::Result<(PortEntry, AppListener)> {
    Ok(match &e.listen {
        Listen::Port(_) => {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            let port = l.local_addr()?.port();
            (PortEntry { app: e.app.clone(), listen: Listen::Port(port) }, AppListener::Tcp(l))
        }
        Listen::Socket(_) => {
            let path = sockets.join(format!("{}.sock", e.app));
            let l = std::os::unix::net::UnixListener::bind(&path)
                .with_context(|| format!("binding {}", path.display()))?;
            (PortEntry { app: e.app.clone(), listen: Listen::Socket(path) }, AppListener::Unix(l))
        }
    })
}

enum AppListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// Starts `migrate proxy` and waits for its `serving` line; returns it with the addresses it
/// printed (https, dns).
fn start_proxy(dir: &Path, host: &str, toml: String) -> anyhow::Result<(Daemon, String)> {
    let cfg = dir.join(format!("proxy-{host}.toml"));
    std::fs::write(&cfg, toml)?;
    let log = dir.join(format!("proxy-{host}.log"));
    let child = procs::migrate(&["proxy", "--config", &cfg.display().to_string()])?
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting migrate proxy")?;
    let mut daemon = Daemon { child, name: format!("proxy {host}") };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("tailshift proxy serving")) {
            return Ok((daemon, line.to_string()));
        }
        if let Ok(Some(st)) = daemon.child.try_wait() {
            bail!("the {} exited ({st}): {}", daemon.name, text.trim());
        }
        if Instant::now() > deadline || interrupted() {
            daemon.stop();
            bail!("the {} did not start serving: {}", daemon.name, text.trim());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `ip:port` after `kind ` in the proxy's serving line.
fn printed_addr(line: &str, kind: &str) -> Option<SocketAddr> {
    let a = line.split(kind).nth(1)?.split([',', ';', ' ']).next()?;
    a.parse().ok()
}

fn json_str(v: &serde_json::Value) -> Option<&str> {
    v.get("known")?.get("value")?.as_str()
}

fn phases(opts: &Options, world: &mut World, s: &mut Summary) -> anyhow::Result<Exit> {
    let dir = world.dir.clone();
    let handle = world.rt.as_ref().map(|r| r.handle().clone()).context("runtime")?;
    say(format!(
        "tailshift demo: the example homelab (2 hosts, tsnsrv fork) migrated on loopback in {}",
        dir.display()
    ));

    // --- The environment: CA, proxies, apps, nodes, records. ---------------------------
    let (ps, pc) = (dir.join("proxy-storage"), dir.join("proxy-cloud"));
    std::fs::create_dir_all(&pc)?;
    let ca = tailshift_proxy::tls::DevCa::load_or_create(&ps)?;
    for f in ["dev-ca.crt", "dev-ca.key"] {
        std::fs::copy(ps.join(f), pc.join(f))?;
    }
    let ca_file = ps.join("dev-ca.crt");
    for f in ["records-storage.json", "records-cloud.json"] {
        std::fs::write(dir.join(f), "[]\n")?;
    }
    // `top`: more top-level keys; `tail`: more tables.
    let proxy_toml = |host: &str, state: &Path, addr: String, top: &str, tail: &str| {
        format!(
            "# `migrate proxy` for the demo's host {host} (docs/proxy.md)\nstate_dir = \"{}\"\nupstream_ca = \"{}\"\naccess_log = false\nhealth_interval_s = 10\n{top}\n[[listener]]\nkind = \"https\"\naddr = \"{addr}\"\n{tail}",
            state.display(),
            ca_file.display()
        )
    };
    let dns_part = format!(
        "\n[dns]\nlisten = \"{}:0\"\nzone = \"{TAILNET}\"\nrecords = [\"{}\", \"{}\", \"{}\"]\nttl = 1\n",
        HOSTS[0].1,
        dir.join("records-storage.json").display(),
        dir.join("records-cloud.json").display(),
        dir.join("legacy.json").display()
    );
    // Storage's proxy first: the kernel picks the port every other name then shares.
    let (proxy_s, line) = start_proxy(
        &dir,
        "storage",
        proxy_toml("storage", &ps, format!("{}:0", HOSTS[0].1), "", &dns_part),
    )?;
    world.proxies.push(proxy_s);
    let https = printed_addr(&line, "https ").context("the proxy's https address")?;
    let dns = printed_addr(&line, "dns ").context("the responder's address")?;
    let port = https.port();
    // Cloud's proxy resolves forward-auth names (auth.tailnet.test) through the responder.
    let (proxy_c, _) = start_proxy(
        &dir,
        "cloud",
        proxy_toml(
            "cloud",
            &pc,
            format!("{}:{port}", HOSTS[1].1),
            &format!("upstream_dns = \"{dns}\"\n"),
            "",
        ),
    )?;
    world.proxies.push(proxy_c);
    world.listening.push(https);
    world.listening.push(SocketAddr::new(HOSTS[1].1.into(), port));
    world.listening.push(dns);
    let checks =
        CheckConfig { resolver: Some(dns), port, ca_file: Some(ca_file.clone()), timeout_ms: 3000 };

    // Apps on free ports, the example copied with them.
    let sockets = dir.join("sockets");
    std::fs::create_dir_all(&sockets)?;
    let shared = Arc::new(Shared::default());
    let mut app_at: BTreeMap<String, Target> = BTreeMap::new();
    let mut entries = Vec::new();
    {
        let _guard = handle.enter();
        for e in example::port_entries(example::FILES[0].1) {
            let (moved, l) = bind_app(&e, &sockets)?;
            let name: Arc<str> = e.app.as_str().into();
            match l {
                AppListener::Tcp(l) => {
                    let addr = l.local_addr()?;
                    l.set_nonblocking(true)?;
                    world.listening.push(addr);
                    app_at.insert(e.app.clone(), Target::Tcp(addr));
                    handle.spawn(apps::serve_tcp(
                        name,
                        tokio::net::TcpListener::from_std(l)?,
                        shared.clone(),
                    ));
                }
                AppListener::Unix(l) => {
                    l.set_nonblocking(true)?;
                    if let Listen::Socket(p) = &moved.listen {
                        app_at.insert(e.app.clone(), Target::Unix(p.clone()));
                    }
                    handle.spawn(apps::serve_unix(
                        name,
                        tokio::net::UnixListener::from_std(l)?,
                        shared.clone(),
                    ));
                }
            }
            entries.push(moved);
        }
    }
    let homelab = example::write_copy(&dir, &entries, port)?;

    // --- Inventory. ---------------------------------------------------------------------
    let hosts_dir = homelab.join("hosts");
    let out = procs::migrate(&["inventory", &hosts_dir.display().to_string(), "--format", "json"])?
        .stderr(Stdio::piped())
        .output()?;
    if !out.status.success() {
        bail!("migrate inventory failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::write(dir.join("inventory.json"), &out.stdout)?;
    let inv: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut svcs: Vec<Svc> = Vec::new();
    let mut counters: BTreeMap<String, u8> = BTreeMap::new();
    for v in inv["services"].as_array().context("inventory services")? {
        let name = v["name"].as_str().context("service name")?.to_string();
        let host = json_str(&v["host"]).context("service host")?.to_string();
        let eff = &v["effective"];
        // The app behind the upstream: by socket, or by port.
        let app = if let Some(sock) = json_str(&eff["upstreamUnixAddr"]) {
            app_at.iter().find(|(_, t)| matches!(t, Target::Unix(p) if p.as_os_str() == sock))
        } else {
            let url = json_str(&eff["toURL"]).context("toURL")?;
            let port: u16 = url
                .rsplit(':')
                .next()
                .and_then(|p| p.trim_end_matches('/').parse().ok())
                .with_context(|| format!("{name}: no port in {url}"))?;
            app_at.iter().find(|(_, t)| matches!(t, Target::Tcp(a) if a.port() == port))
        }
        .map(|(a, _)| a.clone())
        .with_context(|| format!("{host}/{name}: its upstream is none of the example's apps"))?;
        let net = HOSTS.iter().find(|h| h.0 == host).map(|h| h.2).context("unknown host")?;
        let n = counters.entry(host.clone()).or_insert(0);
        *n += 1;
        svcs.push(Svc {
            id: format!("{host}/{name}"),
            node: IpAddr::V4(Ipv4Addr::new(127, 70, net, *n)),
            host,
            name,
            app,
            wave: None,
        });
    }
    s.services = svcs.len();
    let unknown: usize = inv["diagnostics"].as_array().map_or(0, |d| d.len());
    say(format!(
        "[1/5] inventory: {} services on {} hosts read from {} ({} diagnostics); `migrate inventory {}`",
        svcs.len(),
        counters.len(),
        homelab.display(),
        unknown,
        hosts_dir.display()
    ));

    // --- The legacy nodes and what MagicDNS would answer. ------------------------------
    let mut node_list = Vec::new();
    let mut legacy = Vec::new();
    for v in &svcs {
        let fqdn = format!("{}.{TAILNET}", v.name);
        let issued = ca.issue(&fqdn)?;
        shared.nodes.write().unwrap_or_else(|p| p.into_inner()).insert(v.node, v.id.clone());
        node_list.push(Node {
            id: v.id.clone(),
            ip: v.node,
            target: app_at[&v.app].clone(),
            cert: Arc::new(issued),
        });
        legacy.push(serde_json::json!({"name": fqdn, "type": "A", "value": v.node.to_string()}));
        world.listening.push(SocketAddr::new(v.node, port));
    }
    std::fs::write(dir.join("legacy.json"), serde_json::to_string_pretty(&legacy)?)?;
    let units = dir.join("units");
    std::fs::create_dir_all(&units)?;
    let listening = nodes::run(node_list, port, units.clone(), &handle);
    let deadline = Instant::now() + Duration::from_secs(10);
    while listening.load(Ordering::SeqCst) < svcs.len() {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} legacy nodes could listen on port {port}",
                listening.load(Ordering::SeqCst),
                svcs.len()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    s.legacy_nodes = Measured::new(summary::NodeCount { before: svcs.len(), after: 0 });

    // --- Policy per host, adapter, plan. -----------------------------------------------
    let moved_by_demo = opts.services.unwrap_or(svcs.len());
    if moved_by_demo == 0 || moved_by_demo > svcs.len() {
        bail!("--services: the example has {} services; give 1 to {}", svcs.len(), svcs.len());
    }
    s.services_moved_by_demo = moved_by_demo;
    let excluded: Vec<String> = svcs[moved_by_demo..].iter().map(|v| v.name.clone()).collect();
    let policy = example::FILES[5].1;
    let policy = if excluded.is_empty() {
        policy.to_string()
    } else {
        policy.replacen(
            "[plan]\n",
            &format!(
                "[plan]\n# `migrate demo --services {moved_by_demo}`: the rest stay on their nodes.\nexclude = {}\n",
                serde_json::to_string(&excluded)?
            ),
            1,
        )
    };
    let adapter = dir.join("tsnsrv-units.sh");
    std::fs::write(
        &adapter,
        format!(
            "#!/bin/sh\n# The demo's legacy adapter: stops and starts an emulated tsnsrv node by a flag file.\nf=\"{}/stopped-$(echo \"$TAILSHIFT_SERVICE\" | tr / -)\"\ncase \"$TAILSHIFT_ACTION\" in\n  stop) touch \"$f\" ;;\n  start) rm -f \"$f\" ;;\n  *) echo \"the demo's nodes cannot $TAILSHIFT_ACTION\" >&2; exit 1 ;;\nesac\n",
            units.display()
        ),
    )?;
    let mut host_env = Vec::new();
    for (host, ip, _) in HOSTS {
        let cfg = homelab.join(format!("{host}.toml"));
        let state = if host == "storage" { &ps } else { &pc };
        std::fs::write(
            &cfg,
            format!(
                "{policy}\n# Written by `migrate demo` for the host {host} (docs/policy.md, [apply]).\n[apply]\nstate_dir = \"{d}/state-{host}\"\nadmin_socket = \"{sock}\"\nsettle_ms = 100\nproxy_addrs = [\"{ip}\"]\nrecords_file = \"{d}/records-{host}.json\"\nresolver = \"{dns}\"\nlegacy = {{ adapter = \"command\", command = [\"/bin/sh\", \"{adapter}\"] }}\n\n[apply.check]\nresolver = \"{dns}\"\nport = {port}\nca_file = \"{ca}\"\ntimeout_ms = 3000\n",
                d = dir.display(),
                sock = state.join("admin.sock").display(),
                adapter = adapter.display(),
                ca = ca_file.display(),
            ),
        )?;
        host_env.push(summary::HostEnv {
            name: host.into(),
            proxy: SocketAddr::new(ip.into(), port).to_string(),
            config: cfg.display().to_string(),
        });
    }
    let plan_path = dir.join("plan.json");
    let storage_cfg = homelab.join("storage.toml");
    let out = procs::migrate(&[
        "plan",
        &hosts_dir.display().to_string(),
        "--config",
        &storage_cfg.display().to_string(),
        "--out",
        &plan_path.display().to_string(),
    ])?
    .output()?;
    std::fs::write(dir.join("plan.txt"), &out.stdout)?;
    if !out.status.success() {
        bail!("migrate plan failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan_path)?)?;
    let waves = plan["waves"].as_array().context("plan waves")?.clone();
    for w in &waves {
        let n = w["number"].as_u64().unwrap_or(0) as usize;
        for id in w["services"].as_array().into_iter().flatten() {
            if let Some(v) = svcs.iter_mut().find(|v| Some(v.id.as_str()) == id.as_str()) {
                v.wave = Some(n);
            }
        }
    }
    s.plan = summary::PlanFacts {
        plan_id: plan["plan_id"].as_str().unwrap_or_default().to_string(),
        waves: waves.len(),
        planned: svcs.iter().filter(|v| v.wave.is_some()).count(),
        held_back: plan["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p.get("wave").is_none_or(|w| w.is_null()))
            .filter_map(|p| p["id"].as_str().map(str::to_string))
            .collect(),
    };
    say(format!(
        "[2/5] plan {}: {} waves, {} services planned, {} stay on their nodes ({}); `migrate plan` wrote {}",
        s.plan.plan_id,
        s.plan.waves,
        s.plan.planned,
        s.plan.held_back.len(),
        shorten(&s.plan.held_back),
        plan_path.display()
    ));
    s.environment = summary::Environment {
        directory: dir.display().to_string(),
        dns: dns.to_string(),
        https_port: port,
        ca_file: ca_file.display().to_string(),
        ca_spki_sha256: ca.spki_sha256_base64(),
        plan: plan_path.display().to_string(),
        hosts: host_env,
        services: svcs
            .iter()
            .map(|v| summary::ServiceEnv {
                id: v.id.clone(),
                name: format!("{}.{TAILNET}", v.name),
                node: v.node.to_string(),
                wave: v.wave,
            })
            .collect(),
    };

    // --- Traffic: a client through every old name for the whole run. -------------------
    let counter = Arc::new(Counter::default());
    {
        let (stop, counter, names, checks) = (
            world.load_stop.clone(),
            counter.clone(),
            svcs.iter().map(|v| format!("{}.{TAILNET}", v.name)).collect::<Vec<_>>(),
            checks.clone(),
        );
        world.load = Some(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let name = &names[i % names.len()];
                counter.count(name, &check(&checks, name, "/"));
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
    }
    let round = |applied: usize| -> CheckRound {
        let mut r = CheckRound { names: svcs.len(), ..Default::default() };
        for v in &svcs {
            let name = format!("{}.{TAILNET}", v.name);
            let o = check(&checks, &name, "/");
            if !counter.count(&name, &o) {
                r.failed.push(format!("{name}: {o:?}"));
                continue;
            }
            r.answered += 1;
            let Outcome::Status { addr, .. } = o else { continue };
            let proxy = HOSTS.iter().find(|h| h.0 == v.host).map(|h| IpAddr::V4(h.1));
            if Some(addr) == proxy {
                r.from_proxy += 1;
            }
            let want = if v.wave.is_some_and(|w| w <= applied) { proxy } else { Some(v.node) };
            if Some(addr) != want {
                r.misplaced.push(format!("{name} answered from {addr}"));
            }
        }
        r
    };
    let before = round(0);
    if before.answered != before.names || !before.misplaced.is_empty() {
        bail!(
            "before any wave, not every old name answers from its node: {:?} {:?}",
            before.failed,
            before.misplaced
        );
    }
    say(format!(
        "      every old name answers from its legacy node ({} names, DNS {dns}, HTTPS port {port})",
        before.answered
    ));

    // --- Waves. --------------------------------------------------------------------------
    let last = opts.waves.unwrap_or(waves.len()).min(waves.len());
    say(format!("[3/5] applying {last} of {} waves on both hosts", waves.len()));
    let host_cfg = |h: &str| homelab.join(format!("{h}.toml")).display().to_string();
    let plan_arg = plan_path.display().to_string();
    let mut exit = Exit::Ok;
    let mut forecast =
        summary::Forecast { kind: "forecast", basis: String::new(), ..Default::default() };
    for w in waves.iter().take(last) {
        if interrupted() {
            return Ok(Exit::Interrupted);
        }
        let n = w["number"].as_u64().unwrap_or(0) as usize;
        let kind = w["kind"].as_str().unwrap_or("").to_string();
        let ids: Vec<String> = w["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect();
        let total_steps: u64 = w["steps"]
            .as_object()
            .map(|m| m.values().map(|v| v.as_array().map_or(0, |a| a.len() as u64)).sum())
            .unwrap_or(0);
        let bar = indicatif::ProgressBar::new(total_steps.max(1));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "      wave {prefix:>2} {msg:<7} [{bar:30}] {pos}/{len} steps",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(n.to_string());
        bar.set_message(kind.clone());
        let t = Instant::now();
        let mut codes = Vec::new();
        for (host, _, _) in HOSTS {
            let code = wave_cmd("apply", n, host, &host_cfg(host), &plan_arg, &dir, &bar)?;
            codes.push((host.to_string(), code));
        }
        bar.finish_and_clear();
        let applied = codes.iter().all(|(_, c)| *c == 0);
        let check = round(if applied { n } else { n - 1 });
        let f = &w["forecast"];
        forecast.nodes_retired += f["nodes_retired"].as_u64().unwrap_or(0) as usize;
        forecast.cpu_freed_cores += f["cpu_freed_cores"].as_f64().unwrap_or(0.0);
        forecast.memory_freed_mb += f["memory_freed_mb"].as_f64().unwrap_or(0.0);
        say(format!(
            "      wave {n:>2} {kind:<7} {} services in {:.1} s: {}; {}/{} old names answer, {} from a proxy",
            ids.len(),
            t.elapsed().as_secs_f64(),
            if applied { "applied".to_string() } else { format!("FAILED {codes:?}") },
            check.answered,
            check.names,
            check.from_proxy
        ));
        let ok = applied && check.answered == check.names && check.misplaced.is_empty();
        s.waves.push(summary::WaveResult {
            wave: n,
            kind,
            services: ids,
            applied,
            exit_codes: codes.clone(),
            seconds: t.elapsed().as_secs_f64(),
            check,
        });
        if !applied {
            let code = codes.iter().map(|c| c.1).find(|c| *c != 0).unwrap_or(1);
            exit = Exit::from_code(code);
            s.problems.push(format!(
                "wave {n}: apply exited {codes:?}; the logs are in {}",
                dir.display()
            ));
            break;
        }
        if !ok {
            exit = Exit::Unhealthy;
            s.problems.push(format!("wave {n}: not every old name answered from its place"));
        }
    }
    // The per-node cost the plan used, read back from the totals of the waves applied.
    let per_node = |total: f64, digits: usize| match forecast.nodes_retired {
        0 => "?".to_string(),
        n => format!("{:.digits$}", total / n as f64),
    };
    forecast.basis = format!(
        "the plan's cost of one tsnsrv node (plan.cost: {} cores, {} MB; docs/policy.md), times the nodes these {} waves retire",
        per_node(forecast.cpu_freed_cores, 3),
        per_node(forecast.memory_freed_mb, 0),
        s.waves.len()
    );
    s.forecast = forecast;

    // --- Rollback of the last wave, and forward again. ----------------------------------
    if exit == Exit::Ok && last == waves.len() && last > 0 && !interrupted() {
        let n = last;
        say(format!("[4/5] rolling wave {n} back on both hosts, then applying it again"));
        let bar = indicatif::ProgressBar::hidden();
        let mut rolled = true;
        for (host, _, _) in HOSTS.iter().rev() {
            rolled &= wave_cmd("rollback", n, host, &host_cfg(host), &plan_arg, &dir, &bar)? == 0;
        }
        let after_rollback = round(n - 1);
        let mut reapplied = true;
        for (host, _, _) in HOSTS {
            reapplied &= wave_cmd("apply", n, host, &host_cfg(host), &plan_arg, &dir, &bar)? == 0;
        }
        let after_reapply = round(n);
        say(format!(
            "      rollback: {} ({}/{} answer, {} from a proxy); apply again: {} ({}/{} answer, {} from a proxy)",
            if rolled { "done" } else { "FAILED" },
            after_rollback.answered,
            after_rollback.names,
            after_rollback.from_proxy,
            if reapplied { "done" } else { "FAILED" },
            after_reapply.answered,
            after_reapply.names,
            after_reapply.from_proxy
        ));
        let ok = rolled
            && reapplied
            && [&after_rollback, &after_reapply]
                .iter()
                .all(|r| r.answered == r.names && r.misplaced.is_empty());
        if !ok {
            exit = Exit::Unhealthy;
            s.problems.push(format!("the rollback and re-apply of wave {n} did not hold"));
        }
        s.rollback = Some(summary::RollbackResult {
            wave: n,
            rolled_back: rolled,
            after_rollback,
            reapplied,
            after_reapply,
        });
    } else {
        say("[4/5] rollback and re-apply skipped (not every wave was applied)");
    }

    // --- Measurements. --------------------------------------------------------------------
    say("[5/5] measuring");
    if let Some(v) = svcs.iter().find(|v| v.host == "storage" && v.wave.is_some_and(|w| w <= last))
    {
        let name = format!("{}.{TAILNET}", v.name);
        let pid = world.proxies[0].child.id();
        let before = procs::usage(pid).map(|u| u.rss_kib).unwrap_or(0);
        let t = Instant::now();
        let bytes = handle.block_on(fetch_all(&checks, &name, "/large?mb=64"))?;
        let seconds = t.elapsed().as_secs_f64();
        let after = procs::usage(pid).map(|u| u.rss_kib).unwrap_or(0);
        if bytes != 64 << 20 {
            s.problems.push(format!("the large body through {name} was {bytes} bytes, not 64 MiB"));
        }
        s.large_body = Some(Measured::new(summary::LargeBody {
            name: name.clone(),
            bytes,
            seconds,
            proxy_rss_kib_before: before,
            proxy_rss_kib_after: after,
        }));
        let echoed = handle.block_on(websocket_echo(&checks, &name)).unwrap_or_else(|e| {
            s.problems.push(format!("WebSocket echo through {name}: {e:#}"));
            false
        });
        s.websocket_echo = Some(Measured::new(summary::Echo { echoed }));
    }
    world.stop_load();
    let r = summary::Requests {
        total: counter.total.load(Ordering::SeqCst),
        served: counter.served.load(Ordering::SeqCst),
        failed: counter.failed.load(Ordering::SeqCst),
        failures: counter.failures.lock().unwrap_or_else(|p| p.into_inner()).clone(),
    };
    if r.failed > 0 {
        exit = if exit == Exit::Ok { Exit::Unhealthy } else { exit };
        s.problems.push(format!("{} client requests failed", r.failed));
    }
    s.requests = Measured::new(r);
    let mut usage = Vec::new();
    for (i, (host, ip, _)) in HOSTS.iter().enumerate() {
        let u = procs::usage(world.proxies[i].child.id())?;
        let routes = std::fs::read_to_string(dir.join(format!("proxy-{host}/routes.json")))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.as_array().map(|a| a.len()))
            .unwrap_or(0);
        usage.push(summary::ProxyUsage {
            host: host.to_string(),
            addr: SocketAddr::new((*ip).into(), port).to_string(),
            routes,
            rss_kib: u.rss_kib,
            cpu_ms: u.cpu_ms,
        });
    }
    s.proxies = Measured::new(summary::Proxies { proxies: usage });
    s.legacy_nodes.value.after = listening.load(Ordering::SeqCst);
    s.every_name_answered = s
        .waves
        .iter()
        .map(|w| &w.check)
        .chain(s.rollback.iter().flat_map(|r| [&r.after_rollback, &r.after_reapply]))
        .all(|r| r.answered == r.names);
    s.ok = exit == Exit::Ok && s.problems.is_empty();
    Ok(exit)
}

/// At most six names, then how many more.
fn shorten(names: &[String]) -> String {
    let mut t = names.iter().take(6).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 6 {
        t.push_str(&format!(" and {} more", names.len() - 6));
    }
    t
}

/// Runs `migrate apply|rollback --wave N --host H --format json`, advancing the bar on every
/// step event; stderr goes to `<dir>/<op>.log`. On Ctrl-C the child is interrupted too (it
/// stops between steps, resumable). Returns its exit code.
fn wave_cmd(
    op: &str,
    wave: usize,
    host: &str,
    cfg: &str,
    plan: &str,
    dir: &Path,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<i32> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{op}.log")))?;
    let mut child = procs::migrate(&[
        op,
        "--wave",
        &wave.to_string(),
        "--host",
        host,
        "--config",
        cfg,
        "--plan",
        plan,
        "--format",
        "json",
    ])?
    .stdout(Stdio::piped())
    .stderr(log)
    .spawn()
    .with_context(|| format!("starting migrate {op}"))?;
    let stdout = child.stdout.take().context("child stdout")?;
    let events =
        std::fs::OpenOptions::new().create(true).append(true).open(dir.join("events.ndjson"))?;
    let bar2 = bar.clone();
    let reader = std::thread::spawn(move || {
        use std::io::Write;
        let mut events = events;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = writeln!(events, "{line}");
            if line.contains("\"event\":\"step\"") {
                bar2.inc(1);
            }
        }
    });
    let mut signalled = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if interrupted() && !signalled {
            // SAFETY: signalling our own child by its pid.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGINT);
            }
            signalled = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = reader.join();
    Ok(status.code().unwrap_or(1))
}

/// A TLS connection to `name` the way a client reaches it (resolved through the responder,
/// verified against the development CA).
async fn connect(
    checks: &CheckConfig,
    name: &str,
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    // The checks' own resolution and trust: what `apply` and the check rounds use.
    let addr = *tailshift_checks::resolve(checks, name)?
        .first()
        .with_context(|| format!("{name}: no address"))?;
    let cfg = tailshift_checks::client_config(checks)?;
    let tcp = tokio::net::TcpStream::connect((addr, checks.port)).await?;
    let sni = rustls_pki_types::ServerName::try_from(name.to_string())?;
    Ok(tokio_rustls::TlsConnector::from(cfg).connect(sni, tcp).await?)
}

/// GETs `path` from `name` and counts the body's bytes (never holding it).
async fn fetch_all(checks: &CheckConfig, name: &str, path: &str) -> anyhow::Result<u64> {
    use http_body_util::BodyExt;
    let tls = connect(checks, name).await?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, name)
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let resp = send.send_request(req).await?;
    if !resp.status().is_success() {
        bail!("{name}{path}: {}", resp.status());
    }
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame?.into_data() {
            n += d.len() as u64;
        }
    }
    Ok(n)
}

/// Sends one WebSocket message to `wss://name/ws` and waits for the echo.
async fn websocket_echo(checks: &CheckConfig, name: &str) -> anyhow::Result<bool> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let tls = connect(checks, name).await?;
    let url = format!("wss://{name}:{}/ws", checks.port);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await?;
    let text = format!("echo via {name}");
    ws.send(Message::text(text.clone())).await?;
    let got = tokio::time::timeout(Duration::from_secs(5), ws.next()).await?;
    let _ = ws.close(None).await;
    Ok(matches!(got, Some(Ok(Message::Text(t))) if t.as_str() == text))
}
