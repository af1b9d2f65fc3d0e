//! Everything a wave command touches outside its state directory, behind one seam: the proxy's
//! admin socket, the checks, the shims, the legacy adapter, the clock, the confirmation watcher,
//! the reporter of events, and the journal's crash points. `real::REAL` is the world the
//! binary runs in; the engine's model-based test swaps in an in-memory one whose effects it inspects.

use crate::apply::config::ApplyConfig;
use std::path::Path;
use std::time::Duration;
use tailshift_checks::{CheckConfig, Outcome};
use tailshift_plans::Plan;
use tailshift_plans::plan::PlannedService;
use tailshift_plans::steps::Strategy;
use tailshift_routes::Route;
use tailshift_shims::Shim;

/// What the engine does to the world, one method per kind of effect.
pub trait World {
    /// Whether the proxy answers on its admin socket.
    fn healthy(&self, sock: &Path) -> anyhow::Result<()>;
    /// The proxy's current route table.
    fn routes(&self, sock: &Path) -> anyhow::Result<Vec<Route>>;
    /// Replaces the proxy's whole table.
    fn put_routes(&self, sock: &Path, routes: &[Route]) -> anyhow::Result<()>;
    /// Fetches `https://<name><path>` the way users reach it.
    fn check(&self, cfg: &CheckConfig, name: &str, path: &str, headers: &[String]) -> Outcome;
    /// Whether a route's upstream can be dialed.
    fn reach_upstream(&self, route: &Route) -> anyhow::Result<()>;
    /// The shim of a strategy for a service.
    fn shim(
        &self,
        strategy: Strategy,
        cfg: &ApplyConfig,
        plan: &Plan,
        svc: &PlannedService,
    ) -> anyhow::Result<Box<dyn Shim + '_>>;
    /// Runs the legacy adapter: `stop`, `start`, `repoint`, `restore` or `finalize` a unit.
    fn legacy(
        &self,
        cfg: &ApplyConfig,
        action: &str,
        unit: &str,
        s: &PlannedService,
        wave: usize,
    ) -> anyhow::Result<()>;
    /// Waits (the settle time).
    fn sleep(&self, d: Duration);
    /// Seconds since the Unix epoch.
    fn now_unix(&self) -> u64;
    /// Starts the confirmation watcher of a wave (the command is ready to spawn).
    fn spawn_watcher(&self, cmd: std::process::Command) -> anyhow::Result<()>;
    /// One progress event (text for people, or its JSON object with `--format json`).
    fn report(&self, json: bool, text: String, event: serde_json::Value);
    /// A journal record was just written (`<operation>-<service>-<step>-<intent|result>`).
    fn journal_point(&self, name: &str);
}
