//! The world the binary runs in: the real admin socket, checks, shims, adapters and clock.

use super::world::World;
use crate::apply::admin_client;
use crate::apply::config::ApplyConfig;
use std::path::Path;
use std::time::Duration;
use tailshift_checks::{CheckConfig, Outcome};
use tailshift_plans::Plan;
use tailshift_plans::plan::PlannedService;
use tailshift_plans::steps::Strategy;
use tailshift_routes::Route;
use tailshift_shims::Shim;

/// The world the binary runs in.
pub struct Real;

/// The one real world.
pub static REAL: Real = Real;

impl World for Real {
    fn healthy(&self, sock: &Path) -> anyhow::Result<()> {
        admin_client::healthy(sock)
    }

    fn routes(&self, sock: &Path) -> anyhow::Result<Vec<Route>> {
        admin_client::routes(sock)
    }

    fn put_routes(&self, sock: &Path, routes: &[Route]) -> anyhow::Result<()> {
        admin_client::put_routes(sock, routes)
    }

    fn check(&self, cfg: &CheckConfig, name: &str, path: &str, headers: &[String]) -> Outcome {
        tailshift_checks::check_with(cfg, name, path, headers)
    }

    fn reach_upstream(&self, route: &Route) -> anyhow::Result<()> {
        super::steps::reach_upstream(route)
    }

    fn shim(
        &self,
        strategy: Strategy,
        cfg: &ApplyConfig,
        plan: &Plan,
        svc: &PlannedService,
    ) -> anyhow::Result<Box<dyn Shim + '_>> {
        super::adapters::shim_for(strategy, cfg, plan, svc)
    }

    fn legacy(
        &self,
        cfg: &ApplyConfig,
        action: &str,
        unit: &str,
        s: &PlannedService,
        wave: usize,
    ) -> anyhow::Result<()> {
        super::adapters::run_legacy(cfg, action, unit, s, wave)
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }

    fn now_unix(&self) -> u64 {
        tailshift_plans::plan_file::now_unix()
    }

    fn spawn_watcher(&self, mut cmd: std::process::Command) -> anyhow::Result<()> {
        cmd.spawn()?;
        Ok(())
    }

    fn report(&self, json: bool, text: String, event: serde_json::Value) {
        if json {
            println!("{event}");
        } else {
            println!("{text}");
        }
    }

    fn journal_point(&self, name: &str) {
        super::common::failpoint(name);
    }
}
