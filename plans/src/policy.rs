//! `migrate.toml`: the `[plan]` part (hashed into the plan) and the `[apply]` part (read at
//! apply time, not hashed). Every key, its meaning and its default are in `docs/policy.md`.

use crate::error::PlanError;
use crate::steps::Strategy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Default wave schedule: a canary of 3, then 10, then 15 until done.
pub const DEFAULT_SCHEDULE: [usize; 3] = [3, 10, 15];
/// A service with at least this many dependents moves in a wave of its own.
pub const DEFAULT_HUB_MIN_DEPENDENTS: usize = 3;
/// At most this many services share a hub wave.
pub const HUB_WAVE_MAX: usize = 3;
/// Measured cost of one tsnsrv node: about 2% of a core.
pub const DEFAULT_CPU_PER_NODE: f64 = 0.02;
/// Measured cost of one tsnsrv node: about 45 MB.
pub const DEFAULT_MEMORY_MB_PER_NODE: f64 = 45.0;

/// A check that decides whether a moved service works.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Path requested through the new route.
    #[serde(default = "default_check_path")]
    pub path: String,
    /// Expected status code (a range is not supported: say which one).
    #[serde(default = "default_check_status")]
    pub status: u16,
    /// File holding credentials for the request (a path; the secret is never read at plan time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<String>,
}

fn default_check_path() -> String {
    "/".into()
}

fn default_check_status() -> u16 {
    200
}

/// Cost model of a tsnsrv node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    /// Cores per node.
    #[serde(default = "default_cpu")]
    pub cpu_per_node: f64,
    /// Megabytes per node.
    #[serde(default = "default_mem")]
    pub memory_mb_per_node: f64,
}

fn default_cpu() -> f64 {
    DEFAULT_CPU_PER_NODE
}

fn default_mem() -> f64 {
    DEFAULT_MEMORY_MB_PER_NODE
}

impl Default for Cost {
    fn default() -> Self {
        Cost { cpu_per_node: DEFAULT_CPU_PER_NODE, memory_mb_per_node: DEFAULT_MEMORY_MB_PER_NODE }
    }
}

/// The planning keys (`[plan]`). Service references are `name` (when unique in the fleet) or
/// `host/name`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The tailnet's DNS name (`bat-boa.ts.net`): legacy names are `<service>.<tailnet>`.
    /// When empty, `migrate plan` reads the MagicDNS suffix from the LocalAPI.
    #[serde(default)]
    pub tailnet: String,
    /// Wave sizes: the first is the canary, the last repeats until every service is placed.
    #[serde(default = "default_schedule")]
    pub schedule: Vec<usize>,
    /// No wave is larger than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wave_size: Option<usize>,
    /// Dependents that make a service a hub, moved in a wave of its own.
    #[serde(default = "default_hub")]
    pub hub_min_dependents: usize,
    /// The continuity strategy of every service not listed in `strategies`.
    #[serde(default = "default_strategy")]
    pub strategy: String,
    /// Strategy per service.
    #[serde(default)]
    pub strategies: BTreeMap<String, String>,
    /// Services pinned to a wave (1 is the canary).
    #[serde(default)]
    pub pins: BTreeMap<String, usize>,
    /// Services that stay on tsnsrv.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Who may reach a service once moved (`"storage/grafana" = [{ kind = "user", value =
    /// "alice@example.com" }]`; kinds `user`, `group`, `tag`): the per-node ACLs that told 57
    /// nodes apart are gone on one node. Without rules, every tailnet peer (as each node was).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub access: BTreeMap<String, Vec<crate::plan::Access>>,
    /// Upstream timeouts per service (`"storage/api" = { response_header_ms = 30000 }`). None
    /// by default, as tsnsrv had none: server-sent events and long polls rely on that.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub timeouts: BTreeMap<String, crate::plan::UpstreamTimeouts>,
    /// Whether services declared under a condition the inputs cannot decide exist
    /// (`"storage/jellyfin" = true`); until stated, such a service is `presence-unknown`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub present: BTreeMap<String, bool>,
    /// Services moved under a path of the node's own name (`/jellyfin/`): how a public service
    /// stays public under a strategy without Funnel. Its public URL becomes
    /// `https://<host>.<tailnet><path>`, and its legacy name answers 308 to it.
    #[serde(default)]
    pub mounts: BTreeMap<String, String>,
    /// Dependencies beyond those the inventory shows (forward auth, aliases).
    #[serde(default)]
    pub dependencies: BTreeMap<String, Vec<String>>,
    /// Checks per service (default: GET / expecting 200).
    #[serde(default)]
    pub checks: BTreeMap<String, Check>,
    /// Requests per day per service, if known (lower usage makes a better canary).
    #[serde(default)]
    pub usage: BTreeMap<String, u64>,
    /// A CSV file of `service,requests_per_day` lines (relative to the policy file); its figures
    /// join `usage` (where both name a service, `usage` wins) and are hashed with the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_file: Option<String>,
    /// A saved scrape of the fork's tsnsrv metrics (`curl host:9099/metrics > file`): the
    /// `tsnsrv_response_status_classes{service_name=...}` counters, divided by
    /// `usage_metrics_days`, give requests per day (`usage` and `usage_file` win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_metrics_file: Option<String>,
    /// How many days the counters in `usage_metrics_file` cover (the process's uptime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_metrics_days: Option<f64>,
    /// Cost of a tsnsrv node, for the forecast.
    #[serde(default)]
    pub cost: Cost,
}

fn default_schedule() -> Vec<usize> {
    DEFAULT_SCHEDULE.to_vec()
}

fn default_hub() -> usize {
    DEFAULT_HUB_MIN_DEPENDENTS
}

fn default_strategy() -> String {
    Strategy::TailscaleServices.as_str().into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    plan: Policy,
    #[serde(default)]
    apply: Option<toml::Table>,
}

impl Policy {
    /// Reads `migrate.toml` (and its `usage_file`). Errors name the file, line and column.
    pub fn load(path: &Path) -> Result<Policy, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlanError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut p = Policy::parse(&text, &path.display().to_string())?;
        if let Some(f) = &p.usage_file {
            let csv_path = path.parent().unwrap_or(Path::new(".")).join(f);
            let csv = std::fs::read_to_string(&csv_path).map_err(|e| PlanError::Io {
                path: csv_path.display().to_string(),
                message: e.to_string(),
            })?;
            for (k, v) in parse_usage_csv(&csv, &csv_path.display().to_string())? {
                p.usage.entry(k).or_insert(v);
            }
        }
        if let Some(f) = &p.usage_metrics_file {
            let m_path = path.parent().unwrap_or(Path::new(".")).join(f);
            let text = std::fs::read_to_string(&m_path).map_err(|e| PlanError::Io {
                path: m_path.display().to_string(),
                message: e.to_string(),
            })?;
            let days = p.usage_metrics_days.filter(|d| *d > 0.0).ok_or_else(|| PlanError::Policy {
                file: path.display().to_string(),
                line: 1,
                column: 1,
                message: "usage_metrics_file needs usage_metrics_days > 0 (the days its counters cover)".into(),
            })?;
            for (k, total) in parse_tsnsrv_metrics(&text) {
                p.usage.entry(k).or_insert((total / days).round() as u64);
            }
        }
        Ok(p)
    }

    /// Parses the text of `migrate.toml`.
    pub fn parse(text: &str, file: &str) -> Result<Policy, PlanError> {
        let parsed: File = tailshift_util::parse_toml(Path::new(file), text).map_err(|e| {
            PlanError::Policy { file: e.file, line: e.line, column: e.column, message: e.message }
        })?;
        let _ = parsed.apply;
        let p = parsed.plan;
        let at = |key: &str| {
            let off = text.find(key).unwrap_or(0);
            tailshift_util::line_col(text, off)
        };
        if p.schedule.is_empty() || p.schedule.contains(&0) {
            let (line, column) = at("schedule");
            return Err(PlanError::Policy {
                file: file.into(),
                line,
                column,
                message: "schedule needs at least one wave size, each at least 1".into(),
            });
        }
        for (svc, s) in std::iter::once(("(default)", &p.strategy))
            .chain(p.strategies.iter().map(|(k, v)| (k.as_str(), v)))
        {
            if Strategy::parse(s).is_none() {
                let (line, column) = at(&format!("\"{s}\""));
                return Err(PlanError::Policy {
                    file: file.into(),
                    line,
                    column,
                    message: format!(
                        "unknown continuity strategy {s:?} for {svc}; expected one of {}",
                        Strategy::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        Ok(p)
    }

    /// The strategy of a service (by id `host/name` or name).
    pub fn strategy_for(&self, id: &str, name: &str) -> Strategy {
        let s =
            self.strategies.get(id).or_else(|| self.strategies.get(name)).unwrap_or(&self.strategy);
        Strategy::parse(s).unwrap_or(Strategy::TailscaleServices)
    }

    /// A canonical JSON form of the planning keys, for the plan's policy hash.
    pub fn canonical(&self) -> String {
        serde_json::to_string(&serde_json::to_value(self).unwrap_or_default()).unwrap_or_default()
    }
}

/// Sums `tsnsrv_response_status_classes{service_name="x",...} N` per service from Prometheus
/// text (the fork's metrics; tsnsrv.md 3.8).
pub fn parse_tsnsrv_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("tsnsrv_response_status_classes{") else { continue };
        let Some((labels, value)) = rest.split_once('}') else { continue };
        let Some(v) = value.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let service = labels.split(',').find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "service_name").then(|| v.trim().trim_matches('"').to_string())
        });
        if let Some(s) = service {
            *out.entry(s).or_default() += v;
        }
    }
    out
}

/// Parses `service,requests_per_day` lines; a header line and `#` comments are skipped.
pub fn parse_usage_csv(text: &str, file: &str) -> Result<BTreeMap<String, u64>, PlanError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (svc, n) = l.split_once(',').unwrap_or((l, ""));
        let n = n.trim();
        match n.parse::<u64>() {
            Ok(v) => {
                out.insert(svc.trim().to_string(), v);
            }
            Err(_) if i == 0 => {} // header
            Err(_) => {
                return Err(PlanError::Policy {
                    file: file.into(),
                    line: i + 1,
                    column: line.find(',').map_or(1, |c| c + 2),
                    message: format!("expected service,requests_per_day; {n:?} is not a count"),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_syntax_errors_have_line_and_column() {
        let p = Policy::parse("[plan]\ntailnet = \"t.ts.net\"\n", "m.toml").unwrap();
        assert_eq!(p.schedule, vec![3, 10, 15]);
        assert_eq!(p.strategy, "tailscale-services");
        let e = Policy::parse("[plan]\ntailnet = \"t\"\nschedule = [3, \n", "m.toml").unwrap_err();
        let PlanError::Policy { line, .. } = e else { panic!("{e}") };
        assert!(line >= 3);
        let e = Policy::parse("[plan]\ntailnet = \"t\"\nwaves = 3\n", "m.toml").unwrap_err();
        assert!(e.to_string().contains("m.toml:3:1"), "{e}");
    }

    #[test]
    fn usage_csv_skips_header_and_names_bad_lines() {
        let m = parse_usage_csv(
            "service,requests_per_day\ngrafana,40\n# note\nminiflux, 300\n",
            "u.csv",
        )
        .unwrap();
        assert_eq!(m["miniflux"], 300);
        let e = parse_usage_csv("a,1\nb,lots\n", "u.csv").unwrap_err();
        assert!(e.to_string().starts_with("u.csv:2:3:"), "{e}");
    }

    #[test]
    fn tsnsrv_metrics_are_summed_per_service() {
        let text = "# TYPE tsnsrv_response_status_classes counter\n\
            tsnsrv_response_status_classes{service_name=\"a\",status_code_class=\"2xx\"} 70\n\
            tsnsrv_response_status_classes{service_name=\"a\",status_code_class=\"5xx\"} 7\n\
            tsnsrv_response_status_classes{service_name=\"b\",status_code_class=\"2xx\"} 1.4e1\n\
            tsnsrv_proxy_errors{service_name=\"a\"} 3\n";
        let m = parse_tsnsrv_metrics(text);
        assert_eq!(m["a"], 77.0);
        assert_eq!(m["b"], 14.0);
    }

    #[test]
    fn unknown_strategy_is_refused() {
        let e = Policy::parse(
            "[plan]\ntailnet = \"t\"\n[plan.strategies]\na = \"teleport\"\n",
            "m.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("teleport") && e.to_string().contains("m.toml:4:"), "{e}");
    }
}
