//! Inventory + policy -> [`Plan`]: the plan's types, and [`make_plan`], which runs the planning
//! phases in order, each in its own module: the policy's references to services resolved
//! (`refs`); each service's status, reasons and strategy (`status`); alias groups of planned
//! services as the units that move (`units`); units into canary, hub and ramp waves (`waves`);
//! each service with its placement, dependencies, reasons and sealed route (`services`); findings
//! about services and the fleet (`findings`); each wave's ordered steps and forecast
//! (`forecast`).

mod findings;
mod forecast;
mod refs;
mod services;
mod status;
mod units;
mod waves;

use crate::error::PlanError;
use crate::graph::{DepGraph, Index};
use crate::id::{Dependency, ServiceId};
use crate::policy::Policy;
use crate::steps::{Step, Strategy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tailshift_parsers::{Inventory, Location, Service, Severity};
use tailshift_routes::Route;
use tailshift_util::Timestamp;

/// Version of the plan file format. 2: each service carries its sealed [`Route`]. A format-1
/// plan (no routes) is still read, so waves it applied can be rolled back; it cannot be applied.
pub const FORMAT_VERSION: u32 = 2;

/// What happens to a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Placed in a wave.
    Planned,
    /// Something about it is unknown or unsupported: moved by hand, or with `--accept-unknown`.
    Manual,
    /// Public (Funnel) under a strategy that cannot keep it public: an operator must choose.
    NeedsDecision,
    /// `exclude`d by the policy: stays on tsnsrv.
    Excluded,
    /// Declared under a condition the inputs cannot decide (`mkIf` on a nixpkgs option): held
    /// back until `[plan.present]` says whether it exists.
    PresenceUnknown,
}

/// A name the proxy answers for a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteName {
    /// Full DNS name.
    pub name: String,
    /// Path the service is mounted under (`/` for the legacy name).
    pub mount: String,
}

/// Where the service lands on the one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Names and mounts (the legacy name at `/` first).
    pub names: Vec<RouteName>,
    /// Which listener serves it.
    pub listener: Listener,
    /// Port of the listener.
    pub port: u16,
    /// A 308 redirect target, when the service gets a new canonical URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_to: Option<String>,
    /// Who may reach it (`[plan.access]`); empty: every tailnet peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<Access>,
    /// Upstream timeouts (`[plan.timeouts]`); none by default, as tsnsrv.
    #[serde(default, skip_serializing_if = "UpstreamTimeouts::is_none")]
    pub timeouts: UpstreamTimeouts,
}

/// The listener a service lands on (its tsnsrv `plaintext` decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Listener {
    /// TLS with SNI.
    Https,
    /// Plain HTTP.
    Plaintext,
}

/// One access rule of `[plan.access]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// What is matched.
    pub kind: AccessKind,
    /// The login, group or tag.
    pub value: String,
}

/// What an access rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    /// A user login (`alice@example.com`).
    User,
    /// A group the LocalAPI gives the user.
    Group,
    /// A tag of the source node (`tag:admin`).
    Tag,
}

/// Upstream timeouts of `[plan.timeouts]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTimeouts {
    /// Connect timeout, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<u64>,
    /// Time to the upstream's response headers, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_ms: Option<u64>,
}

impl UpstreamTimeouts {
    /// Whether none is set.
    pub fn is_none(&self) -> bool {
        self.connect_ms.is_none() && self.response_header_ms.is_none()
    }
}

/// One service of the plan, with everything `apply` needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedService {
    /// `host/name`.
    pub id: ServiceId,
    /// What happens to it.
    pub status: Status,
    /// Its wave, when planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<usize>,
    /// Continuity strategy.
    pub strategy: Strategy,
    /// Where it lands.
    pub placement: Placement,
    /// Ids it depends on, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Dependency>,
    /// Other names of the same app on the same host (they move together).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<ServiceId>,
    /// Why it is where it is.
    pub reasons: Vec<String>,
    /// Its inventory entry as planned (effective options, flavour, sources as of planning).
    pub inventory: Service,
    /// The route the proxy will serve it with, made once from the entry and its placement
    /// ([`crate::route::route_of`]) and sealed with the plan: what `apply` installs. `None` when
    /// it cannot be built (a `no_route` finding says why) or in a format-1 plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
}

/// Estimated effect of a wave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// tsnsrv nodes retired by this wave.
    pub nodes_retired: usize,
    /// tsnsrv nodes left once it is applied.
    pub nodes_left: usize,
    /// Cores freed by this wave.
    pub cpu_freed_cores: f64,
    /// Megabytes freed by this wave.
    pub memory_freed_mb: f64,
}

/// What kind of wave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaveKind {
    /// The first, lowest-risk services.
    Canary,
    /// A service many others depend on, moved on its own.
    Hub,
    /// The rest, in schedule-sized waves.
    Ramp,
}

/// One wave: fleet-wide, each host applies its own part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Wave {
    /// 1-based.
    pub number: usize,
    /// Canary, hub or ramp.
    pub kind: WaveKind,
    /// Service ids in the order they move (dependencies first).
    pub services: Vec<ServiceId>,
    /// Ordered steps per service id.
    pub steps: BTreeMap<ServiceId, Vec<Step>>,
    /// Expected effect.
    pub forecast: Forecast,
}

/// A finding about the plan, with a stable code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable code, e.g. `needs_decision_funnel`.
    pub code: String,
    /// How serious.
    pub severity: Severity,
    /// The service (`host/name`), if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceId>,
    /// What it means.
    pub message: String,
    /// Where it comes from, as of planning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

impl Finding {
    /// A finding about a service (`service`), or about the plan as a whole.
    pub(crate) fn new(
        code: &str,
        severity: Severity,
        service: Option<&ServiceId>,
        message: String,
        location: Option<Location>,
    ) -> Finding {
        Finding { code: code.into(), severity, service: service.cloned(), message, location }
    }
}

/// The plan: exactly what `apply` runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The tailshift version that made it.
    pub tool_version: String,
    /// Derived from the content.
    pub plan_id: String,
    /// Time of creation (`SOURCE_DATE_EPOCH` when set), written as RFC 3339.
    pub created: Timestamp,
    /// Input paths, as given.
    pub inputs: Vec<String>,
    /// How the inputs were read (`--host`, `--tsnsrv`, ...), to re-read them identically.
    pub input_options: BTreeMap<String, String>,
    /// The policy file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_file: Option<String>,
    /// Semantic hash of the inventory (comments, spacing and positions do not count).
    pub inventory_hash: String,
    /// Hash of the planning keys.
    pub policy_hash: String,
    /// The tailnet.
    pub tailnet: String,
    /// Every service, by id.
    pub services: Vec<PlannedService>,
    /// The waves.
    pub waves: Vec<Wave>,
    /// Findings.
    pub findings: Vec<Finding>,
    /// When planned from an incomplete inventory (`--allow-incomplete`): the definitions whose
    /// service names could not be known, so services may be missing from this plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub may_miss_services: Vec<String>,
    /// tsnsrv nodes today.
    pub nodes_today: usize,
    /// Hash of everything above (edits are detected).
    pub self_hash: String,
}

/// Options that are not planning keys.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Put manual services in waves anyway.
    pub accept_unknown: bool,
}

/// What every phase reads: the inputs, the dependency graph and each service's id.
struct Ctx<'a> {
    inv: &'a Inventory,
    policy: &'a Policy,
    graph: DepGraph,
    /// `host/name` of each service, by inventory index.
    ids: Vec<ServiceId>,
}

impl Ctx<'_> {
    /// A service's requests per day (`[plan.usage]`, by id or name); 0 when not given.
    fn usage(&self, i: usize) -> u64 {
        let usage = &self.policy.usage;
        usage
            .get(self.ids[i].as_str())
            .or_else(|| usage.get(&self.inv.services[i].name))
            .copied()
            .unwrap_or(0)
    }
}

/// Makes the plan (without hashes, creation time and id: [`crate::plan_file`] adds those; until
/// then the creation time is the epoch).
pub fn make_plan(inv: &Inventory, policy: &Policy, opts: &PlanOptions) -> Result<Plan, PlanError> {
    if policy.tailnet.is_empty() {
        return Err(PlanError::Policy {
            file: "migrate.toml".into(),
            line: 1,
            column: 1,
            message: "plan.tailnet is not set (and was not read from the LocalAPI)".into(),
        });
    }
    let index = Index::new(inv);
    let graph = DepGraph::build(inv, &index, policy)?;
    let ids = inv.services.iter().map(ServiceId::of).collect();
    let ctx = Ctx { inv, policy, graph, ids };
    let mut findings = findings::funnel_prefixes(&ctx);
    let refs = refs::PolicyRefs::resolve(&ctx, &index)?;
    let statuses = status::judge(&ctx, opts, &refs, &mut findings);
    let units = units::Units::group(&ctx, &statuses.status, &refs.pins);
    let schedule = waves::schedule(&ctx, &units)?;
    let mut services = services::planned(&ctx, &refs, &statuses, &units, &schedule, &mut findings);
    services::make_routes(&mut services, &mut findings);
    let wave_by_id: BTreeMap<&ServiceId, Option<usize>> =
        services.iter().map(|s| (&s.id, s.wave)).collect();
    let wave_of: Vec<Option<usize>> =
        ctx.ids.iter().map(|id| wave_by_id.get(id).copied().flatten()).collect();
    findings::fleet(&ctx, &statuses, &wave_of, &mut findings);
    let waves = forecast::waves(&ctx, &units, &schedule, &statuses.strategy, &refs.mounts);
    Ok(Plan {
        format_version: FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        plan_id: String::new(),
        created: Timestamp::UNIX_EPOCH,
        inputs: inv.inputs.iter().map(|i| i.path.clone()).collect(),
        input_options: BTreeMap::new(),
        policy_file: None,
        inventory_hash: String::new(),
        policy_hash: String::new(),
        tailnet: policy.tailnet.clone(),
        services,
        waves,
        findings,
        may_miss_services: may_miss_services(inv),
        nodes_today: inv.services.len(),
        self_hash: String::new(),
    })
}

/// The definitions whose service names could not be known (an incomplete inventory).
fn may_miss_services(inv: &Inventory) -> Vec<String> {
    inv.hosts
        .iter()
        .flat_map(|h| h.incomplete.iter())
        .map(|i| match &i.location {
            Some(l) => format!("{l}: {}", i.reason),
            None => i.reason.clone(),
        })
        .collect()
}
