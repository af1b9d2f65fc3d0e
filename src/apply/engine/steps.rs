//! One forward step of a service's wave, and the checks that decide whether it held.

use super::adapters::shim_service;
use super::common::Request;
use super::common::credentials;
use super::common::legacy_name;
use super::common::route_of;
use super::common::show;
use std::net::IpAddr;
use std::time::Duration;
use tailshift_checks::Outcome;
use tailshift_parsers::Opt;
use tailshift_plans::plan::PlannedService;
use tailshift_plans::steps::{Step, Strategy};
use tailshift_routes::Route;

pub(super) fn reach_upstream(r: &Route) -> anyhow::Result<()> {
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

pub(super) fn run_step(
    req: &Request,
    s: &PlannedService,
    step: &Step,
    baselines: &std::collections::BTreeMap<tailshift_plans::ServiceId, Outcome>,
    state: &crate::apply::state::State,
) -> anyhow::Result<()> {
    let cfg = req.cfg;
    let baseline = baselines.get(&s.id);
    match step {
        Step::AddRoute => {
            let mut table = req.world.routes(&cfg.admin_socket)?;
            let route = route_of(s)?;
            table.retain(|r| r.service != route.service);
            table.push(route.clone());
            req.world.put_routes(&cfg.admin_socket, &table)
        }
        Step::ShimPrepare { strategy } => {
            Ok(req.world.shim(*strategy, cfg, req.plan, s)?.prepare(&shim_service(s, cfg))?)
        }
        Step::Settle => {
            req.world.sleep(Duration::from_millis(cfg.settle_ms));
            Ok(())
        }
        Step::StopLegacy { .. } if super::shared::applies(req, s) => {
            super::shared::stop(req, state, baselines)
        }
        Step::StopLegacy { unit } => req.world.legacy(cfg, "stop", unit, s, req.wave),
        Step::ShimComplete { strategy } => {
            Ok(req.world.shim(*strategy, cfg, req.plan, s)?.complete(&shim_service(s, cfg))?)
        }
        Step::RepointLegacy { unit } => {
            // The shim writes the kept node's own definition; the adapter applies it.
            req.world.shim(s.strategy, cfg, req.plan, s)?.prepare(&shim_service(s, cfg))?;
            req.world.legacy(cfg, "repoint", unit, s, req.wave)
        }
        Step::Verify { path, .. } => {
            let shim = req.world.shim(s.strategy, cfg, req.plan, s)?;
            let v = shim.verify(&shim_service(s, cfg))?;
            if !v.holds() {
                let why = match v {
                    tailshift_shims::Verification::Missing(why) => why,
                    tailshift_shims::Verification::Holds => String::new(),
                };
                anyhow::bail!("the old name does not lead to the proxy: {why}");
            }
            let creds = credentials(req.plan, s)?;
            let now = req.world.check(&cfg.check, &legacy_name(s), path, &creds);
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
                        && s.inventory
                            .effective
                            .str(Opt::AuthUrl)
                            .is_some_and(|u| !u.is_empty())
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
pub(super) struct Inconclusive(String);

impl std::fmt::Display for Inconclusive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "inconclusive: {}", self.0)
    }
}

impl std::error::Error for Inconclusive {}
