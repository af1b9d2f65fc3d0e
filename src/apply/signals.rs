//! Signals during a wave command, and the adapter processes it runs. SIGINT, SIGTERM and SIGHUP
//! (a dropped ssh session) are handled alike by `apply`, `rollback` and `finalize`: the running
//! step and its adapter finish, then the command stops with 130 where it can be resumed. The
//! adapter runs in its own process group, so a terminal's Ctrl-C (sent to the foreground group)
//! does not reach it. A second signal says what is still running and keeps waiting; a third
//! stops the adapter (its whole group), and the step fails. An adapter that runs longer than
//! `[apply] adapter_timeout_s` is stopped the same way.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How many stop signals arrived since the command started.
static SIGNALS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

/// Installs the handler for SIGINT, SIGTERM and SIGHUP.
pub fn catch() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only adds to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// Whether a stop was asked for.
pub fn interrupted() -> bool {
    SIGNALS.load(Ordering::SeqCst) > 0
}

/// A run stopped between steps because a signal asked it to.
#[derive(Debug, thiserror::Error)]
#[error("interrupted between steps")]
pub struct Interrupted;

/// Why an adapter process did not finish by itself.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// It could not be started.
    #[error("{what}: cannot start: {source}")]
    Spawn {
        /// The command, in words.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// It ran past the timeout and was stopped.
    #[error("{what}: still running after {secs} s ([apply] adapter_timeout_s); stopped")]
    Timeout {
        /// The command, in words.
        what: String,
        /// The timeout.
        secs: u64,
    },
    /// A third signal stopped it.
    #[error("{what}: stopped by a third signal")]
    Stopped {
        /// The command, in words.
        what: String,
    },
}

/// Runs an adapter command to completion in its own process group, with the timeout and the
/// signal rules of this module. Its output is collected.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output, AdapterError> {
    let what = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| AdapterError::Spawn { what: what.clone(), source })?;
    // Read the pipes on threads, so a chatty adapter never blocks on a full pipe.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let reader = |r: &mut dyn std::io::Read| {
        let mut b = Vec::new();
        let _ = r.read_to_end(&mut b);
        b
    };
    let out_t = std::thread::spawn(move || reader(&mut out));
    let err_t = std::thread::spawn(move || reader(&mut err));
    let started = Instant::now();
    let seen = SIGNALS.load(Ordering::SeqCst);
    let mut warned = false;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        let signals = SIGNALS.load(Ordering::SeqCst);
        let stop = if signals >= 3 {
            Some(AdapterError::Stopped { what: what.clone() })
        } else if started.elapsed() > timeout {
            Some(AdapterError::Timeout { what: what.clone(), secs: timeout.as_secs() })
        } else {
            None
        };
        if let Some(e) = stop {
            kill_group(&mut child);
            let _ = (out_t.join(), err_t.join());
            return Err(e);
        }
        if signals >= 2 && signals > seen && !warned {
            warned = true;
            eprintln!(
                "still running: {what} (pid {}); waiting for it to finish so the step is whole. A third signal stops it, and the step fails.",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    Ok(Output { status, stdout, stderr })
}

/// Stops a child's whole process group: SIGTERM, then SIGKILL after a grace period.
fn kill_group(child: &mut std::process::Child) {
    let pgid = child.id() as libc::pid_t;
    // SAFETY: signalling a process group we created (the child leads it).
    unsafe {
        libc::killpg(pgid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
    let _ = child.wait();
}
