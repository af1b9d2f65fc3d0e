//! Continuity strategies and the closed set of [`Step`]s a plan file holds (design section 3).
//! `apply` executes them; this crate only names them, in order, with their inverses.

use serde::{Deserialize, Serialize};

/// How a service's legacy name keeps working once its node is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// A Tailscale Service per legacy name, served by the one node (no Funnel on Services).
    TailscaleServices,
    /// headscale `extra_records` point the legacy name at the node.
    Headscale,
    /// The DNS responder `migrate proxy` hosts answers the legacy name (test domains, own domains).
    SplitDns,
    /// `/etc/hosts` entries on the clients that need them.
    Hosts,
    /// The legacy node stays, re-pointed straight at the upstream; savings deferred.
    KeepNode,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 5] = [
        Strategy::TailscaleServices,
        Strategy::Headscale,
        Strategy::SplitDns,
        Strategy::Hosts,
        Strategy::KeepNode,
    ];

    /// The `migrate.toml` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::TailscaleServices => "tailscale-services",
            Strategy::Headscale => "headscale",
            Strategy::SplitDns => "split-dns",
            Strategy::Hosts => "hosts",
            Strategy::KeepNode => "keep-node",
        }
    }

    /// Parses the `migrate.toml` spelling.
    pub fn parse(s: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the public (Funnel) name survives under this strategy.
    pub fn keeps_funnel(self) -> bool {
        matches!(self, Strategy::KeepNode)
    }

    /// Whether the service's tsnsrv node goes away (and its cost with it).
    pub fn frees_node(self) -> bool {
        !matches!(self, Strategy::KeepNode)
    }

    /// The gap the strategy leaves, as the plan states it.
    pub fn gap(self) -> &'static str {
        match self {
            Strategy::TailscaleServices => {
                "the name is dark from the legacy stop until the Service is live (seconds)"
            }
            Strategy::Headscale | Strategy::SplitDns | Strategy::Hosts => {
                "none if clients re-resolve; cached answers reach the legacy node until it stops"
            }
            Strategy::KeepNode => "none; the node's cost stays until it is retired",
        }
    }
}

/// One step of moving a service. Each is journaled, idempotent and has an inverse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Add the service's route to the proxy (inverse: remove it, always last).
    AddRoute,
    /// Shim prepare: write the name's record before the legacy node stops.
    ShimPrepare {
        /// Which backend.
        strategy: Strategy,
    },
    /// Wait for DNS TTLs and netmap pushes.
    Settle,
    /// Stop the legacy tsnsrv unit (inverse: start it).
    StopLegacy {
        /// The systemd unit.
        unit: String,
    },
    /// Shim complete: after the stop (delete the old device, define/approve/advertise the
    /// Service, remove headscale's old node).
    ShimComplete {
        /// Which backend.
        strategy: Strategy,
    },
    /// Re-point the legacy node straight at the upstream (keep-node).
    RepointLegacy {
        /// The systemd unit.
        unit: String,
    },
    /// Run the service's check through its legacy name.
    Verify {
        /// Path requested.
        path: String,
        /// Expected status.
        status: u16,
    },
}

impl Step {
    /// The step in an operator's words: the runbook, the journal, progress lines.
    pub fn describe(&self) -> String {
        match self {
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
}

impl Step {
    /// What undoing this step does, for runbooks.
    pub fn inverse(&self) -> String {
        match self {
            Step::AddRoute => "remove the route (always the last inverse step)".into(),
            Step::ShimPrepare { strategy } => format!("remove the {} record", strategy.as_str()),
            Step::Settle => "settle again before the route goes".into(),
            Step::StopLegacy { unit } => format!("start {unit}"),
            Step::ShimComplete { strategy } => {
                format!("undo the {} change (re-register the old node)", strategy.as_str())
            }
            Step::RepointLegacy { unit } => format!("restore {unit}'s previous definition"),
            Step::Verify { .. } => "nothing to undo".into(),
        }
    }
}

/// The ordered steps of a service under a strategy (design section 3's table).
pub fn steps_for(strategy: Strategy, unit: &str, check_path: &str, check_status: u16) -> Vec<Step> {
    let verify = Step::Verify { path: check_path.to_string(), status: check_status };
    let unit = unit.to_string();
    match strategy {
        Strategy::TailscaleServices => {
            vec![Step::AddRoute, Step::StopLegacy { unit }, Step::ShimComplete { strategy }, verify]
        }
        Strategy::Headscale | Strategy::SplitDns | Strategy::Hosts => vec![
            Step::AddRoute,
            Step::ShimPrepare { strategy },
            Step::Settle,
            Step::StopLegacy { unit },
            Step::ShimComplete { strategy },
            verify,
        ],
        Strategy::KeepNode => vec![Step::AddRoute, Step::RepointLegacy { unit }, verify],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tailscale_services_stops_legacy_before_the_service_goes_live() {
        let s = steps_for(Strategy::TailscaleServices, "tsnsrv-a.service", "/", 200);
        let stop = s.iter().position(|x| matches!(x, Step::StopLegacy { .. })).unwrap();
        let complete = s.iter().position(|x| matches!(x, Step::ShimComplete { .. })).unwrap();
        assert!(stop < complete);
        assert_eq!(s[0], Step::AddRoute);
    }

    #[test]
    fn dns_strategies_settle_before_the_stop() {
        for st in [Strategy::Headscale, Strategy::SplitDns, Strategy::Hosts] {
            let s = steps_for(st, "u", "/", 200);
            let settle = s.iter().position(|x| *x == Step::Settle).unwrap();
            let stop = s.iter().position(|x| matches!(x, Step::StopLegacy { .. })).unwrap();
            assert!(settle < stop, "{st:?}");
        }
    }
}
