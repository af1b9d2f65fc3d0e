//! The state directory's exclusive lock: `lock.json`, created with `O_EXCL`, holding its owner
//! (id, pid, host, operation, wave, since). A lock whose process is gone on this host is stale:
//! it is reported with its owner and can be taken over only by `migrate force-unlock ID`, never
//! silently (the crashed run's journal must be looked at first).

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Who holds the lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The lock's id (for `force-unlock`).
    pub id: String,
    /// The process.
    pub pid: u32,
    /// The machine.
    pub host: String,
    /// `apply`, `rollback`, `finalize`, `confirm-watch`.
    pub operation: String,
    /// The wave.
    pub wave: Option<usize>,
    /// Seconds since the Unix epoch.
    pub since: u64,
}

impl Owner {
    /// `apply of wave 4 by pid 123 on storage since 2026-12-04T19:00:00Z (id ...)`.
    pub fn describe(&self) -> String {
        format!(
            "{}{} by pid {} on {} since {} (lock id {}){}",
            self.operation,
            self.wave.map(|w| format!(" of wave {w}")).unwrap_or_default(),
            self.pid,
            self.host,
            tailshift_util::Timestamp::from_unix_secs(self.since),
            self.id,
            if self.is_stale() { ", a process that no longer exists (stale)" } else { "" }
        )
    }

    /// What the operator runs next, with every flag it needs.
    pub fn next_step(&self, dir: &Path) -> String {
        let unlock = format!("migrate force-unlock {} --state-dir {}", self.id, dir.display());
        if self.is_stale() {
            format!("check `migrate status --state-dir {}`, then `{unlock}`", dir.display())
        } else {
            format!("wait for it to finish; if it hangs, stop it first, then `{unlock}`")
        }
    }

    /// Whether the owning process is gone (only knowable on the same host).
    pub fn is_stale(&self) -> bool {
        self.host == hostname() && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone holds it.
    #[error("{} is locked by {}; {}", .dir.display(), .owner.describe(), .owner.next_step(.dir))]
    Held {
        /// Who.
        owner: Box<Owner>,
        /// The state directory.
        dir: PathBuf,
    },
    /// The lock file could not be made or read.
    #[error("{0}")]
    Io(String),
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

/// This machine's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

impl Lock {
    /// The lock file of a state directory.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("lock.json")
    }

    /// The current owner, if locked.
    pub fn owner(dir: &Path) -> Result<Option<Owner>, LockError> {
        match std::fs::read_to_string(Lock::path(dir)) {
            Ok(t) => serde_json::from_str(&t).map(Some).map_err(|e| {
                LockError::Io(format!(
                    "{}: unreadable lock ({e}); remove it by hand after checking",
                    Lock::path(dir).display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LockError::Io(format!("{}: {e}", Lock::path(dir).display()))),
        }
    }

    /// Takes the lock for an operation.
    pub fn acquire(dir: &Path, operation: &str, wave: Option<usize>) -> Result<Lock, LockError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| LockError::Io(format!("{}: {e}", dir.display())))?;
        let path = Lock::path(dir);
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let owner = Owner {
            id: format!("{:x}-{}", since, std::process::id()),
            pid: std::process::id(),
            host: hostname(),
            operation: operation.into(),
            wave,
            since,
        };
        let mut f = match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(match Lock::owner(dir)? {
                    Some(o) => LockError::Held { owner: Box::new(o), dir: dir.to_path_buf() },
                    None => LockError::Io(format!(
                        "{}: appeared and vanished; try again",
                        path.display()
                    )),
                });
            }
            Err(e) => return Err(LockError::Io(format!("{}: {e}", path.display()))),
        };
        let text = serde_json::to_string_pretty(&owner).unwrap_or_default() + "\n";
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| LockError::Io(format!("{}: {e}", path.display())))?;
        Ok(Lock { path })
    }

    /// Removes a lock by its id (`migrate force-unlock ID`); refuses another id, and a live
    /// owner on this host.
    pub fn force_unlock(dir: &Path, id: &str) -> Result<Owner, LockError> {
        let Some(o) = Lock::owner(dir)? else {
            return Err(LockError::Io(format!("{}: not locked", dir.display())));
        };
        if o.id != id {
            return Err(LockError::Io(format!("the lock's id is {}, not {id}", o.id)));
        }
        if o.host == hostname() && !o.is_stale() {
            return Err(LockError::Held { owner: Box::new(o), dir: dir.to_path_buf() });
        }
        std::fs::remove_file(Lock::path(dir)).map_err(|e| LockError::Io(e.to_string()))?;
        Ok(o)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_stale_owners_named_force_unlock_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let l = Lock::acquire(dir.path(), "apply", Some(1)).unwrap();
        let e = Lock::acquire(dir.path(), "rollback", Some(1)).unwrap_err();
        assert!(matches!(&e, LockError::Held { owner, .. } if owner.operation == "apply"), "{e}");
        // A live owner cannot be forced out.
        let id = Lock::owner(dir.path()).unwrap().unwrap().id;
        assert!(Lock::force_unlock(dir.path(), &id).is_err());
        drop(l);
        assert!(Lock::owner(dir.path()).unwrap().is_none());
        // A crashed owner: a pid that does not exist.
        let ghost = Owner {
            id: "dead-1".into(),
            pid: u32::MAX - 1,
            host: hostname(),
            operation: "apply".into(),
            wave: Some(2),
            since: 1,
        };
        std::fs::write(Lock::path(dir.path()), serde_json::to_string(&ghost).unwrap()).unwrap();
        let e = Lock::acquire(dir.path(), "apply", Some(2)).unwrap_err().to_string();
        assert!(e.contains("stale") && e.contains("force-unlock dead-1"), "{e}");
        assert!(Lock::force_unlock(dir.path(), "other").is_err());
        assert_eq!(Lock::force_unlock(dir.path(), "dead-1").unwrap().pid, u32::MAX - 1);
        assert!(Lock::acquire(dir.path(), "apply", Some(2)).is_ok());
    }
}
