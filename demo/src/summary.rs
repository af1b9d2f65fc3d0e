//! What the demo reports: the summary (JSON schema `tailshift.demo/v1`) and its table. Every
//! figure says whether it was measured here or is the plan's forecast for a real tailnet.

use serde::Serialize;

/// The demo's outcome.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// `tailshift.demo/v1`.
    pub schema: &'static str,
    /// Everything held: every wave applied, every name answered, no request failed.
    pub ok: bool,
    /// The exit code.
    pub exit_code: u8,
    /// Why not, when not ok.
    pub problems: Vec<String>,
    /// Services in the example, and how many the demo moves (`--services`).
    pub services: usize,
    /// Services the demo moves (the others are excluded in its copy of the policy).
    pub services_moved_by_demo: usize,
    /// The plan's identity and size.
    pub plan: PlanFacts,
    /// One entry per wave applied.
    pub waves: Vec<WaveResult>,
    /// The last wave rolled back and applied again.
    pub rollback: Option<RollbackResult>,
    /// Every old name answered in every check round.
    pub every_name_answered: bool,
    /// Emulated legacy nodes listening, before and after (measured).
    pub legacy_nodes: Measured<NodeCount>,
    /// The proxies' own cost at the end, from `/proc` (measured).
    pub proxies: Measured<Proxies>,
    /// Requests the demo's clients made through the old names (measured).
    pub requests: Measured<Requests>,
    /// A large body streamed through a proxy (measured).
    pub large_body: Option<Measured<LargeBody>>,
    /// A WebSocket echo through a proxy (measured).
    pub websocket_echo: Option<Measured<Echo>>,
    /// What the same waves free on a real tailnet (the plan's forecast from the measured
    /// per-node cost of tsnsrv, not measured here).
    pub forecast: Forecast,
    /// What was left after cleanup (measured; absent with `--keep`).
    pub cleanup: Option<Cleanup>,
    /// Wall time of the whole demo, seconds.
    pub elapsed_s: f64,
    /// Where things are (for `--keep`, and to drive waves by hand).
    pub environment: Environment,
}

/// A figure with its kind.
#[derive(Debug, Default, Serialize)]
pub struct Measured<T> {
    /// `measured`.
    pub kind: &'static str,
    /// The figure.
    #[serde(flatten)]
    pub value: T,
}

impl<T> Measured<T> {
    /// A measured figure.
    pub fn new(value: T) -> Self {
        Measured { kind: "measured", value }
    }
}

/// The plan.
#[derive(Debug, Default, Serialize)]
pub struct PlanFacts {
    /// Its id.
    pub plan_id: String,
    /// Waves.
    pub waves: usize,
    /// Services given a wave.
    pub planned: usize,
    /// Services kept on their nodes, with the plan's reason.
    pub held_back: Vec<String>,
}

/// One wave.
#[derive(Debug, Default, Serialize)]
pub struct WaveResult {
    /// Its number.
    pub wave: usize,
    /// canary, hub, ramp.
    pub kind: String,
    /// Its services.
    pub services: Vec<String>,
    /// `apply` exited 0 on every host.
    pub applied: bool,
    /// `apply`'s exit code per host.
    pub exit_codes: Vec<(String, i32)>,
    /// Seconds for the wave's applies.
    pub seconds: f64,
    /// The check round after it.
    pub check: CheckRound,
}

/// One round of checks through every old name.
#[derive(Debug, Default, Serialize)]
pub struct CheckRound {
    /// Names checked.
    pub names: usize,
    /// Names that answered 200.
    pub answered: usize,
    /// Of those, answered by a proxy.
    pub from_proxy: usize,
    /// Names answered from where the plan did not put them at this point.
    pub misplaced: Vec<String>,
    /// Names that did not answer, and why.
    pub failed: Vec<String>,
}

/// The rollback of the last wave and its re-apply.
#[derive(Debug, Default, Serialize)]
pub struct RollbackResult {
    /// The wave.
    pub wave: usize,
    /// `rollback` exited 0 on every host.
    pub rolled_back: bool,
    /// Checks after the rollback (the wave's names back on their nodes).
    pub after_rollback: CheckRound,
    /// `apply` exited 0 again.
    pub reapplied: bool,
    /// Checks after the re-apply.
    pub after_reapply: CheckRound,
}

/// Legacy nodes.
#[derive(Debug, Default, Serialize)]
pub struct NodeCount {
    /// Listening before the first wave.
    pub before: usize,
    /// Listening at the end.
    pub after: usize,
}

/// The proxies.
#[derive(Debug, Default, Serialize)]
pub struct Proxies {
    /// One per host.
    pub proxies: Vec<ProxyUsage>,
}

/// The WebSocket echo.
#[derive(Debug, Default, Serialize)]
pub struct Echo {
    /// The message came back.
    pub echoed: bool,
}

/// One proxy's cost.
#[derive(Debug, Default, Serialize)]
pub struct ProxyUsage {
    /// Its host.
    pub host: String,
    /// Its address.
    pub addr: String,
    /// Routes it serves at the end.
    pub routes: usize,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// CPU time used over the whole demo, ms.
    pub cpu_ms: u64,
}

/// Client requests.
#[derive(Debug, Default, Serialize)]
pub struct Requests {
    /// Made (check rounds and the background client).
    pub total: u64,
    /// Answered 2xx.
    pub served: u64,
    /// Not answered, or not 2xx.
    pub failed: u64,
    /// The first failures.
    pub failures: Vec<String>,
    /// Not answered while cloud's one `tsnsrv-all` process restarted to drop the services a
    /// wave moved (every name it serves is silent then: the plan's `shared_process` finding).
    pub during_shared_restart: u64,
    /// How many times it restarted.
    pub shared_restarts: usize,
}

/// The large body.
#[derive(Debug, Default, Serialize)]
pub struct LargeBody {
    /// The name it was fetched by.
    pub name: String,
    /// Bytes received.
    pub bytes: u64,
    /// Seconds.
    pub seconds: f64,
    /// That proxy's RSS before and after, KiB.
    pub proxy_rss_kib_before: u64,
    /// After.
    pub proxy_rss_kib_after: u64,
}

/// The plan's forecast for the waves applied.
#[derive(Debug, Default, Serialize)]
pub struct Forecast {
    /// `forecast`.
    pub kind: &'static str,
    /// What it rests on.
    pub basis: String,
    /// tsnsrv nodes the waves retire.
    pub nodes_retired: usize,
    /// Cores freed.
    pub cpu_freed_cores: f64,
    /// Memory freed, MB.
    pub memory_freed_mb: f64,
}

/// After cleanup.
#[derive(Debug, Default, Serialize)]
pub struct Cleanup {
    /// Child processes still running.
    pub processes_left: usize,
    /// Addresses the demo listened on that still accept connections.
    pub listening_left: Vec<String>,
    /// The directory was removed.
    pub directory_removed: bool,
}

/// Where things are.
#[derive(Debug, Default, Serialize)]
pub struct Environment {
    /// The demo's directory.
    pub directory: String,
    /// The split-DNS responder.
    pub dns: String,
    /// The HTTPS port every name answers on.
    pub https_port: u16,
    /// The development CA (PEM).
    pub ca_file: String,
    /// base64 SHA-256 of the CA's public key, for a browser's
    /// `--ignore-certificate-errors-spki-list`.
    pub ca_spki_sha256: String,
    /// The plan file.
    pub plan: String,
    /// Per host: its proxy's address and its `migrate.toml`.
    pub hosts: Vec<HostEnv>,
    /// Every service: its old name, its node's address, its wave (none: stays).
    pub services: Vec<ServiceEnv>,
}

/// A host of the demo.
#[derive(Debug, Default, Serialize)]
pub struct HostEnv {
    /// Its name.
    pub name: String,
    /// Its proxy's address.
    pub proxy: String,
    /// Its policy file (with the `[apply]` part).
    pub config: String,
}

/// A service of the demo.
#[derive(Debug, Default, Serialize)]
pub struct ServiceEnv {
    /// `host/name`.
    pub id: String,
    /// Its old name.
    pub name: String,
    /// Its legacy node's address.
    pub node: String,
    /// Its wave.
    pub wave: Option<usize>,
}

fn kib(k: u64) -> String {
    format!("{:.1} MB", k as f64 / 1024.0)
}

/// The table for people.
pub fn table(s: &Summary) -> String {
    let mut rows: Vec<(String, String, &str)> = Vec::new();
    let applied = s.waves.iter().filter(|w| w.applied).count();
    rows.push((
        "waves applied".into(),
        format!("{applied} of {} (plan {})", s.plan.waves, s.plan.plan_id),
        "measured",
    ));
    rows.push((
        "old names answering".into(),
        if s.every_name_answered {
            "all, after every wave and rollback".into()
        } else {
            "NOT all (see problems)".into()
        },
        "measured",
    ));
    if let Some(r) = &s.rollback {
        rows.push((
            format!("rollback of wave {}", r.wave),
            format!(
                "{}, then applied again: {}",
                if r.rolled_back { "done" } else { "FAILED" },
                if r.reapplied { "done" } else { "FAILED" }
            ),
            "measured",
        ));
    }
    rows.push((
        "legacy nodes (emulated)".into(),
        format!("{} before, {} after", s.legacy_nodes.value.before, s.legacy_nodes.value.after),
        "measured",
    ));
    for p in &s.proxies.value.proxies {
        rows.push((
            format!("proxy {} ({} routes)", p.host, p.routes),
            format!("RSS {}, CPU {} ms over the demo", kib(p.rss_kib), p.cpu_ms),
            "measured",
        ));
    }
    let r = &s.requests.value;
    rows.push((
        "client requests".into(),
        format!(
            "{} made, {} served, {} failed; {} unanswered during the shared tsnsrv-all process's {} restarts (announced by the plan)",
            r.total, r.served, r.failed, r.during_shared_restart, r.shared_restarts
        ),
        "measured",
    ));
    if let Some(l) = &s.large_body {
        let l = &l.value;
        rows.push((
            "large body through the proxy".into(),
            format!(
                "{} MiB in {:.2} s; proxy RSS {} -> {}",
                l.bytes >> 20,
                l.seconds,
                kib(l.proxy_rss_kib_before),
                kib(l.proxy_rss_kib_after)
            ),
            "measured",
        ));
    }
    if let Some(w) = &s.websocket_echo {
        rows.push((
            "WebSocket echo through the proxy".into(),
            if w.value.echoed { "ok".into() } else { "FAILED".into() },
            "measured",
        ));
    }
    let f = &s.forecast;
    rows.push((
        "on a real tailnet, these waves free".into(),
        format!(
            "{} tsnsrv nodes, ~{:.2} cores, ~{:.0} MB",
            f.nodes_retired, f.cpu_freed_cores, f.memory_freed_mb
        ),
        "forecast",
    ));
    rows.push(("time".into(), format!("{:.1} s", s.elapsed_s), "measured"));
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let mut out = format!("{:w0$}  {:w1$}  KIND\n", "", "");
    for (a, b, c) in &rows {
        out.push_str(&format!("{a:w0$}  {b:w1$}  {c}\n"));
    }
    out.push_str(&format!("forecast basis: {}\n", f.basis));
    out.push_str(
        "The emulated legacy nodes are small forwarders standing in for tsnsrv nodes; their own cost is not a tsnsrv node's and is not shown.\n",
    );
    for p in &s.problems {
        out.push_str(&format!("problem: {p}\n"));
    }
    out
}
