//! Applying and rolling back one wave of a plan on this host, step by step, with an intent
//! record before and a result record after every step (design section 3). Any failure, or a
//! check that does not match the baseline, rolls the wave back by itself (exit 4); a rollback
//! runs the inverses in reverse order with the route removed last, after a settle.

use super::admin_client;
use super::config::{ApplyConfig, Legacy};
use super::journal::Journal;
use super::lock::Lock;
use super::state::{Phase, ServiceState, State};
use crate::exit::Exit;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;
use tailshift_checks::{Outcome, check, check_with};
use tailshift_plans::plan::PlannedService;
use tailshift_plans::steps::{Step, Strategy};
use tailshift_plans::{Plan, ServiceId};
use tailshift_routes::Route;
use tailshift_shims::hosts::{HostsFile, HostsShim};
use tailshift_shims::records::RecordsFile;
use tailshift_shims::split_dns::SplitDnsShim;
use tailshift_shims::{Shim, ShimService};
use tailshift_util::Timestamp;

/// What `apply` was asked to do.
#[derive(Clone)]
pub struct Request<'a> {
    /// The plan (already checked for staleness by the caller).
    pub plan: &'a Plan,
    /// The wave (1-based).
    pub wave: usize,
    /// This host's name.
    pub host: String,
    /// `[apply]`.
    pub cfg: &'a ApplyConfig,
    /// Print every action, change nothing.
    pub dry_run: bool,
    /// Events as NDJSON on stdout instead of text.
    pub json: bool,
    /// The plan file (for the confirmation watcher).
    pub plan_path: std::path::PathBuf,
    /// `migrate.toml` (for the confirmation watcher).
    pub config_path: std::path::PathBuf,
}

/// The `schema` of every NDJSON event of the wave commands.
pub const EVENT_SCHEMA: &str = "tailshift.event/v1";

/// One progress event: a line of text for people, or one JSON object per line (NDJSON) with
/// `--format json`. Errors stay on stderr either way.
fn event(req: &Request, text: String, json: serde_json::Value) {
    if req.json {
        let mut v = json;
        v["schema"] = serde_json::json!(EVENT_SCHEMA);
        v["wave"] = serde_json::json!(req.wave);
        v["host"] = serde_json::json!(req.host);
        println!("{v}");
    } else {
        println!("{text}");
    }
}

/// The route a planned service is installed with: the one sealed in the plan when it was made
/// (never recomputed here). A format-1 plan has none: it can still be rolled back, not applied.
pub fn route_of(s: &PlannedService) -> anyhow::Result<&Route> {
    s.route.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "{}: the plan holds no route for it (see the plan's no_route finding, or the plan was made by an older tailshift: run migrate plan again)",
            s.id
        )
    })
}

/// The check's credentials for a service: the `Name: value` header lines of the file the
/// policy's `checks.<service>.credentials_file` names (read now, never stored in the plan).
fn credentials(plan: &Plan, s: &PlannedService) -> anyhow::Result<Vec<String>> {
    let Some(policy_file) = &plan.policy_file else { return Ok(Vec::new()) };
    let policy = tailshift_plans::policy::Policy::load(std::path::Path::new(policy_file))?;
    let Some(file) = policy
        .checks
        .get(s.id.as_str())
        .or_else(|| policy.checks.get(s.id.name()))
        .and_then(|c| c.credentials_file.clone())
    else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let lines: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    if let Some(bad) = lines.iter().find(|l| !l.contains(':')) {
        anyhow::bail!(
            "{file}: expected `Name: value` header lines, found {:?}",
            bad.chars().take(12).collect::<String>()
        );
    }
    Ok(lines)
}

fn legacy_name(s: &PlannedService) -> String {
    s.placement.names.first().map(|n| n.name.to_ascii_lowercase()).unwrap_or_default()
}

fn shim_service(s: &PlannedService, cfg: &ApplyConfig) -> ShimService {
    ShimService {
        service: s.id.to_string(),
        legacy_name: legacy_name(s),
        new_names: s.placement.names.iter().skip(1).map(|n| n.name.clone()).collect(),
        proxy_addrs: cfg.proxy_addrs.clone(),
        funnel: s.inventory.effective.bool("funnel").unwrap_or(false),
    }
}

fn shim_for(
    strategy: Strategy,
    cfg: &ApplyConfig,
    plan: &Plan,
    svc: &PlannedService,
) -> anyhow::Result<Box<dyn Shim>> {
    match strategy {
        Strategy::SplitDns => {
            Ok(Box::new(SplitDnsShim {
                records: RecordsFile::new(cfg.records_file.clone().ok_or_else(|| {
                    anyhow::anyhow!("[apply] records_file is needed for split-dns")
                })?),
                responder: cfg
                    .resolver
                    .ok_or_else(|| anyhow::anyhow!("[apply] resolver is needed for split-dns"))?,
            }))
        }
        Strategy::Hosts => Ok(Box::new(HostsShim {
            file: HostsFile::new(
                cfg.hosts_file
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("[apply] hosts_file is needed for hosts"))?,
            ),
        })),
        Strategy::Headscale => {
            let h = cfg
                .headscale
                .clone()
                .unwrap_or(super::config::HeadscaleConfig { command: vec!["headscale".into()] });
            Ok(Box::new(tailshift_shims::headscale::HeadscaleShim {
                records: RecordsFile::new(cfg.records_file.clone().ok_or_else(|| {
                    anyhow::anyhow!(
                        "[apply] records_file (headscale's extra_records_path) is needed for headscale"
                    )
                })?),
                command: h.command,
                // MagicDNS as the tailnet's clients ask it.
                resolver: cfg.resolver.unwrap_or_else(|| "100.100.100.100:53".parse().expect("literal")),
            }))
        }
        Strategy::TailscaleServices => {
            let t = cfg.tailscale.clone().ok_or_else(|| {
                anyhow::anyhow!("[apply.tailscale] is needed for tailscale-services")
            })?;
            let cred = tailshift_shims::admin_api::Credential::from_file(&t.credentials_file)?;
            Ok(Box::new(tailshift_shims::services::TailscaleServicesShim {
                api: tailshift_shims::admin_api::AdminApi::new(&t.api_base, &t.tailnet, cred),
                localapi: tailshift_shims::LocalApi::new(&t.localapi_socket),
                services_dir: t.services_dir,
                node_socket: t.node_socket,
                legacy_tags: t.legacy_tags,
                service_tags: t.service_tags,
                auto_approved: t.auto_approved,
            }))
        }
        Strategy::KeepNode => {
            let k = cfg
                .keep_node
                .clone()
                .ok_or_else(|| anyhow::anyhow!("[apply.keep_node] is needed for keep-node"))?;
            let services =
                plan.services.iter().map(|s| (s.id.to_string(), s.inventory.clone())).collect();
            Ok(Box::new(tailshift_shims::keep_node::KeepNodeShim {
                dir: k.dir,
                services,
                tsnsrv: k.tsnsrv,
                // The kept node's own metrics (tsnsrv's prometheusAddr) tell that it runs.
                metrics_addr: svc.inventory.effective.str("prometheusAddr").map(str::to_string),
            }))
        }
    }
}

fn run_legacy(
    cfg: &ApplyConfig,
    action: &str,
    unit: &str,
    s: &PlannedService,
    wave: usize,
) -> anyhow::Result<()> {
    match &cfg.legacy {
        Legacy::Command { command } => {
            let (prog, args) = command
                .split_first()
                .ok_or_else(|| anyhow::anyhow!("[apply] legacy command is empty"))?;
            let out = super::signals::run(
                std::process::Command::new(prog)
                    .args(args)
                    .env("TAILSHIFT_ACTION", action)
                    .env("TAILSHIFT_UNIT", unit)
                    .env("TAILSHIFT_SERVICE", s.id.as_str())
                    .env("TAILSHIFT_WAVE", wave.to_string()),
                Duration::from_secs(cfg.adapter_timeout_s),
            )?;
            if !out.status.success() {
                anyhow::bail!(
                    "{prog} {action} {unit}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(())
        }
        Legacy::Nix { module, switch } => super::nix_adapter::act(
            module,
            switch,
            action,
            unit,
            Duration::from_secs(cfg.adapter_timeout_s),
        ),
        Legacy::Systemd if action == "finalize" => {
            // What only a rollback needed: the node's state (its identity on the tailnet).
            let name = unit.trim_end_matches(".service");
            let dir = std::path::Path::new("/var/lib").join(name);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
            }
            Ok(())
        }
        Legacy::Systemd => {
            if action == "stop" {
                eprintln!(
                    "warning: {unit} is stopped and masked with --runtime: a reboot starts it again; make it permanent in the host's configuration"
                );
            }
            let steps: Vec<Vec<&str>> = match action {
                "stop" => vec![vec!["stop", unit], vec!["mask", "--runtime", unit]],
                "start" => vec![vec!["unmask", "--runtime", unit], vec!["start", unit]],
                other => anyhow::bail!("the systemd adapter cannot {other}"),
            };
            for a in steps {
                let out = super::signals::run(
                    std::process::Command::new("systemctl").args(&a),
                    Duration::from_secs(cfg.adapter_timeout_s),
                )?;
                if !out.status.success() {
                    anyhow::bail!(
                        "systemctl {}: {}",
                        a.join(" "),
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
            }
            Ok(())
        }
    }
}

/// Words for a step (journal, dry run).
fn describe(step: &Step) -> String {
    match step {
        Step::AddRoute => "add the route".into(),
        Step::ShimPrepare { strategy } => format!("{} prepare", strategy.as_str()),
        Step::Settle => "settle".into(),
        Step::StopLegacy { unit } => format!("stop {unit}"),
        Step::ShimComplete { strategy } => format!("{} complete", strategy.as_str()),
        Step::RepointLegacy { unit } => format!("repoint {unit}"),
        Step::Verify { path, status } => {
            format!("verify {path} answers like before (expected {status})")
        }
    }
}

struct Ctx<'a> {
    req: &'a Request<'a>,
    journal: Journal,
    state: State,
    dir: std::path::PathBuf,
    operation: &'static str,
}

impl Ctx<'_> {
    fn record(
        &mut self,
        s: &PlannedService,
        index: usize,
        what: &str,
        f: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let (plan_id, id) = (self.req.plan.plan_id.clone(), s.id.as_str());
        let intent =
            self.journal.intent(&plan_id, self.operation, self.req.wave, id, index, what)?;
        failpoint(&format!("{}-{}-{index}-intent", self.operation, s.id));
        let r = f();
        self.journal.result(&intent, r.as_ref().err().map(|e| format!("{e:#}")))?;
        failpoint(&format!("{}-{}-{index}-result", self.operation, s.id));
        r
    }
}

/// A crash point for tests: with `TAILSHIFT_FAILPOINT=<operation>-<service>-<step>-<intent|result>`
/// (e.g. `apply-nas/app1-3-intent`) a debug build kills itself with SIGKILL right after writing
/// that journal record. Release builds ignore it.
fn failpoint(name: &str) {
    if cfg!(debug_assertions) && std::env::var("TAILSHIFT_FAILPOINT").is_ok_and(|v| v == name) {
        // SAFETY: sending ourselves SIGKILL, as a crash would.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// The wave's services on this host, in plan order.
fn wave_services<'a>(
    plan: &'a Plan,
    wave: usize,
    host: &str,
) -> anyhow::Result<Vec<&'a PlannedService>> {
    let w = plan.waves.iter().find(|w| w.number == wave).ok_or_else(|| {
        anyhow::anyhow!("the plan has no wave {wave} (it has {})", plan.waves.len())
    })?;
    Ok(w.services
        .iter()
        .filter_map(|id| plan.services.iter().find(|s| &s.id == id))
        .filter(|s| s.inventory.host.known().is_some_and(|h| h == host))
        .collect())
}

/// A service's steps in a wave, as the plan lists them.
fn steps_of(plan: &Plan, wave: usize, s: &PlannedService) -> Vec<Step> {
    plan.waves
        .iter()
        .find(|w| w.number == wave)
        .and_then(|w| w.steps.get(&s.id))
        .cloned()
        .unwrap_or_default()
}

/// Takes the state directory's lock, or says who holds it (exit 8). A dry run takes nothing:
/// it only checks that the real run could take it (`None`).
pub(super) fn lock(req: &Request, operation: &str) -> Result<Option<Lock>, Exit> {
    let dir = req.cfg.state_dir();
    if req.dry_run {
        return match Lock::owner(&dir) {
            Ok(None) => Ok(None),
            Ok(Some(o)) => {
                eprintln!("error: {}", super::lock::LockError::Held { owner: Box::new(o), dir });
                Err(Exit::Locked)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Err(Exit::Locked)
            }
        };
    }
    Lock::acquire(&dir, operation, Some(req.wave)).map(Some).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Locked
    })
}

/// What a step would do, concretely, for a dry run: the adapter's command and environment,
/// the route (without upstream header values, which can be credentials), the shim's actions.
fn effect_of(req: &Request, s: &PlannedService, step: &Step, undo: bool) -> String {
    let cfg = req.cfg;
    let legacy = |action: &str, unit: &str| match &cfg.legacy {
        Legacy::Command { command } => format!(
            "run {} with TAILSHIFT_ACTION={action} TAILSHIFT_UNIT={unit} TAILSHIFT_SERVICE={} TAILSHIFT_WAVE={}",
            command.join(" "),
            s.id,
            req.wave
        ),
        Legacy::Nix { module, switch } => {
            format!("write {} ({action} {unit}), then run {}", module.display(), switch.join(" "))
        }
        Legacy::Systemd => match action {
            "stop" => format!("systemctl stop {unit}; systemctl mask --runtime {unit}"),
            "start" => format!("systemctl unmask --runtime {unit}; systemctl start {unit}"),
            other => format!("systemd adapter: {other} {unit}"),
        },
    };
    let shim = |what: &str| match shim_for(s.strategy, cfg, req.plan, s) {
        Ok(sh) => format!("{what}: {}", sh.describe(&shim_service(s, cfg)).join("; ")),
        Err(e) => format!("{what}: cannot be built: {e:#}"),
    };
    match (step, undo) {
        (Step::AddRoute, false) => match route_of(s) {
            Ok(r) => {
                let mut shown = r.clone();
                for v in shown.upstream_headers.values_mut() {
                    *v = "(hidden)".into();
                }
                format!(
                    "PUT /routes on {} with {}",
                    cfg.admin_socket.display(),
                    serde_json::to_string(&shown).unwrap_or_default()
                )
            }
            Err(e) => format!("{e:#}"),
        },
        (Step::AddRoute, true) => {
            format!("PUT /routes on {} without {}", cfg.admin_socket.display(), s.id)
        }
        (Step::ShimPrepare { .. }, false) => shim("shim prepare"),
        (Step::ShimPrepare { .. }, true) => shim("shim unprepare, reversing"),
        (Step::ShimComplete { .. }, false) => shim("shim complete"),
        (Step::ShimComplete { .. }, true) => shim("shim uncomplete, reversing"),
        (Step::Settle, _) => format!("wait {} ms", cfg.settle_ms),
        (Step::StopLegacy { unit }, false) => legacy("stop", unit),
        (Step::StopLegacy { unit }, true) => legacy("start", unit),
        (Step::RepointLegacy { unit }, false) => legacy("repoint", unit),
        (Step::RepointLegacy { unit }, true) => legacy("restore", unit),
        (Step::Verify { path, status }, _) => format!(
            "ask https://{}{path} through the resolver, expect {status} from the proxy",
            legacy_name(s)
        ),
    }
}

/// Prints a dry run's steps: the ones the real run would take, in its order.
fn print_dry_run(req: &Request, operation: &str, steps: &[(&PlannedService, usize, Step, bool)]) {
    event(
        req,
        format!("{operation} wave {} on {} (dry run: nothing changes)", req.wave, req.host),
        serde_json::json!({"event": "dry_run", "operation": operation}),
    );
    for (s, i, step, undo) in steps {
        let what = match (step, undo) {
            (Step::AddRoute, true) => "undo: remove the route".to_string(),
            (_, true) => format!("undo: {}", describe(step)),
            _ => describe(step),
        };
        let effect = effect_of(req, s, step, *undo);
        event(
            req,
            format!("  {} step {i}: {what}: {effect}", s.id),
            serde_json::json!({"event": "would_run", "service": s.id, "step": i, "what": what, "effect": effect}),
        );
    }
}

/// Applies a wave. Returns the exit code of design section 6.
pub fn apply(req: &Request) -> anyhow::Result<Exit> {
    let cfg = req.cfg;
    let dir = cfg.state_dir();
    let services = wave_services(req.plan, req.wave, &req.host)?;
    let steps_of = |s: &PlannedService| steps_of(req.plan, req.wave, s);
    let _lock = match lock(req, "apply") {
        Ok(l) => l,
        Err(exit) => return Ok(exit),
    };
    let state = State::load(&dir)?;
    // A rollback that did not finish leaves steps partly undone: applying over it would mark
    // services applied whose legacy node runs again. Only the rollback can complete it.
    let half_undone: Vec<&str> = services
        .iter()
        .filter(|s| {
            state.services.get(s.id.as_str()).is_some_and(|st| st.phase == Phase::RollingBack)
        })
        .map(|s| s.id.as_str())
        .collect();
    if !half_undone.is_empty() {
        eprintln!(
            "error: a rollback of wave {w} did not finish on {h} ({}): complete it first with `migrate rollback --wave {w} --host {h} --config {c} --plan {p}`",
            half_undone.join(", "),
            w = req.wave,
            h = req.host,
            c = req.config_path.display(),
            p = req.plan_path.display()
        );
        return Ok(Exit::Dirty);
    }
    // Earlier waves must be in place on this host.
    for w in req.plan.waves.iter().filter(|w| w.number < req.wave) {
        for s in wave_services(req.plan, w.number, &req.host)? {
            let ok = state
                .services
                .get(s.id.as_str())
                .is_some_and(|st| matches!(st.phase, Phase::Applied | Phase::Finalized));
            if !ok {
                eprintln!(
                    "error: wave {} is not applied on {} ({} is not), apply it first",
                    w.number, req.host, s.id
                );
                return Ok(Exit::Blocked);
            }
        }
    }
    // Another plan changed this host after this plan was made: stale.
    let created = req.plan.created;
    let foreign: Vec<_> = super::journal::Journal::read(&dir)?
        .into_iter()
        .filter(|r| r.plan_id != req.plan.plan_id && Timestamp::from_unix_secs(r.at) >= created)
        .collect();
    if let Some(r) = foreign.first() {
        eprintln!(
            "stale plan: plan {} changed this host ({} of wave {}, {}) after this plan was created ({created}); plan again",
            r.plan_id, r.operation, r.wave, r.service
        );
        return Ok(Exit::StalePlan);
    }
    if services.is_empty() {
        event(
            req,
            format!("wave {}: no service on {}", req.wave, req.host),
            serde_json::json!({"event": "wave", "result": "nothing_to_do"}),
        );
        return Ok(Exit::Ok);
    }
    // Pre-flight: the proxy answers, every upstream can be reached, shims can be built.
    let mut blocked = Vec::new();
    if let Err(e) = admin_client::healthy(&cfg.admin_socket) {
        blocked.push(format!("{e:#}"));
    }
    // A dependency on another host must answer by its name (moved there already, or still on
    // its node): this host cannot see that host's state, only whether the service works.
    for s in &services {
        for dep in &s.depends_on {
            let Some(d) = req.plan.services.iter().find(|x| x.id == dep.id) else { continue };
            if d.inventory.host.known().is_some_and(|h| h == &req.host) {
                continue;
            }
            if let Outcome::Error(e) = check(&cfg.check, &legacy_name(d), "/") {
                blocked.push(format!(
                    "{} depends on {} (on another host), which does not answer: {e}",
                    s.id, d.id
                ));
            }
        }
    }
    if let Some(why) = shared_process_conflict(req, &state, &services) {
        blocked.push(why);
    }
    for s in &services {
        match route_of(s) {
            Ok(r) => {
                if let Err(e) = reach_upstream(r) {
                    // Name what was dialed: the socket or address, else the URL.
                    let dialed = r
                        .upstream
                        .unix
                        .clone()
                        .or_else(|| r.upstream.tcp_addr.clone())
                        .unwrap_or_else(|| r.upstream.url.to_string());
                    blocked.push(format!("{}: upstream {dialed}: {e}", s.id));
                }
            }
            Err(e) => blocked.push(format!("{}: {e}", s.id)),
        }
        if let Err(e) = shim_for(s.strategy, cfg, req.plan, s) {
            blocked.push(format!("{}: {e:#}", s.id));
        }
    }
    if !blocked.is_empty() {
        for b in &blocked {
            eprintln!("pre-flight: {b}");
        }
        eprintln!("error: pre-flight blocked wave {}; nothing changed", req.wave);
        return Ok(Exit::Blocked);
    }
    if req.dry_run {
        let mut would = Vec::new();
        for s in &services {
            let done = state
                .services
                .get(s.id.as_str())
                .filter(|st| st.plan_id == req.plan.plan_id)
                .map(|st| st.done.clone())
                .unwrap_or_default();
            for (i, step) in steps_of(s).into_iter().enumerate() {
                if !done.contains(&i) {
                    would.push((*s, i, step, false));
                }
            }
        }
        print_dry_run(req, "apply", &would);
        return Ok(Exit::Ok);
    }
    // Baseline through the old names, before anything moves.
    let mut baseline = BTreeMap::new();
    for s in &services {
        let path = steps_of(s)
            .iter()
            .find_map(|st| match st {
                Step::Verify { path, .. } => Some(path.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "/".into());
        let o = check_with(&cfg.check, &legacy_name(s), &path, &credentials(req.plan, s)?);
        event(
            req,
            format!("baseline {}: {}", s.id, show(&o)),
            serde_json::json!({"event": "baseline", "service": s.id, "outcome": show(&o), "status": match &o { Outcome::Status { code, .. } => Some(*code), _ => None }}),
        );
        baseline.insert(s.id.clone(), o);
    }
    let mut ctx =
        Ctx { req, journal: Journal::open(&dir)?, state, dir: dir.clone(), operation: "apply" };
    let mut failure = None;
    let mut inconclusive: Vec<&ServiceId> = Vec::new();
    super::signals::catch();
    'services: for s in &services {
        let steps = steps_of(s);
        let done = ctx
            .state
            .services
            .get(s.id.as_str())
            .filter(|st| st.plan_id == req.plan.plan_id)
            .map(|st| st.done.clone())
            .unwrap_or_default();
        for (i, step) in steps.iter().enumerate() {
            if done.contains(&i) {
                continue;
            }
            if super::signals::interrupted() {
                eprintln!(
                    "interrupted before {} step {i}; every step so far is recorded: run `migrate apply --wave {}` again to resume, or `migrate rollback --wave {}`",
                    s.id, req.wave, req.wave
                );
                return Ok(Exit::Interrupted);
            }
            let what = describe(step);
            let r = ctx.record(s, i, &what, || run_step(req, s, step, baseline.get(&s.id)));
            match r {
                Ok(()) => {
                    let generation0 =
                        ctx.state.services.get(s.id.as_str()).map_or(0, |x| x.generation);
                    let entry =
                        ctx.state.services.entry(s.id.to_string()).or_insert(ServiceState {
                            phase: Phase::Applying,
                            wave: req.wave,
                            plan_id: req.plan.plan_id.clone(),
                            done: vec![],
                            generation: generation0,
                        });
                    entry.phase = Phase::Applying;
                    entry.done.push(i);
                    ctx.state.save(&ctx.dir)?;
                    event(
                        req,
                        format!("{} step {i}: {what}: ok", s.id),
                        serde_json::json!({"event": "step", "operation": "apply", "service": s.id, "step": i, "what": what, "result": "ok"}),
                    );
                }
                Err(e)
                    if e.downcast_ref::<Inconclusive>().is_some()
                        && cfg.on_inconclusive != super::config::OnCheck::Rollback =>
                {
                    // Everything else of the step held: it counts as done; by default the wave
                    // waits for the operator (or its watcher's deadline) instead of passing.
                    eprintln!("{} step {i}: {what}: {e:#}", s.id);
                    if cfg.on_inconclusive == super::config::OnCheck::Pause {
                        inconclusive.push(&s.id);
                    }
                    if let Some(st) = ctx.state.services.get_mut(s.id.as_str()) {
                        st.done.push(i);
                    }
                    ctx.state.save(&ctx.dir)?;
                }
                Err(e)
                    if matches!(step, Step::Verify { .. })
                        && cfg.on_fail == super::config::OnCheck::Pause =>
                {
                    // The policy says a failed check pauses: the wave stays as it is, for the
                    // operator to confirm or roll back.
                    eprintln!("{} step {i}: {what}: FAILED: {e:#} (on_fail = \"pause\")", s.id);
                    inconclusive.push(&s.id);
                    if let Some(st) = ctx.state.services.get_mut(s.id.as_str()) {
                        st.done.push(i);
                    }
                    ctx.state.save(&ctx.dir)?;
                }
                Err(e) => {
                    eprintln!("{} step {i}: {what}: FAILED: {e:#}", s.id);
                    failure = Some(format!("{}: {what}: {e:#}", s.id));
                    break 'services;
                }
            }
        }
        if let Some(st) = ctx.state.services.get_mut(s.id.as_str()) {
            st.phase = match cfg.confirm {
                super::config::Confirm::Checks if !inconclusive.contains(&&s.id) => Phase::Applied,
                _ => Phase::Unconfirmed,
            };
            st.generation += 1;
        }
        ctx.state.save(&ctx.dir)?;
    }
    if let Some(why) = failure.as_ref().filter(|_| super::signals::interrupted()) {
        // The operator asked to stop (a third signal stopped the adapter): stop, resumable,
        // rather than start a rollback nobody asked for.
        eprintln!(
            "interrupted: wave {w} stopped ({why}); every step so far is recorded: run `migrate apply --wave {w}` again to resume, or `migrate rollback --wave {w}`",
            w = req.wave
        );
        return Ok(Exit::Interrupted);
    }
    if let Some(why) = failure {
        eprintln!("wave {} failed ({why}); rolling it back", req.wave);
        ctx.operation = "rollback";
        let undone = undo(&mut ctx, &services);
        let names: Vec<&str> = services.iter().map(|s| s.id.as_str()).collect();
        return Ok(match undone {
            Ok(()) => {
                // The closing line: what failed, what was undone, the exit code.
                eprintln!(
                    "wave {} on {}: {why}; rolled back ({} back on their legacy nodes: {}); exit {}",
                    req.wave,
                    req.host,
                    tailshift_util::plural(names.len(), "service"),
                    names.join(", "),
                    Exit::RolledBack.code()
                );
                Exit::RolledBack
            }
            Err(e) => {
                eprintln!(
                    "error: wave {} on {}: {why}; the rollback failed too: {e:#}; `migrate status --state-dir {}` shows where each service is; exit {}",
                    req.wave,
                    req.host,
                    dir.display(),
                    Exit::Dirty.code()
                );
                Exit::Dirty
            }
        });
    }
    if cfg.confirm == super::config::Confirm::Operator || !inconclusive.is_empty() {
        let deadline = tailshift_plans::plan_file::now_unix() + cfg.confirm_timeout_s;
        drop(ctx);
        super::confirm::spawn_watcher(req, deadline)?;
        event(
            req,
            format!(
                "wave {} applied on {} and checked; confirm with `migrate confirm --wave {}` within {} s, or it is rolled back",
                req.wave, req.host, req.wave, cfg.confirm_timeout_s
            ),
            serde_json::json!({"event": "wave", "result": "awaiting_confirmation", "deadline": deadline}),
        );
        return Ok(Exit::Paused);
    }
    event(
        req,
        format!("wave {} applied on {}", req.wave, req.host),
        serde_json::json!({"event": "wave", "result": "applied"}),
    );
    Ok(Exit::Ok)
}

fn show(o: &Outcome) -> String {
    match o {
        Outcome::Status { code, addr, location } => format!(
            "{code} from {addr}{}",
            location.as_ref().map(|l| format!(" -> {l}")).unwrap_or_default()
        ),
        Outcome::Error(e) => format!("no answer ({e})"),
    }
}

fn reach_upstream(r: &Route) -> anyhow::Result<()> {
    let t = Duration::from_secs(3);
    if let Some(u) = &r.upstream.unix {
        std::os::unix::net::UnixStream::connect(u)?;
        return Ok(());
    }
    let target = match &r.upstream.tcp_addr {
        Some(a) => a.clone(),
        None => {
            let u = &r.upstream.url;
            format!(
                "{}:{}",
                u.host_str().unwrap_or("localhost"),
                u.port_or_known_default().unwrap_or(80)
            )
        }
    };
    use std::net::ToSocketAddrs;
    let addr =
        target.to_socket_addrs()?.next().ok_or_else(|| anyhow::anyhow!("{target}: no address"))?;
    std::net::TcpStream::connect_timeout(&addr, t)?;
    Ok(())
}

fn run_step(
    req: &Request,
    s: &PlannedService,
    step: &Step,
    baseline: Option<&Outcome>,
) -> anyhow::Result<()> {
    let cfg = req.cfg;
    match step {
        Step::AddRoute => {
            let mut table = admin_client::routes(&cfg.admin_socket)?;
            let route = route_of(s)?;
            table.retain(|r| r.service != route.service);
            table.push(route.clone());
            admin_client::put_routes(&cfg.admin_socket, &table)
        }
        Step::ShimPrepare { strategy } => {
            Ok(shim_for(*strategy, cfg, req.plan, s)?.prepare(&shim_service(s, cfg))?)
        }
        Step::Settle => {
            std::thread::sleep(Duration::from_millis(cfg.settle_ms));
            Ok(())
        }
        Step::StopLegacy { unit } => run_legacy(cfg, "stop", unit, s, req.wave),
        Step::ShimComplete { strategy } => {
            Ok(shim_for(*strategy, cfg, req.plan, s)?.complete(&shim_service(s, cfg))?)
        }
        Step::RepointLegacy { unit } => {
            // The shim writes the kept node's own definition; the adapter applies it.
            shim_for(s.strategy, cfg, req.plan, s)?.prepare(&shim_service(s, cfg))?;
            run_legacy(cfg, "repoint", unit, s, req.wave)
        }
        Step::Verify { path, .. } => {
            let shim = shim_for(s.strategy, cfg, req.plan, s)?;
            let v = shim.verify(&shim_service(s, cfg))?;
            if !v.holds() {
                let why = match v {
                    tailshift_shims::Verification::Missing(why) => why,
                    tailshift_shims::Verification::Holds => String::new(),
                };
                anyhow::bail!("the old name does not lead to the proxy: {why}");
            }
            let creds = credentials(req.plan, s)?;
            let now = check_with(&cfg.check, &legacy_name(s), path, &creds);
            // A new canonical URL: the old name must answer 308 to it, path kept.
            if let Some(to) = &route_of(s)?.redirect_to {
                return match &now {
                    Outcome::Status { code: 308, location: Some(l), .. }
                        if l.starts_with(to.trim_end_matches('/')) =>
                    {
                        Ok(())
                    }
                    other => anyhow::bail!(
                        "{} should answer 308 to {to}, answers {}",
                        legacy_name(s),
                        show(other)
                    ),
                };
            }
            let proxy: Vec<IpAddr> = cfg.proxy_addrs.clone();
            match (baseline, &now) {
                // keep-node: the old name stays on its node; only the new name moved.
                (_, Outcome::Status { addr, .. })
                    if s.strategy != Strategy::KeepNode
                        && !proxy.is_empty()
                        && !proxy.contains(addr) =>
                {
                    anyhow::bail!("{} was answered by {addr}, not by the proxy", legacy_name(s))
                }
                // Behind forward auth, without credentials, the check only reaches the auth
                // service: it cannot tell whether the app works. Inconclusive, not a pass.
                (Some(b), Outcome::Status { code, .. })
                    if creds.is_empty()
                        && s.inventory.effective.str("authURL").is_some_and(|u| !u.is_empty())
                        && (*code == 401 || *code == 403 || (300..400).contains(code))
                        && b.class() == Some(code / 100) =>
                {
                    Err(anyhow::Error::new(Inconclusive(format!(
                        "{} answers {code} from its forward-auth service, as before; without check credentials that says nothing about the app",
                        legacy_name(s)
                    ))))
                }
                (Some(b), n) if b.class().is_some() && b.class() == n.class() => Ok(()),
                (Some(b), n) => {
                    anyhow::bail!("{} answers {} now, {} before", legacy_name(s), show(n), show(b))
                }
                (None, _) => Ok(()),
            }
        }
    }
}

/// A check that could not decide (design: inconclusive pauses; it never passes).
#[derive(Debug)]
struct Inconclusive(String);

impl std::fmt::Display for Inconclusive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "inconclusive: {}", self.0)
    }
}

impl std::error::Error for Inconclusive {}

/// The steps of a service's wave that an undo must reverse: those the state records as done,
/// and every step an apply started since the service was last fully undone. The journal is the
/// truth: a crash can come between a step's result and the state write, or before its result.
/// Undoing a step that did not happen is harmless: every inverse is idempotent.
fn steps_to_undo(
    dir: &std::path::Path,
    state: &State,
    wave: usize,
    s: &PlannedService,
) -> anyhow::Result<Vec<usize>> {
    let mut done = state.services.get(s.id.as_str()).map(|st| st.done.clone()).unwrap_or_default();
    let mut started: Vec<usize> = Vec::new();
    for r in Journal::read(dir)? {
        if r.service != s.id || r.wave != wave {
            continue;
        }
        match (r.operation.as_str(), &r.kind) {
            ("apply", super::journal::Kind::Intent) => started.push(r.step),
            ("rollback", super::journal::Kind::Result) if r.step == 0 && r.error.is_none() => {
                started.clear()
            }
            _ => {}
        }
    }
    for i in started {
        if !done.contains(&i) {
            done.push(i);
        }
    }
    done.sort_unstable();
    Ok(done)
}

/// What an undo of these services would run, in its order (for a dry run).
fn undo_steps<'a>(
    req: &Request,
    dir: &std::path::Path,
    state: &State,
    services: &[&'a PlannedService],
) -> anyhow::Result<Vec<(&'a PlannedService, usize, Step, bool)>> {
    let mut out = Vec::new();
    for s in services.iter().rev() {
        let steps = steps_of(req.plan, req.wave, s);
        let done = steps_to_undo(dir, state, req.wave, s)?;
        for &i in done.iter().rev() {
            match steps.get(i) {
                Some(Step::AddRoute | Step::Verify { .. }) | None => {}
                Some(step) => out.push((*s, i, step.clone(), true)),
            }
        }
        if done.contains(&0) {
            out.push((*s, 0, Step::AddRoute, true));
        }
    }
    Ok(out)
}

/// Undoes what the journal says this run did to these services, in reverse, the route last.
fn undo(ctx: &mut Ctx, services: &[&PlannedService]) -> anyhow::Result<()> {
    let req = ctx.req;
    let cfg = req.cfg;
    let mut first_error = None;
    for s in services.iter().rev() {
        let steps = steps_of(req.plan, req.wave, s);
        let done = steps_to_undo(&ctx.dir, &ctx.state, req.wave, s)?;
        if let Some(st) = ctx.state.services.get_mut(s.id.as_str()) {
            st.phase = Phase::RollingBack;
        }
        ctx.state.save(&ctx.dir)?;
        let mut route_added = false;
        for &i in done.iter().rev() {
            let Some(step) = steps.get(i) else { continue };
            if super::signals::interrupted() {
                ctx.state.save(&ctx.dir)?;
                return Err(super::signals::Interrupted.into());
            }
            let what = format!("undo: {}", describe(step));
            let r = match step {
                Step::AddRoute => {
                    route_added = true;
                    continue;
                }
                Step::ShimPrepare { strategy } => ctx.record(s, i, &what, || {
                    Ok(shim_for(*strategy, cfg, req.plan, s)?.unprepare(&shim_service(s, cfg))?)
                }),
                Step::StopLegacy { unit } => {
                    ctx.record(s, i, &what, || run_legacy(cfg, "start", unit, s, req.wave))
                }
                Step::ShimComplete { strategy } => ctx.record(s, i, &what, || {
                    Ok(shim_for(*strategy, cfg, req.plan, s)?.uncomplete(&shim_service(s, cfg))?)
                }),
                Step::RepointLegacy { unit } => ctx.record(s, i, &what, || {
                    shim_for(s.strategy, cfg, req.plan, s)?.unprepare(&shim_service(s, cfg))?;
                    run_legacy(cfg, "restore", unit, s, req.wave)
                }),
                // The legacy node was started just before: give it (and caches) the settle time
                // before names point back at it.
                Step::Settle => ctx.record(s, i, &what, || {
                    std::thread::sleep(Duration::from_millis(cfg.settle_ms));
                    Ok(())
                }),
                // Nothing to undo, but recorded: it closes an interrupted check's intent.
                Step::Verify { .. } => ctx.record(s, i, &what, || Ok(())),
            };
            match r {
                // Closing an interrupted check's intent changes nothing: not worth a line.
                Ok(()) if matches!(step, Step::Verify { .. }) => {}
                Ok(()) => event(
                    req,
                    format!("{} step {i}: {what}: ok", s.id),
                    serde_json::json!({"event": "step", "operation": ctx.operation, "service": s.id, "step": i, "what": what, "result": "ok"}),
                ),
                Err(e) => {
                    eprintln!("{} step {i}: {what}: FAILED: {e:#}", s.id);
                    first_error.get_or_insert(e);
                }
            }
        }
        if route_added || done.contains(&0) {
            // Clients that still hold the proxy's address must not meet a 404: settle first.
            std::thread::sleep(Duration::from_millis(cfg.settle_ms));
            let what = "undo: remove the route";
            let r = ctx.record(s, 0, what, || {
                let mut table = admin_client::routes(&cfg.admin_socket)?;
                table.retain(|r| r.service != s.id);
                admin_client::put_routes(&cfg.admin_socket, &table)
            });
            match r {
                Ok(()) => event(
                    req,
                    format!("{} step 0: {what}: ok", s.id),
                    serde_json::json!({"event": "step", "operation": ctx.operation, "service": s.id, "step": 0, "what": what, "result": "ok"}),
                ),
                Err(e) => {
                    eprintln!("{} step 0: {what}: FAILED: {e:#}", s.id);
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_none() {
            ctx.state.services.remove(s.id.as_str());
        }
        ctx.state.save(&ctx.dir)?;
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The fork's `tsnsrv-all` runs every service of a host in one process: stopping or masking it
/// to move some would take down the others (the forward-auth service among them). Until the
/// adapters can rewrite that process's service list, a wave that would stop it while it still
/// serves services outside the wave is refused before anything changes.
fn shared_process_conflict(
    req: &Request,
    state: &State,
    services: &[&PlannedService],
) -> Option<String> {
    let shared = |s: &PlannedService| legacy_unit(req.plan, s.wave.unwrap_or(0), s) == SHARED_UNIT;
    if !services.iter().any(|s| shared(s)) {
        return None;
    }
    let moving: BTreeSet<&str> = services.iter().map(|s| s.id.as_str()).collect();
    let staying: Vec<&str> = req
        .plan
        .services
        .iter()
        .filter(|s| s.inventory.host.known().is_some_and(|h| h == &req.host))
        .filter(|s| s.inventory.flavour == tailshift_parsers::Flavour::ForkAll)
        .filter(|s| !moving.contains(s.id.as_str()))
        .filter(|s| {
            !state
                .services
                .get(s.id.as_str())
                .is_some_and(|st| matches!(st.phase, Phase::Applied | Phase::Finalized))
        })
        .map(|s| s.id.as_str())
        .collect();
    if staying.is_empty() {
        return None;
    }
    Some(format!(
        "{SHARED_UNIT} on {} also serves {} that wave {} does not move ({}): stopping it would take them down; no adapter can yet take a subset out of the fork's one process, so move all of them in one wave (`[plan.pins]`)",
        req.host,
        tailshift_util::plural(staying.len(), "service"),
        req.wave,
        staying.join(", ")
    ))
}

/// The unit of the fork's one process for all of a host's services.
const SHARED_UNIT: &str = "tsnsrv-all.service";

/// The legacy unit a service's steps stop or re-point.
fn legacy_unit(plan: &Plan, wave: usize, s: &PlannedService) -> String {
    steps_of(plan, wave, s)
        .into_iter()
        .find_map(|st| match st {
            Step::StopLegacy { unit } | Step::RepointLegacy { unit } => Some(unit),
            _ => None,
        })
        .unwrap_or_default()
}

/// Removes what only a rollback of the wave needed (`migrate finalize --wave N`): after it the
/// wave can no longer be rolled back, which is said before anything starts.
pub fn finalize(req: &Request) -> anyhow::Result<Exit> {
    let cfg = req.cfg;
    let dir = cfg.state_dir();
    let _lock = match lock(req, "finalize") {
        Ok(l) => l,
        Err(exit) => return Ok(exit),
    };
    let state = State::load(&dir)?;
    let services = wave_services(req.plan, req.wave, &req.host)?;
    let not_applied: Vec<&str> = services
        .iter()
        .filter(|s| {
            !state
                .services
                .get(s.id.as_str())
                .is_some_and(|st| matches!(st.phase, Phase::Applied | Phase::Finalized))
        })
        .map(|s| s.id.as_str())
        .collect();
    if !not_applied.is_empty() {
        eprintln!(
            "error: wave {} is not applied and confirmed on {}: {}",
            req.wave,
            req.host,
            not_applied.join(", ")
        );
        return Ok(Exit::Blocked);
    }
    if req.dry_run {
        event(
            req,
            format!("finalize wave {} on {} (dry run: nothing changes)", req.wave, req.host),
            serde_json::json!({"event": "dry_run", "operation": "finalize"}),
        );
        for s in services.iter().filter(|s| {
            !state.services.get(s.id.as_str()).is_some_and(|st| st.phase == Phase::Finalized)
        }) {
            let unit = legacy_unit(req.plan, req.wave, s);
            let effect = match &cfg.legacy {
                Legacy::Command { command } => format!(
                    "run {} with TAILSHIFT_ACTION=finalize TAILSHIFT_UNIT={unit} TAILSHIFT_SERVICE={}",
                    command.join(" "),
                    s.id
                ),
                Legacy::Nix { .. } => format!("the nix adapter: finalize {unit}"),
                Legacy::Systemd => format!(
                    "remove /var/lib/{} (the node's state)",
                    unit.trim_end_matches(".service")
                ),
            };
            event(
                req,
                format!("  {}: finalize {unit}: {effect}", s.id),
                serde_json::json!({"event": "would_run", "service": s.id, "what": format!("finalize {unit}"), "effect": effect}),
            );
        }
        return Ok(Exit::Ok);
    }
    event(
        req,
        format!(
            "finalizing wave {} on {}: the legacy nodes' state goes, and the wave can no longer be rolled back",
            req.wave, req.host
        ),
        serde_json::json!({"event": "finalizing"}),
    );
    let mut ctx =
        Ctx { req, journal: Journal::open(&dir)?, state, dir: dir.clone(), operation: "finalize" };
    super::signals::catch();
    for s in &services {
        if ctx.state.services.get(s.id.as_str()).is_some_and(|st| st.phase == Phase::Finalized) {
            continue;
        }
        if super::signals::interrupted() {
            eprintln!(
                "interrupted: finalize of wave {w} stopped between services; run the same `migrate finalize --wave {w}` again to complete it",
                w = req.wave
            );
            return Ok(Exit::Interrupted);
        }
        let unit = legacy_unit(req.plan, req.wave, s);
        let r = ctx.record(s, usize::MAX - 1, &format!("finalize {unit}"), || {
            run_legacy(cfg, "finalize", &unit, s, req.wave)
        });
        if let Err(e) = r {
            eprintln!("error: finalizing {}: {e:#}", s.id);
            return Ok(Exit::Dirty);
        }
        if let Some(st) = ctx.state.services.get_mut(s.id.as_str()) {
            st.phase = Phase::Finalized;
            st.generation += 1;
        }
        ctx.state.save(&ctx.dir)?;
    }
    event(
        req,
        format!("wave {} finalized on {}", req.wave, req.host),
        serde_json::json!({"event": "wave", "result": "finalized"}),
    );
    Ok(Exit::Ok)
}

/// Rolls a wave back on this host (`migrate rollback --wave N`); with `cascade`, every applied
/// wave above it first, newest first.
pub fn rollback(req: &Request, cascade: bool) -> anyhow::Result<Exit> {
    let cfg = req.cfg;
    let dir = cfg.state_dir();
    let _lock = match lock(req, "rollback") {
        Ok(l) => l,
        Err(exit) => return Ok(exit),
    };
    let state = State::load(&dir)?;
    let mut later: Vec<usize> = state
        .services
        .values()
        .filter(|st| st.wave > req.wave)
        .map(|st| st.wave)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !later.is_empty() && !cascade {
        let ids: Vec<&str> = state
            .services
            .iter()
            .filter(|(_, st)| st.wave > req.wave)
            .map(|(k, _)| k.as_str())
            .collect();
        eprintln!(
            "error: later waves are applied on {} ({}); roll them back first, or pass --cascade",
            req.host,
            ids.join(", ")
        );
        return Ok(Exit::Blocked);
    }
    // Newest first, then the named wave; a finalized one anywhere in that range stops it all.
    later.sort_unstable_by(|a, b| b.cmp(a));
    let mut order = later;
    order.push(req.wave);
    for &w in &order {
        if let Some((id, _)) =
            state.services.iter().find(|(_, st)| st.wave == w && st.phase == Phase::Finalized)
        {
            eprintln!(
                "error: wave {w} was finalized on {} ({id} too): its legacy nodes' state is gone, it can no longer be rolled back{}",
                req.host,
                if w != req.wave { ", so neither can the waves below it" } else { "" }
            );
            return Ok(Exit::Blocked);
        }
    }
    if req.dry_run {
        let mut would = Vec::new();
        for &w in &order {
            let sub = Request { wave: w, ..req.clone() };
            let services = wave_services(req.plan, w, &req.host)?;
            would.extend(undo_steps(&sub, &dir, &state, &services)?);
        }
        print_dry_run(req, "rollback", &would);
        return Ok(Exit::Ok);
    }
    let mut state = Some(state);
    for &w in &order {
        let sub = Request { wave: w, ..req.clone() };
        let st = match state.take() {
            Some(s) => s,
            None => State::load(&dir)?,
        };
        let exit = rollback_one(&sub, st)?;
        if exit != Exit::Ok {
            return Ok(exit);
        }
    }
    Ok(Exit::Ok)
}

/// Rolls one wave back, the lock held.
fn rollback_one(req: &Request, state: State) -> anyhow::Result<Exit> {
    let cfg = req.cfg;
    let dir = cfg.state_dir();
    let services = wave_services(req.plan, req.wave, &req.host)?;
    let mut ctx =
        Ctx { req, journal: Journal::open(&dir)?, state, dir: dir.clone(), operation: "rollback" };
    super::signals::catch();
    if let Err(e) = undo(&mut ctx, &services) {
        if e.downcast_ref::<super::signals::Interrupted>().is_some() {
            eprintln!(
                "interrupted: the rollback of wave {} stopped between steps; every step so far is recorded: run the same `migrate rollback --wave {}` again to complete it",
                req.wave, req.wave
            );
            return Ok(Exit::Interrupted);
        }
        eprintln!("error: rollback of wave {} failed: {e:#}", req.wave);
        return Ok(Exit::Dirty);
    }
    // The legacy path must answer again.
    let mut bad = Vec::new();
    for s in &services {
        let o = check(&cfg.check, &legacy_name(s), "/");
        match &o {
            Outcome::Status { addr, .. } if !cfg.proxy_addrs.contains(addr) => {}
            other => bad.push(format!("{}: {}", s.id, show(other))),
        }
    }
    if !bad.is_empty() {
        eprintln!("error: after the rollback, the legacy path does not answer: {}", bad.join("; "));
        return Ok(Exit::Dirty);
    }
    event(
        req,
        format!("wave {} rolled back on {}", req.wave, req.host),
        serde_json::json!({"event": "wave", "result": "rolled_back"}),
    );
    Ok(Exit::Ok)
}
