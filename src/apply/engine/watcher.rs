//! The confirmation watcher's start: a detached process (its own session, no terminal, stdio
//! to a log in the state directory) that waits for `migrate confirm` and rolls the wave back at
//! the deadline when it did not come (`crate::apply::confirm::watch`).

use super::common::Request;
use std::os::unix::process::CommandExt;

/// Starts the watcher for a wave (re-running this binary as `migrate watch-confirm`).
pub(super) fn spawn_watcher(req: &Request, deadline: u64) -> anyhow::Result<()> {
    let dir = req.cfg.state_dir();
    let log =
        std::fs::OpenOptions::new().create(true).append(true).open(dir.join("watcher.log"))?;
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("watch-confirm")
        .args([
            "--wave",
            &req.wave.to_string(),
            "--host",
            &req.host,
            "--deadline",
            &deadline.to_string(),
        ])
        .args(["--config"])
        .arg(std::fs::canonicalize(&req.config_path).unwrap_or_else(|_| req.config_path.clone()))
        .args(["--plan"])
        .arg(std::fs::canonicalize(&req.plan_path).unwrap_or_else(|_| req.plan_path.clone()))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the child leaves our session so a terminal hang-up
    // or the CLI's death does not take it along.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    req.world.spawn_watcher(cmd)
}
