//! `journal.ndjson`: append-only, one JSON record per line, fsync'd before the step it announces
//! runs. Every step has an intent record before and a result record after; an intent without a
//! result is where a crash happened (`status` reports it, exit 9). Every record carries the
//! `plan_id` it executed, which is how another plan's changes are told apart (staleness).

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a record says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A step is about to run.
    Intent,
    /// It ran: `ok` or the error.
    Result,
}

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Sequence number in this journal (1, 2, ...).
    pub seq: u64,
    /// Intent or result.
    pub kind: Kind,
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// The plan executed.
    pub plan_id: String,
    /// `apply`, `rollback`, `finalize`.
    pub operation: String,
    /// The wave.
    pub wave: usize,
    /// The service (`host/name`), or empty for wave-level steps.
    pub service: String,
    /// The step's index in the service's steps (inverse steps of a rollback keep the index).
    pub step: usize,
    /// What the step is, in words.
    pub what: String,
    /// For a result: `None` when it succeeded, else the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The journal of a state directory.
pub struct Journal {
    path: PathBuf,
    next: u64,
}

/// An intent still waiting for its result (after a crash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dangling {
    /// The intent.
    pub intent: Record,
}

impl Journal {
    /// The journal file of a state directory.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("journal.ndjson")
    }

    /// Opens (creating) the journal of a state directory.
    pub fn open(dir: &Path) -> anyhow::Result<Journal> {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        let path = Journal::path(dir);
        // A torn last line (a crash while appending) is cut off before anything is appended, so
        // the next record never glues onto it. Its step had not started.
        if let Ok(bytes) = std::fs::read(&path)
            && !bytes.is_empty()
            && !bytes.ends_with(b"\n")
        {
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let f = std::fs::OpenOptions::new().write(true).open(&path)?;
            f.set_len(keep as u64)?;
            f.sync_all()?;
        }
        let next = Journal::read(dir)?.last().map_or(1, |r| r.seq + 1);
        Ok(Journal { path, next })
    }

    /// Every record, in order. A torn last line (a crash while appending) is ignored: its step
    /// had not started.
    pub fn read(dir: &Path) -> anyhow::Result<Vec<Record>> {
        let path = Journal::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        };
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str::<Record>(line) {
                Ok(r) => out.push(r),
                Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
                Err(e) => anyhow::bail!("{}:{}:{}: {e}", path.display(), i + 1, e.column()),
            }
        }
        Ok(out)
    }

    /// Intents without a result. A later result for the same service, wave and step closes an
    /// intent whatever the operation: a resumed apply re-runs the step, a rollback undoes it.
    pub fn dangling(records: &[Record]) -> Vec<Dangling> {
        let mut open: Vec<Record> = Vec::new();
        for r in records {
            match r.kind {
                Kind::Intent => open.push(r.clone()),
                Kind::Result => open
                    .retain(|i| !(i.service == r.service && i.step == r.step && i.wave == r.wave)),
            }
        }
        open.into_iter().map(|intent| Dangling { intent }).collect()
    }

    fn append(&mut self, mut r: Record) -> anyhow::Result<Record> {
        r.seq = self.next;
        r.at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))?;
        let line = serde_json::to_string(&r)? + "\n";
        // One write per record; fsync before the step runs, so the intent survives any crash.
        f.write_all(line.as_bytes())?;
        f.sync_all()?;
        self.next += 1;
        Ok(r)
    }

    /// Records that a step is about to run.
    pub fn intent(
        &mut self,
        plan_id: &str,
        operation: &str,
        wave: usize,
        service: &str,
        step: usize,
        what: &str,
    ) -> anyhow::Result<Record> {
        self.append(Record {
            seq: 0,
            kind: Kind::Intent,
            at: 0,
            plan_id: plan_id.into(),
            operation: operation.into(),
            wave,
            service: service.into(),
            step,
            what: what.into(),
            error: None,
        })
    }

    /// Records how the step of an intent ended.
    pub fn result(&mut self, intent: &Record, error: Option<String>) -> anyhow::Result<Record> {
        self.append(Record { seq: 0, kind: Kind::Result, at: 0, error, ..intent.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_without_results_are_found_and_a_torn_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        let a = j.intent("p1", "apply", 1, "nas/a", 0, "add route").unwrap();
        j.result(&a, None).unwrap();
        let b = j.intent("p1", "apply", 1, "nas/a", 1, "stop tsnsrv-a").unwrap();
        let all = Journal::read(dir.path()).unwrap();
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        let d = Journal::dangling(&all);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].intent, b);
        // A crash while appending leaves a torn last line: ignored, numbering continues.
        let mut f =
            std::fs::OpenOptions::new().append(true).open(Journal::path(dir.path())).unwrap();
        f.write_all(b"{\"seq\":4,\"kind\":\"res").unwrap();
        let all = Journal::read(dir.path()).unwrap();
        assert_eq!(all.len(), 3);
        let mut j = Journal::open(dir.path()).unwrap();
        let r = j.result(&b, Some("boom".into())).unwrap();
        assert_eq!(r.seq, 4);
        let all = Journal::read(dir.path()).unwrap();
        assert_eq!(all.len(), 4);
        assert!(Journal::dangling(&all).is_empty());
    }
}
