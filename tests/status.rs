//! `migrate status` and `migrate force-unlock` on state directories left by runs (written here
//! the way the engine writes them: journal lines, a lock file).

use crate::util::{migrate, stdout};
use serde_json::json;

fn journal_line(seq: u64, kind: &str, service: &str, step: usize, what: &str) -> String {
    json!({"seq": seq, "kind": kind, "at": 1, "plan_id": "plan-1", "operation": "apply", "wave": 2,
           "service": service, "step": step, "what": what})
    .to_string()
}

#[test]
fn status_names_the_interrupted_step_and_exits_9() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let o = migrate(&["status", "--state-dir", &d]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("no service has moved"));
    let lines = [
        journal_line(1, "intent", "nas/app", 0, "add route"),
        journal_line(2, "result", "nas/app", 0, "add route"),
        journal_line(3, "intent", "nas/app", 1, "stop tsnsrv-app"),
    ];
    std::fs::write(dir.path().join("journal.ndjson"), lines.join("\n") + "\n").unwrap();
    let o = migrate(&["status", "--state-dir", &d]);
    assert_eq!(o.status.code(), Some(9));
    let out = stdout(&o);
    assert!(
        out.contains("INTERRUPTED") && out.contains("nas/app step 1 (stop tsnsrv-app)"),
        "{out}"
    );
    let o = migrate(&["status", "--state-dir", &d, "--format", "json"]);
    assert_eq!(o.status.code(), Some(9));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["interrupted"][0]["what"], "stop tsnsrv-app");
}

#[test]
fn force_unlock_takes_only_a_dead_owners_lock_by_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let lock = |pid: u32| {
        json!({"id": "lk-1", "pid": pid, "host": host, "operation": "apply", "wave": 1, "since": 1})
            .to_string()
    };
    // Held by a live process (this test): refused with exit 8.
    std::fs::write(dir.path().join("lock.json"), lock(std::process::id())).unwrap();
    assert_eq!(migrate(&["force-unlock", "lk-1", "--state-dir", &d]).status.code(), Some(8));
    // Its process is gone: status says stale; a wrong id is refused; the right one unlocks.
    std::fs::write(dir.path().join("lock.json"), lock(u32::MAX - 1)).unwrap();
    let o = migrate(&["status", "--state-dir", &d]);
    assert!(
        stdout(&o).contains(&format!("stale, `migrate force-unlock lk-1 --state-dir {d}`")),
        "{}",
        stdout(&o)
    );
    assert_eq!(o.status.code(), Some(2), "a stale lock over a clean journal");
    assert_eq!(migrate(&["force-unlock", "nope", "--state-dir", &d]).status.code(), Some(1));
    assert_eq!(migrate(&["force-unlock", "lk-1", "--state-dir", &d]).status.code(), Some(0));
    assert!(!dir.path().join("lock.json").exists());
}
