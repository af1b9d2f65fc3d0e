//! The in-memory world of the model-based test: one proxy route table per host, the shim's
//! records, the legacy units and the nodes' state, all inspectable; faults that make one kind of
//! call fail for a command; a crash at the Nth journal point of a command (a panic carrying
//! [`Crash`], after stashing the lock the dead process would leave behind). The answers of the
//! old names come from [`answer`], which the model uses too: it is the environment, not the
//! engine.

use crate::apply::config::ApplyConfig;
use crate::apply::engine::world::World;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tailshift_checks::{CheckConfig, Outcome};
use tailshift_plans::Plan;
use tailshift_plans::plan::PlannedService;
use tailshift_plans::steps::Strategy;
use tailshift_routes::Route;
use tailshift_shims::{Shim, ShimError, ShimService, Verification};

/// A kind of call that fails while the command it was armed for runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// `PUT /routes` (adding and removing a route).
    Routes,
    /// The shim's prepare.
    Prepare,
    /// The shim's unprepare.
    Unprepare,
    /// The shim's complete.
    Complete,
    /// The shim's uncomplete.
    Uncomplete,
    /// The adapter's stop.
    Stop,
    /// The adapter's start.
    Start,
    /// The adapter's finalize.
    Finalize,
    /// The app answers 500 through the proxy (the check after the move fails).
    Verify,
}

/// What is in place, per service id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// A route in its host's proxy.
    pub route: BTreeSet<String>,
    /// The old name's record points at the proxy (shim prepared).
    pub prepared: BTreeSet<String>,
    /// The shim's complete step done.
    pub completed: BTreeSet<String>,
    /// The legacy unit stopped.
    pub stopped: BTreeSet<String>,
    /// The legacy node's state removed (finalize).
    pub finalized: BTreeSet<String>,
}

/// Where a service lives: its id, its host (0 or 1).
#[derive(Clone, Debug)]
pub struct Place {
    pub id: String,
    pub host: usize,
    pub index: usize,
}

/// The proxy's address on a host.
pub fn proxy_addr(host: usize) -> IpAddr {
    IpAddr::from([100, 64, 0, host as u8 + 1])
}

/// A legacy node's address.
pub fn legacy_addr(index: usize) -> IpAddr {
    IpAddr::from([100, 100, 0, index as u8 + 1])
}

/// How the old name of a service answers, given what is in place.
pub fn answer(e: &Effects, faults: &BTreeSet<Fault>, p: &Place) -> Outcome {
    if e.prepared.contains(&p.id) {
        let code = match (e.route.contains(&p.id), faults.contains(&Fault::Verify)) {
            (false, _) => 404,
            (true, true) => 500,
            (true, false) => 200,
        };
        Outcome::Status { code, addr: proxy_addr(p.host), location: None }
    } else if !e.stopped.contains(&p.id) {
        Outcome::Status { code: 200, addr: legacy_addr(p.index), location: None }
    } else {
        Outcome::Error(tailshift_checks::CheckError::NoAddress { name: p.id.clone() })
    }
}

/// A crash at a journal point (the panic's payload).
pub struct Crash;

/// The mutable side of the world.
#[derive(Default)]
pub struct Inner {
    /// Each host's proxy table, by admin socket.
    pub tables: BTreeMap<PathBuf, Vec<Route>>,
    pub effects: Effects,
    pub faults: BTreeSet<Fault>,
    /// Crash at this journal point of the command (1-based).
    pub crash_at: Option<usize>,
    pub points: usize,
    /// The lock file as the crashed process left it.
    pub stashed_lock: Option<(PathBuf, String)>,
    /// Events reported.
    pub events: Vec<serde_json::Value>,
    /// The state directory of the command running (for the lock stash).
    pub dir: PathBuf,
    pub watchers: usize,
}

/// The in-memory world.
pub struct ModelWorld {
    pub inner: RefCell<Inner>,
    pub by_name: BTreeMap<String, Place>,
}

impl ModelWorld {
    fn fail(&self, f: Fault, what: &str) -> Result<(), ShimError> {
        if self.inner.borrow().faults.contains(&f) {
            return Err(ShimError::External { what: what.into(), message: "injected".into() });
        }
        Ok(())
    }

    /// What is in place: the effects, routes read from the proxies' tables.
    pub fn effects(&self) -> Effects {
        let inner = self.inner.borrow();
        let mut e = inner.effects.clone();
        e.route = inner.tables.values().flatten().map(|r| r.service.clone()).collect();
        e
    }
}

struct ModelShim<'a>(&'a ModelWorld);

impl Shim for ModelShim<'_> {
    fn kind(&self) -> &'static str {
        "model"
    }
    fn describe(&self, s: &ShimService) -> Vec<String> {
        vec![format!("point {} at the proxy", s.legacy_name)]
    }
    fn verify_restored(&self, s: &ShimService) -> Result<Verification, ShimError> {
        let e = &self.0.inner.borrow().effects;
        Ok(if e.prepared.contains(&s.service) || e.completed.contains(&s.service) {
            Verification::Missing(format!("{}: the shim is still in place", s.service))
        } else {
            Verification::Holds
        })
    }
    fn prepare(&self, s: &ShimService) -> Result<(), ShimError> {
        self.0.fail(Fault::Prepare, "prepare")?;
        self.0.inner.borrow_mut().effects.prepared.insert(s.service.clone());
        Ok(())
    }
    fn complete(&self, s: &ShimService) -> Result<(), ShimError> {
        self.0.fail(Fault::Complete, "complete")?;
        self.0.inner.borrow_mut().effects.completed.insert(s.service.clone());
        Ok(())
    }
    fn verify(&self, s: &ShimService) -> Result<Verification, ShimError> {
        Ok(if self.0.inner.borrow().effects.prepared.contains(&s.service) {
            Verification::Holds
        } else {
            Verification::Missing(format!("{}: no record", s.service))
        })
    }
    fn uncomplete(&self, s: &ShimService) -> Result<(), ShimError> {
        self.0.fail(Fault::Uncomplete, "uncomplete")?;
        self.0.inner.borrow_mut().effects.completed.remove(&s.service);
        Ok(())
    }
    fn unprepare(&self, s: &ShimService) -> Result<(), ShimError> {
        self.0.fail(Fault::Unprepare, "unprepare")?;
        self.0.inner.borrow_mut().effects.prepared.remove(&s.service);
        Ok(())
    }
}

impl World for ModelWorld {
    fn healthy(&self, _: &Path) -> anyhow::Result<()> {
        Ok(())
    }

    fn routes(&self, sock: &Path) -> anyhow::Result<Vec<Route>> {
        Ok(self.inner.borrow().tables.get(sock).cloned().unwrap_or_default())
    }

    fn put_routes(&self, sock: &Path, routes: &[Route]) -> anyhow::Result<()> {
        self.fail(Fault::Routes, "PUT /routes")?;
        self.inner.borrow_mut().tables.insert(sock.to_path_buf(), routes.to_vec());
        Ok(())
    }

    fn check(&self, _: &CheckConfig, name: &str, _: &str, _: &[String]) -> Outcome {
        let Some(p) = self.by_name.get(name) else {
            return Outcome::Error(tailshift_checks::CheckError::NoAddress { name: name.into() });
        };
        let e = self.effects();
        answer(&e, &self.inner.borrow().faults, p)
    }

    fn reach_upstream(&self, _: &Route) -> anyhow::Result<()> {
        Ok(())
    }

    fn shim(
        &self,
        _: Strategy,
        _: &ApplyConfig,
        _: &Plan,
        _: &PlannedService,
    ) -> anyhow::Result<Box<dyn Shim + '_>> {
        Ok(Box::new(ModelShim(self)))
    }

    fn legacy(
        &self,
        _: &ApplyConfig,
        action: &str,
        _: &str,
        s: &PlannedService,
        _: usize,
    ) -> anyhow::Result<()> {
        let id = s.id.to_string();
        let fault = match action {
            "stop" => Fault::Stop,
            "start" => Fault::Start,
            "finalize" => Fault::Finalize,
            other => anyhow::bail!("the model's adapter cannot {other}"),
        };
        self.fail(fault, action)?;
        let e = &mut self.inner.borrow_mut().effects;
        match fault {
            Fault::Stop => e.stopped.insert(id),
            Fault::Start => e.stopped.remove(&id),
            _ => e.finalized.insert(id),
        };
        Ok(())
    }

    fn sleep(&self, _: Duration) {}

    fn now_unix(&self) -> u64 {
        2_000_000_000
    }

    fn spawn_watcher(&self, _: std::process::Command) -> anyhow::Result<()> {
        self.inner.borrow_mut().watchers += 1;
        Ok(())
    }

    fn report(&self, _: bool, _: String, event: serde_json::Value) {
        self.inner.borrow_mut().events.push(event);
    }

    fn journal_point(&self, _: &str) {
        let mut inner = self.inner.borrow_mut();
        inner.points += 1;
        if inner.crash_at == Some(inner.points) {
            let lock = crate::apply::lock::Lock::path(&inner.dir);
            inner.stashed_lock = std::fs::read_to_string(&lock).ok().map(|t| (lock, t));
            drop(inner);
            std::panic::panic_any(Crash);
        }
    }
}
