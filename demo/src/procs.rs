//! The processes the demo starts (`migrate proxy`, `migrate apply`, ...): the `migrate` binary
//! (the one running the demo, as `migrate demo`), each in its own process group (a Ctrl-C in the terminal reaches the demo, which stops them in
//! order) and set to receive SIGTERM should the demo die without cleaning up. Their cost is
//! read from `/proc`.

use anyhow::Context;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};

/// `migrate <args>` (the binary at `exe`) as a child of the demo.
pub fn migrate(exe: &Path, args: &[&str]) -> anyhow::Result<Command> {
    if !exe.is_file() {
        anyhow::bail!("the migrate binary {} does not exist", exe.display());
    }
    let mut c = Command::new(exe);
    c.args(args);
    c.process_group(0);
    // SAFETY: prctl is async-signal-safe; called in the child between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    Ok(c)
}

/// A long-running child (a proxy): stopped with SIGTERM (graceful), then killed if it lingers.
pub struct Daemon {
    /// The process.
    pub child: Child,
    /// What it is, for messages.
    pub name: String,
}

impl Daemon {
    /// Stops it: SIGTERM, up to 3 s to drain, then SIGKILL.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Resident memory and CPU time of a process, from `/proc/<pid>/status` and `stat`.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Usage {
    /// VmRSS, KiB.
    pub rss_kib: u64,
    /// utime + stime, milliseconds.
    pub cpu_ms: u64,
}

/// Reads [`Usage`] of `pid`.
pub fn usage(pid: u32) -> anyhow::Result<Usage> {
    let proc = Path::new("/proc").join(pid.to_string());
    let status = std::fs::read_to_string(proc.join("status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(proc.join("stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): utime is the 14th field of the
    // line, the 12th after ") ".
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Ok(Usage { rss_kib, cpu_ms: ticks * 1000 / hz })
}
