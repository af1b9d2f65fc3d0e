//! `state.json`: what this host's migration state is, per service, with a lineage (the state
//! directory's identity, fixed at creation) and a serial (incremented on every write), written
//! atomically. The journal says how it got there; this file is the summary `status` and the
//! staleness check read first.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a service is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Served by its tsnsrv node.
    Legacy,
    /// Some steps of its wave ran (an apply in progress or interrupted).
    Applying,
    /// Applied and checked, waiting for the operator's `migrate confirm` (a watcher rolls it
    /// back at the deadline).
    Unconfirmed,
    /// Served by the proxy, its old name kept by its shim.
    Applied,
    /// Being undone.
    RollingBack,
    /// Being finalized: recorded before its legacy node's state goes, so a crash or a failure
    /// there is never reported as `applied` (which could still be rolled back). Finalizing again
    /// completes it.
    Finalizing,
    /// Finalized: what only a rollback needed is gone.
    Finalized,
}

/// One service's state on this host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// Where it is.
    pub phase: Phase,
    /// The wave it belongs to.
    pub wave: usize,
    /// The plan that moved it.
    pub plan_id: String,
    /// The steps done, by index into the plan's steps for the service.
    pub done: Vec<usize>,
    /// Incremented each time the service changes phase.
    pub generation: u64,
}

/// The whole state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Format identifier.
    pub schema: String,
    /// The state directory's identity (random at creation, never changes).
    pub lineage: String,
    /// Incremented on every write.
    pub serial: u64,
    /// Per service (`host/name`).
    pub services: BTreeMap<String, ServiceState>,
}

/// The schema identifier.
pub const SCHEMA: &str = "tailshift.state/v1";

fn random_hex(n: usize) -> String {
    use std::io::Read;
    let mut b = vec![0u8; n];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_err() {
        // Not random, but unique enough for a lineage where /dev/urandom is missing.
        let t =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        b = t.as_nanos().to_le_bytes()[..n.min(16)].to_vec();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl State {
    /// A fresh state with a new lineage.
    pub fn new() -> State {
        State {
            schema: SCHEMA.into(),
            lineage: random_hex(16),
            serial: 0,
            services: BTreeMap::new(),
        }
    }

    /// The state file of a state directory.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// Reads the state (a missing file is a fresh state, not yet written).
    pub fn load(dir: &Path) -> anyhow::Result<State> {
        let p = State::path(dir);
        match std::fs::read_to_string(&p) {
            Ok(t) => {
                let s: State = serde_json::from_str(&t).map_err(|e| {
                    anyhow::anyhow!(
                        "{}:{}:{}: not a tailshift state file: {e}",
                        p.display(),
                        e.line(),
                        e.column()
                    )
                })?;
                if s.schema != SCHEMA {
                    anyhow::bail!("{}: schema {:?}, expected {SCHEMA}", p.display(), s.schema);
                }
                Ok(s)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::new()),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", p.display())),
        }
    }

    /// Writes the state atomically with the next serial.
    pub fn save(&mut self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        self.serial += 1;
        let text = serde_json::to_string_pretty(self)? + "\n";
        tailshift_plans::plan_file::write_atomic(&State::path(dir), &text)?;
        Ok(())
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_stays_and_serial_grows() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::load(dir.path()).unwrap();
        assert_eq!(s.serial, 0);
        let lineage = s.lineage.clone();
        assert_eq!(lineage.len(), 32);
        s.services.insert(
            "nas/app".into(),
            ServiceState {
                phase: Phase::Applied,
                wave: 1,
                plan_id: "p".into(),
                done: vec![0, 1],
                generation: 1,
            },
        );
        s.save(dir.path()).unwrap();
        s.save(dir.path()).unwrap();
        let back = State::load(dir.path()).unwrap();
        assert_eq!((back.lineage.as_str(), back.serial), (lineage.as_str(), 2));
        assert_eq!(back.services["nas/app"].phase, Phase::Applied);
        std::fs::write(State::path(dir.path()), "{\"schema\": 1").unwrap();
        let e = State::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("state.json:1:"), "{e}");
    }
}
