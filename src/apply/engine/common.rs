//! What every phase of a wave command shares: the request, the event reporter, the journaled
//! step context, the plan's lookups (a wave's services and steps), the lock.

use crate::apply::config::ApplyConfig;
use crate::apply::journal::Journal;
use crate::apply::lock::Lock;
use crate::apply::state::State;
use crate::exit::Exit;
use tailshift_checks::Outcome;
use tailshift_plans::Plan;
use tailshift_plans::plan::PlannedService;
use tailshift_plans::steps::Step;
use tailshift_routes::Route;

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
    /// What the command changes and asks outside its state directory (the real world in the
    /// binary, an in-memory one in the engine's model-based test).
    pub world: &'a dyn super::world::World,
}

impl Request<'_> {
    /// The flags that name this command's host, policy and plan, for a command printed to run
    /// next: it must work as printed, wherever the plan and the policy are.
    pub fn flags(&self) -> String {
        format!(
            "--host {} --config {} --plan {}",
            self.host,
            self.config_path.display(),
            self.plan_path.display()
        )
    }
}

/// The `schema` of every NDJSON event of the wave commands.
pub const EVENT_SCHEMA: &str = "tailshift.event/v1";

/// One progress event: a line of text for people, or one JSON object per line (NDJSON) with
/// `--format json`. Errors stay on stderr either way.
pub(crate) fn event(req: &Request, text: String, json: serde_json::Value) {
    let mut v = json;
    v["schema"] = serde_json::json!(EVENT_SCHEMA);
    v["wave"] = serde_json::json!(req.wave);
    v["host"] = serde_json::json!(req.host);
    req.world.report(req.json, text, v);
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
pub(super) fn credentials(plan: &Plan, s: &PlannedService) -> anyhow::Result<Vec<String>> {
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

pub(super) fn legacy_name(s: &PlannedService) -> String {
    s.placement.names.first().map(|n| n.name.to_ascii_lowercase()).unwrap_or_default()
}

pub(super) struct Ctx<'a> {
    pub(super) req: &'a Request<'a>,
    pub(super) journal: Journal,
    pub(super) state: State,
    pub(super) dir: std::path::PathBuf,
    pub(super) operation: &'static str,
}

impl Ctx<'_> {
    pub(super) fn record(
        &mut self,
        s: &PlannedService,
        index: usize,
        what: &str,
        f: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let (plan_id, id) = (self.req.plan.plan_id.clone(), s.id.as_str());
        let intent =
            self.journal.intent(&plan_id, self.operation, self.req.wave, id, index, what)?;
        self.req.world.journal_point(&format!("{}-{}-{index}-intent", self.operation, s.id));
        let r = f();
        self.journal.result(&intent, r.as_ref().err().map(|e| format!("{e:#}")))?;
        self.req.world.journal_point(&format!("{}-{}-{index}-result", self.operation, s.id));
        r
    }
}

/// A crash point for tests: with `TAILSHIFT_FAILPOINT=<operation>-<service>-<step>-<intent|result>`
/// (e.g. `apply-nas/app1-3-intent`) a debug build kills itself with SIGKILL right after writing
/// that journal record. Release builds ignore it.
pub(super) fn failpoint(name: &str) {
    if cfg!(debug_assertions) && std::env::var("TAILSHIFT_FAILPOINT").is_ok_and(|v| v == name) {
        // SAFETY: sending ourselves SIGKILL, as a crash would.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// The wave's services on this host, in plan order.
pub(super) fn wave_services<'a>(
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
pub(super) fn steps_of(plan: &Plan, wave: usize, s: &PlannedService) -> Vec<Step> {
    plan.waves
        .iter()
        .find(|w| w.number == wave)
        .and_then(|w| w.steps.get(&s.id))
        .cloned()
        .unwrap_or_default()
}

/// Takes the state directory's lock, or says who holds it (exit 8). A dry run takes nothing:
/// it only checks that the real run could take it (`None`).
pub(crate) fn lock(req: &Request, operation: &str) -> Result<Option<Lock>, Exit> {
    let dir = req.cfg.state_dir();
    if req.dry_run {
        return match Lock::owner(&dir) {
            Ok(None) => Ok(None),
            Ok(Some(o)) => {
                eprintln!(
                    "error: {}",
                    crate::apply::lock::LockError::Held { owner: Box::new(o), dir }
                );
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

pub(super) fn show(o: &Outcome) -> String {
    match o {
        Outcome::Status { code, addr, location } => format!(
            "{code} from {addr}{}",
            location.as_ref().map(|l| format!(" -> {l}")).unwrap_or_default()
        ),
        Outcome::Error(e) => format!("no answer ({e})"),
    }
}

/// The unit of the fork's one process for all of a host's services.
pub(super) const SHARED_UNIT: &str = "tsnsrv-all.service";

/// The legacy unit a service's steps stop or re-point.
pub(super) fn legacy_unit(plan: &Plan, wave: usize, s: &PlannedService) -> String {
    steps_of(plan, wave, s)
        .into_iter()
        .find_map(|st| match st {
            Step::StopLegacy { unit } | Step::RepointLegacy { unit } => Some(unit),
            _ => None,
        })
        .unwrap_or_default()
}
