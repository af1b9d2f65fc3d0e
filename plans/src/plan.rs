//! Inventory + policy -> [`Plan`]: statuses, placements, waves with reasons, findings, forecast.

use crate::error::PlanError;
use crate::graph::{DepGraph, EdgeKind, Index, service_id};
use crate::policy::{HUB_WAVE_MAX, Policy};
use crate::steps::{Step, Strategy, steps_for};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tailshift_parsers::{Coverage, Inventory, Location, Service, Severity};
use tailshift_routes::Route;

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
    pub id: String,
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
    pub depends_on: Vec<String>,
    /// Other names of the same app on the same host (they move together).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
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
    pub services: Vec<String>,
    /// Ordered steps per service id.
    pub steps: BTreeMap<String, Vec<Step>>,
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
    pub service: Option<String>,
    /// What it means.
    pub message: String,
    /// Where it comes from, as of planning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
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
    /// RFC 3339 time of creation (`SOURCE_DATE_EPOCH` when set).
    pub created: String,
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

fn finding(
    code: &str,
    severity: Severity,
    service: Option<&str>,
    message: String,
    location: Option<Location>,
) -> Finding {
    Finding { code: code.into(), severity, service: service.map(str::to_string), message, location }
}

fn placement(s: &Service, tailnet: &str) -> Placement {
    let plaintext = s.effective.bool("plaintext") == Some(true);
    let port = s
        .effective
        .str("listenAddr")
        .and_then(|a| a.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
        .unwrap_or(if plaintext { 80 } else { 443 });
    Placement {
        names: vec![RouteName { name: format!("{}.{tailnet}", s.name), mount: "/".into() }],
        listener: if plaintext { Listener::Plaintext } else { Listener::Https },
        port,
        redirect_to: None,
        access: Vec::new(),
        timeouts: UpstreamTimeouts::default(),
    }
}

fn unit_name(s: &Service) -> String {
    match s.flavour {
        tailshift_parsers::Flavour::ForkAll => "tsnsrv-all.service".into(),
        _ => format!("tsnsrv-{}.service", s.name),
    }
}

/// Makes the plan (without hashes, creation time and id: [`crate::plan_file`] adds those).
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
    let resolve = |_: &Inventory, key: &str, r: &str| index.resolve(inv, key, r);
    let graph = DepGraph::build(inv, &index, policy)?;
    let n = inv.services.len();
    let ids: Vec<String> = inv.services.iter().map(service_id).collect();
    let mut findings = Vec::new();
    // tsnsrv's prefixes match as plain strings (`/pub` also matches `/public-secrets`): on
    // Funnel, an open-ended one may publish more than meant.
    for (i, s) in inv.services.iter().enumerate() {
        if s.effective.bool("funnel") != Some(true) {
            continue;
        }
        for p in s.effective.list("prefixes").unwrap_or_default() {
            let Some(path) = p.strip_prefix("funnel:").or((!p.contains(':')).then_some(p.as_str()))
            else {
                continue;
            };
            if path != "/" && !path.ends_with('/') {
                findings.push(finding(
                    "funnel_prefix_open_ended",
                    Severity::Warning,
                    Some(&ids[i]),
                    format!(
                        "{}: the Funnel prefix {p:?} also matches any path that merely starts with it ({path}x, {path}-private, ...), as tsnsrv matched it; end it with / to publish only that directory",
                        ids[i]
                    ),
                    s.effective.get("prefixes").and_then(|v| v.location().cloned()).or_else(|| s.location.clone()),
                ));
            }
        }
    }

    // Statuses.
    let excluded: BTreeSet<usize> =
        policy.exclude.iter().map(|e| resolve(inv, "exclude", e)).collect::<Result<_, _>>()?;
    let mut pins: BTreeMap<usize, usize> = BTreeMap::new();
    for (k, w) in &policy.pins {
        let i = resolve(inv, "pins", k)?;
        if *w == 0 {
            return Err(PlanError::UnknownService {
                key: "pins".into(),
                name: k.clone(),
                hint: ": waves count from 1".into(),
            });
        }
        pins.insert(i, *w);
    }
    for k in policy.strategies.keys().chain(policy.checks.keys()).chain(policy.usage.keys()) {
        resolve(inv, "strategies/checks/usage", k)?;
    }
    let mut mounts: BTreeMap<usize, String> = BTreeMap::new();
    for (k, m) in &policy.mounts {
        let i = resolve(inv, "mounts", k)?;
        if !m.starts_with('/') || !m.ends_with('/') || m == "/" {
            return Err(PlanError::UnknownService {
                key: format!("mounts.{k}"),
                name: m.clone(),
                hint: ": a mount is a path like \"/app/\" (leading and trailing slash, not /)"
                    .into(),
            });
        }
        mounts.insert(i, m.clone());
    }
    let mut access: BTreeMap<usize, Vec<Access>> = BTreeMap::new();
    for (k, v) in &policy.access {
        access.insert(resolve(inv, "access", k)?, v.clone());
    }
    let mut timeouts: BTreeMap<usize, UpstreamTimeouts> = BTreeMap::new();
    for (k, v) in &policy.timeouts {
        timeouts.insert(resolve(inv, "timeouts", k)?, *v);
    }
    let mut present: BTreeMap<usize, bool> = BTreeMap::new();
    for (k, v) in &policy.present {
        present.insert(resolve(inv, "present", k)?, *v);
    }
    let mut status = vec![Status::Planned; n];
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); n];
    let strategy: Vec<Strategy> = inv
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| policy.strategy_for(&ids[i], &s.name))
        .collect();
    for (i, s) in inv.services.iter().enumerate() {
        if excluded.contains(&i) {
            status[i] = Status::Excluded;
            reasons[i].push("excluded by the policy: stays on tsnsrv".into());
            continue;
        }
        if let tailshift_parsers::Presence::Conditional { condition, location, .. } = &s.presence {
            match present.get(&i) {
                Some(true) => reasons[i].push(format!(
                    "declared only when {condition}; stated present in [plan.present]"
                )),
                Some(false) => {
                    status[i] = Status::Excluded;
                    reasons[i].push(format!(
                        "declared only when {condition}; stated absent in [plan.present]: nothing to move"
                    ));
                    continue;
                }
                None => {
                    status[i] = Status::PresenceUnknown;
                    reasons[i].push(format!(
                        "exists only when {condition}, which the inputs cannot decide; say whether it does in migrate.toml: [plan.present] \"{}\" = true (or false)",
                        ids[i]
                    ));
                    findings.push(finding(
                        "presence_unknown",
                        Severity::Warning,
                        Some(&ids[i]),
                        format!(
                            "{} exists only when {condition}, which the inputs cannot decide: it is held back until [plan.present] \"{}\" says whether it exists",
                            ids[i], ids[i]
                        ),
                        location.clone().or_else(|| s.location.clone()),
                    ));
                    continue;
                }
            }
        }
        let unclear: Vec<&tailshift_parsers::inventory::CoverageEntry> =
            s.coverage.iter().filter(|c| c.status != Coverage::Understood).collect();
        if !unclear.is_empty() {
            let what = unclear
                .iter()
                .map(|c| format!("{} ({})", c.attribute, c.status))
                .collect::<Vec<_>>()
                .join(", ");
            if opts.accept_unknown {
                reasons[i].push(format!("accepted with unknown values: {what}"));
            } else {
                status[i] = Status::Manual;
                reasons[i].push(format!("manual: {what}; resolve them or pass --accept-unknown"));
                findings.push(finding(
                    "manual_unknown",
                    Severity::Warning,
                    Some(&ids[i]),
                    format!("{} is kept out of automatic waves: {what}", ids[i]),
                    unclear[0].location.clone().or_else(|| s.location.clone()),
                ));
                continue;
            }
        }
        if let Some(m) = mounts.get(&i)
            && s.effective.bool("funnel") == Some(true)
        {
            let host = s.host.known().cloned().unwrap_or_default();
            let url = format!("https://{host}.{}{m}", policy.tailnet);
            reasons[i].push(format!("public under {url} (Funnel on the node's own name); its legacy name answers 308 there"));
            findings.push(finding(
                "public_url_changes",
                Severity::Warning,
                Some(&ids[i]),
                format!(
                    "{}'s public URL changes from https://{}.{}/ to {url}: the app must support the base path {m}; tailnet clients keep the old name",
                    ids[i], s.name, policy.tailnet
                ),
                s.location.clone(),
            ));
            continue;
        }
        if s.effective.bool("funnel") == Some(true) && !strategy[i].keeps_funnel() {
            status[i] = Status::NeedsDecision;
            reasons[i]
                .push(format!("public (Funnel), but {} cannot carry Funnel", strategy[i].as_str()));
            findings.push(finding(
                "needs_decision_funnel",
                Severity::Warning,
                Some(&ids[i]),
                format!(
                    "{} is public through Funnel and {} cannot keep it public. Choose: keep-node (public name kept, node cost stays); \
                     a path under the node's own name with a 308 redirect (public URL changes, tailnet name kept); or exclude it for now",
                    ids[i],
                    strategy[i].as_str()
                ),
                s.effective.get("funnel").and_then(|v| v.location().cloned()).or_else(|| s.location.clone()),
            ));
        }
    }

    // Units: alias groups of planned services.
    let planned = |i: usize, status: &[Status]| status[i] == Status::Planned;
    let mut unit_of = vec![usize::MAX; n];
    let mut units: Vec<Vec<usize>> = Vec::new();
    let mut root_unit: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, slot) in unit_of.iter_mut().enumerate() {
        if !planned(i, &status) {
            continue;
        }
        let root = graph.alias_of[i];
        let u = *root_unit.entry(root).or_insert_with(|| {
            units.push(Vec::new());
            units.len() - 1
        });
        units[u].push(i);
        *slot = u;
    }
    let unit_deps: Vec<BTreeSet<usize>> = units
        .iter()
        .enumerate()
        .map(|(u, members)| {
            members
                .iter()
                .flat_map(|m| graph.dependencies(*m))
                .filter(|d| planned(*d, &status) && unit_of[*d] != u)
                .map(|d| unit_of[d])
                .collect()
        })
        .collect();
    let dependents: Vec<usize> = units
        .iter()
        .map(|members| {
            members
                .iter()
                .flat_map(|m| graph.dependents(*m))
                .filter(|d| !members.contains(d))
                .collect::<BTreeSet<_>>()
                .len()
        })
        .collect();
    let usage = |i: usize| -> u64 {
        policy
            .usage
            .get(&ids[i])
            .or_else(|| policy.usage.get(&inv.services[i].name))
            .copied()
            .unwrap_or(0)
    };
    // Per unit, computed once: public, pin, hub, sort key.
    let public: Vec<bool> = units
        .iter()
        .map(|m| m.iter().any(|i| inv.services[*i].effective.bool("funnel") == Some(true)))
        .collect();
    let pin: Vec<Option<usize>> =
        units.iter().map(|m| m.iter().filter_map(|i| pins.get(i)).copied().min()).collect();
    let hub: Vec<bool> = dependents.iter().map(|d| *d >= policy.hub_min_dependents).collect();
    let keys: Vec<String> = units.iter().map(|m| ids[m[0]].clone()).collect();
    let unit_pin = |u: usize| pin[u];
    let unit_key = |u: usize| keys[u].clone();
    // Units that something pinned depends on go first, so the pin can be honoured.
    let needed_by_pin: BTreeSet<usize> = (0..units.len())
        .filter(|&u| pin[u].is_some())
        .flat_map(|u| unit_deps[u].iter().copied())
        .collect();
    let mut dependent_units: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
    for (u, deps) in unit_deps.iter().enumerate() {
        for d in deps {
            dependent_units[*d].push(u);
        }
    }

    // Wave assignment.
    let cap_of = |k: usize| {
        let c = policy.schedule[k.min(policy.schedule.len() - 1)];
        policy.max_wave_size.map_or(c, |m| c.min(m)).max(1)
    };
    let mut wave_of_unit: Vec<Option<usize>> = vec![None; units.len()];
    let mut waves: Vec<(WaveKind, Vec<usize>)> = Vec::new();
    // Canary: nothing before it, nothing after it depends on it, private, working, low usage.
    let mut canary: Vec<usize> = (0..units.len())
        .filter(|&u| {
            unit_deps[u].is_empty()
                && dependents[u] == 0
                && !public[u]
                && pin[u].is_none_or(|p| p == 1)
                && !units[u].iter().any(|i| inv.services[*i].cannot_start())
        })
        .collect();
    canary.sort_by_key(|&u| {
        (pin[u] != Some(1), units[u].iter().map(|i| usage(*i)).sum::<u64>(), keys[u].clone())
    });
    let mut first = Vec::new();
    let mut size = 0;
    for u in canary {
        if size + units[u].len() <= cap_of(0) || pin[u] == Some(1) {
            size += units[u].len();
            first.push(u);
        }
    }
    // Units become ready once every dependency sits in an earlier wave (Kahn's algorithm, by
    // wave): `remaining` counts unplaced dependencies; a unit freed by wave w is ready at w+1.
    let mut remaining: Vec<usize> = unit_deps.iter().map(BTreeSet::len).collect();
    type Ready = BTreeSet<(bool, bool, String, usize)>;
    let rank = |u: usize| (!needed_by_pin.contains(&u), public[u], keys[u].clone(), u);
    let mut ready: Ready = BTreeSet::new();
    let mut ready_hubs: BTreeSet<(std::cmp::Reverse<usize>, String, usize)> = BTreeSet::new();
    let mut pinned_ready: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut freed_next: Vec<usize> = Vec::new();
    let place = |u: usize,
                 w: usize,
                 wave_of_unit: &mut Vec<Option<usize>>,
                 remaining: &mut Vec<usize>,
                 freed: &mut Vec<usize>| {
        wave_of_unit[u] = Some(w);
        for &d in &dependent_units[u] {
            remaining[d] -= 1;
            if remaining[d] == 0 {
                freed.push(d);
            }
        }
    };
    let canary_set: BTreeSet<usize> = first.iter().copied().collect();
    for &u in &first {
        place(u, 1, &mut wave_of_unit, &mut remaining, &mut freed_next);
    }
    if !first.is_empty() {
        waves.push((WaveKind::Canary, first));
    }
    let enqueue = |u: usize,
                   ready: &mut Ready,
                   hubs: &mut BTreeSet<(std::cmp::Reverse<usize>, String, usize)>,
                   pinned: &mut BTreeMap<usize, Vec<usize>>| {
        if let Some(p) = pin[u] {
            pinned.entry(p).or_default().push(u);
        } else if hub[u] {
            hubs.insert((std::cmp::Reverse(dependents[u]), keys[u].clone(), u));
        } else {
            ready.insert(rank(u));
        }
    };
    for (u, left) in remaining.iter().enumerate() {
        if *left == 0 && !canary_set.contains(&u) {
            enqueue(u, &mut ready, &mut ready_hubs, &mut pinned_ready);
        }
    }
    let mut placed = waves.first().map_or(0, |w| w.1.len());
    let mut k = 1;
    while placed < units.len() {
        let number = waves.len() + 1;
        for u in std::mem::take(&mut freed_next) {
            if !canary_set.contains(&u) && wave_of_unit[u].is_none() {
                enqueue(u, &mut ready, &mut ready_hubs, &mut pinned_ready);
            }
        }
        let mut chosen: Vec<usize> = pinned_ready.remove(&number).unwrap_or_default();
        // A pin whose wave has passed cannot be honoured (checked below).
        let late: Vec<usize> = pinned_ready.range(..number).flat_map(|(_, v)| v.clone()).collect();
        pinned_ready.retain(|p, _| *p >= number);
        chosen.extend(late);
        let mut kind = WaveKind::Ramp;
        if chosen.is_empty() && !ready_hubs.is_empty() {
            kind = WaveKind::Hub;
            let mut size = 0;
            while let Some(first) = ready_hubs.first().cloned() {
                let u = first.2;
                if size + units[u].len() > HUB_WAVE_MAX && !chosen.is_empty() {
                    break;
                }
                ready_hubs.remove(&first);
                size += units[u].len();
                chosen.push(u);
            }
        } else {
            let cap = cap_of(k);
            k += 1;
            let mut size: usize = chosen.iter().map(|u| units[*u].len()).sum();
            let mut skipped = Vec::new();
            while let Some(first) = ready.first().cloned() {
                let u = first.3;
                ready.remove(&first);
                if size + units[u].len() <= cap || chosen.is_empty() {
                    size += units[u].len();
                    chosen.push(u);
                } else {
                    skipped.push(first);
                    if size >= cap {
                        break;
                    }
                }
            }
            ready.extend(skipped);
        }
        if chosen.is_empty() {
            // Nothing can move: everything left waits for a pin further ahead, or on it.
            let waiting: Vec<usize> =
                (0..units.len()).filter(|&u| wave_of_unit[u].is_none()).collect();
            if let Some(next) = pinned_ready.keys().next().copied() {
                return Err(PlanError::UnknownService {
                    key: "pins".into(),
                    name: unit_key(pinned_ready[&next][0]),
                    hint: format!(
                        ": pinned to wave {next}, but the plan has only {} waves before it",
                        number - 1
                    ),
                });
            }
            let u = waiting[0];
            let d = unit_deps[u].iter().find(|d| wave_of_unit[**d].is_none()).copied().unwrap_or(u);
            return Err(PlanError::PinBeforeDependency {
                service: unit_key(u),
                wave: unit_pin(u).unwrap_or(number),
                dependency: unit_key(d),
                dependency_wave: unit_pin(d).map_or("later".into(), |p| p.to_string()),
            });
        }
        for &u in &chosen {
            place(u, number, &mut wave_of_unit, &mut remaining, &mut freed_next);
        }
        placed += chosen.len();
        waves.push((kind, chosen));
    }
    // A pin must be honoured exactly.
    for (u, w) in wave_of_unit.iter().enumerate() {
        if let (Some(p), Some(w)) = (unit_pin(u), w)
            && p != *w
        {
            let blocker =
                unit_deps[u].iter().copied().max_by_key(|d| wave_of_unit[*d]).unwrap_or(u);
            return Err(PlanError::PinBeforeDependency {
                service: unit_key(u),
                wave: p,
                dependency: unit_key(blocker),
                dependency_wave: wave_of_unit[blocker].map_or("later".into(), |w| w.to_string()),
            });
        }
    }

    // Services and their reasons.
    let mut wave_of: Vec<Option<usize>> = vec![None; n];
    for (u, members) in units.iter().enumerate() {
        for &m in members {
            wave_of[m] = wave_of_unit[u];
        }
    }
    let mut alias_members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, root) in graph.alias_of.iter().enumerate() {
        alias_members.entry(*root).or_default().push(i);
    }
    let mut services = Vec::with_capacity(n);
    for (i, s) in inv.services.iter().enumerate() {
        let mut r = reasons[i].clone();
        let deps: Vec<String> = graph
            .dependencies(i)
            .into_iter()
            .map(|d| {
                let why = match graph.edge_kind(i, d) {
                    Some(EdgeKind::ForwardAuth) => "forward auth",
                    _ => "policy",
                };
                format!("{} ({why})", ids[d])
            })
            .collect();
        let aliases: Vec<String> = (0..n)
            .filter(|&j| j != i && graph.alias_of[j] == graph.alias_of[i])
            .map(|j| ids[j].clone())
            .collect();
        if let Some(w) = wave_of[i] {
            let u = unit_of[i];
            let (kind, _) = &waves[w - 1];
            let mut why = match kind {
                WaveKind::Canary => {
                    format!(
                        "canary: no dependencies, no dependents, tailnet-only, {} req/day",
                        usage(i)
                    )
                }
                WaveKind::Hub => format!(
                    "hub: {} services depend on it; moved on its own before them",
                    dependents[u]
                ),
                WaveKind::Ramp => {
                    if unit_deps[u].is_empty() {
                        "ramp: no dependencies".to_string()
                    } else {
                        format!(
                            "ramp: after {}",
                            unit_deps[u]
                                .iter()
                                .map(|d| format!(
                                    "{} (wave {})",
                                    unit_key(*d),
                                    wave_of_unit[*d].unwrap_or(0)
                                ))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                }
            };
            if pins.contains_key(&i) {
                why.push_str("; pinned");
            }
            if !aliases.is_empty() {
                why.push_str(&format!("; moves with its aliases {}", aliases.join(", ")));
            }
            r.push(why);
        }
        if s.cannot_start() {
            r.push("down today (its unit cannot start): moving it restores it".into());
            findings.push(finding(
                "down_today",
                Severity::Info,
                Some(&ids[i]),
                format!("{} cannot have started under tsnsrv; its check has no working 'before' to compare with", ids[i]),
                s.findings.iter().find(|f| f.code == "unit_cannot_start").and_then(|f| f.location.clone()),
            ));
        }
        services.push(PlannedService {
            id: ids[i].clone(),
            status: status[i],
            wave: wave_of[i],
            strategy: strategy[i],
            placement: {
                let mut p = placement(s, &policy.tailnet);
                p.access = access.get(&i).cloned().unwrap_or_default();
                p.timeouts = timeouts.get(&i).copied().unwrap_or_default();
                if let Some(m) = mounts.get(&i) {
                    let host = s.host.known().cloned().unwrap_or_default();
                    let node = format!("{host}.{}", policy.tailnet);
                    p.names.push(RouteName { name: node.clone(), mount: m.clone() });
                    if s.effective.bool("funnel") == Some(true) {
                        p.redirect_to = Some(format!("https://{node}{m}"));
                    }
                }
                p
            },
            depends_on: deps,
            aliases,
            reasons: r,
            inventory: s.clone(),
            route: None,
        });
    }
    make_routes(&mut services, &mut findings);
    fleet_findings(inv, policy, &graph, &ids, &status, &strategy, &mut findings);

    // Waves with steps and forecast.
    let nodes_today = n;
    let mut left = nodes_today;
    let mut out_waves = Vec::new();
    for (idx, (kind, us)) in waves.iter().enumerate() {
        let mut members: Vec<usize> = us.iter().flat_map(|u| units[*u].iter().copied()).collect();
        members.sort_by_key(|&i| ids[i].clone());
        // Dependencies first inside the wave (aliases that depend on each other).
        let mut ordered: Vec<usize> = Vec::new();
        let mut pending = members.clone();
        while !pending.is_empty() {
            let pos = pending
                .iter()
                .position(|&i| graph.dependencies(i).iter().all(|d| !pending.contains(d)))
                .unwrap_or(0);
            ordered.push(pending.remove(pos));
        }
        let mut steps = BTreeMap::new();
        let mut retired = 0;
        for &i in &ordered {
            let s = &inv.services[i];
            let check = policy.checks.get(&ids[i]).or_else(|| policy.checks.get(&s.name));
            let redirected = mounts.contains_key(&i) && s.effective.bool("funnel") == Some(true);
            let (path, st) = check
                .map(|c| (c.path.clone(), c.status))
                .unwrap_or(("/".into(), if redirected { 308 } else { 200 }));
            steps.insert(ids[i].clone(), steps_for(strategy[i], &unit_name(s), &path, st));
            if strategy[i].frees_node() {
                retired += 1;
            }
        }
        left -= retired;
        out_waves.push(Wave {
            number: idx + 1,
            kind: *kind,
            services: ordered.iter().map(|&i| ids[i].clone()).collect(),
            steps,
            forecast: Forecast {
                nodes_retired: retired,
                nodes_left: left,
                cpu_freed_cores: round3(retired as f64 * policy.cost.cpu_per_node),
                memory_freed_mb: round3(retired as f64 * policy.cost.memory_mb_per_node),
            },
        });
    }
    Ok(Plan {
        format_version: FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        plan_id: String::new(),
        created: String::new(),
        inputs: inv.inputs.iter().map(|i| i.path.clone()).collect(),
        input_options: BTreeMap::new(),
        policy_file: None,
        inventory_hash: String::new(),
        policy_hash: String::new(),
        tailnet: policy.tailnet.clone(),
        services,
        waves: out_waves,
        findings,
        may_miss_services: inv
            .hosts
            .iter()
            .flat_map(|h| h.incomplete.iter())
            .map(|i| match &i.location {
                Some(l) => format!("{l}: {}", i.reason),
                None => i.reason.clone(),
            })
            .collect(),
        nodes_today,
        self_hash: String::new(),
    })
}

/// Each service's route, made once here from its entry and placement. A service in a wave whose
/// route cannot be built, or whose route conflicts with another's, gets a `no_route` finding
/// (apply refuses to move it); other services keep the route when it builds, for display.
fn make_routes(services: &mut [PlannedService], findings: &mut Vec<Finding>) {
    for s in services.iter_mut() {
        match crate::route::route_of(&s.inventory, &s.placement, s.wave) {
            Ok(r) => s.route = Some(r),
            Err(e) if s.wave.is_some() => findings.push(finding(
                "no_route",
                Severity::Warning,
                Some(&s.id),
                format!("{e}: the service cannot be moved until it is"),
                s.inventory.location.clone(),
            )),
            Err(_) => {}
        }
    }
    let waved: Vec<Route> =
        services.iter().filter(|s| s.wave.is_some()).filter_map(|s| s.route.clone()).collect();
    if let Err(e) = tailshift_routes::validate_table(&waved) {
        findings.push(finding("no_route", Severity::Warning, None, e.to_string(), None));
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Per host: services under tailscale-services, per-service metrics endpoints, auth key paths.
type HostSummary<'a> = (Vec<&'a str>, Vec<String>, BTreeSet<String>);

/// Findings about the fleet as a whole.
fn fleet_findings(
    inv: &Inventory,
    policy: &Policy,
    graph: &DepGraph,
    ids: &[String],
    status: &[Status],
    strategy: &[Strategy],
    findings: &mut Vec<Finding>,
) {
    for (i, url) in &graph.external_auth {
        findings.push(finding(
            "external_dependency",
            Severity::Info,
            Some(&ids[*i]),
            format!(
                "{}'s forward auth {url} is not a service of the inventory: it must stay reachable",
                ids[*i]
            ),
            inv.services[*i].effective.get("authURL").and_then(|v| v.location().cloned()),
        ));
    }
    // One node, one ACL identity: tags no longer tell services apart.
    let mut tags_by_host: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, s) in inv.services.iter().enumerate() {
        if status[i] == Status::Planned && strategy[i].frees_node() {
            let host = s.host.known().cloned().unwrap_or_default();
            let tags = s.effective.list("tags").unwrap_or_default().join(",");
            tags_by_host.entry(host).or_default().insert(if tags.is_empty() {
                "(untagged)".into()
            } else {
                tags
            });
        }
    }
    for (host, tags) in tags_by_host {
        if tags.len() > 1 {
            findings.push(finding(
                "acl_reachability_widens",
                Severity::Warning,
                None,
                format!(
                    "on {host}, services carry different tags ({}); on one node, per-node ACLs no longer tell them apart: a peer allowed to one reaches all",
                    tags.into_iter().collect::<Vec<_>>().join(" | ")
                ),
                None,
            ));
        }
    }
    // Rollback and references, summarised per host.
    if status.iter().zip(strategy).any(|(st, s)| *st == Status::Planned && s.frees_node()) {
        findings.push(finding(
            "reference_not_kept",
            Severity::Warning,
            None,
            "clients that reach a service by its node's tailnet IP (100.x.y.z) lose it when the node goes: Tailscale Services get new \
             virtual IPs, DNS strategies point the name at the one node; short MagicDNS names work only where MagicDNS search domains \
             apply. Find such references (bookmarks, configs, ACL rules naming the node) before moving"
                .into(),
            None,
        ));
    }
    let mut per_host: BTreeMap<String, HostSummary> = BTreeMap::new();
    for (i, s) in inv.services.iter().enumerate() {
        if status[i] != Status::Planned {
            continue;
        }
        let e = per_host.entry(s.host.known().cloned().unwrap_or_default()).or_default();
        if strategy[i] == Strategy::TailscaleServices {
            e.0.push(&s.name);
            if let Some(k) = s.effective.str("authKeyPath") {
                e.2.insert(k.to_string());
            }
        }
        if s.flavour == tailshift_parsers::Flavour::Fork
            && let Some(addr) = s.effective.str("prometheusAddr")
        {
            e.1.push(format!("{}={addr}", s.name));
        }
    }
    for (host, (ts, metrics, keys)) in per_host {
        if !ts.is_empty() {
            findings.push(finding(
                "rollback_needs_reusable_key",
                Severity::Info,
                None,
                format!(
                    "on {host}, rolling back any of {} services under tailscale-services re-registers its node: the key at {} must be reusable (or an OAuth client), and each re-issued certificate counts toward Let's Encrypt's 5 duplicates per week",
                    ts.len(),
                    if keys.is_empty() { "(authKeyPath unknown)".to_string() } else { keys.into_iter().collect::<Vec<_>>().join(", ") }
                ),
                None,
            ));
        }
        if !metrics.is_empty() {
            findings.push(finding(
                "reference_not_kept",
                Severity::Info,
                None,
                format!(
                    "on {host}, {} per-service metrics endpoints of the fork go away with their units (first: {}); update the scrape targets: the proxy serves tsnsrv's metric families with service_name",
                    metrics.len(),
                    metrics.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
                ),
                None,
            ));
        }
    }
    let _ = policy;
}
