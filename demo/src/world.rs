//! What every phase of the demo shares: the example's tailnet and hosts, Ctrl-C, progress
//! lines, and everything the demo started ([`World`]), stopped in reverse order.

use crate::procs::Daemon;
use crate::summary;
use anyhow::Context;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The tailnet's DNS zone in the demo.
pub(crate) const TAILNET: &str = "tailnet.test";
/// The example's hosts: name, the proxy's loopback address, the third octet of its nodes'.
pub(crate) const HOSTS: [(&str, Ipv4Addr, u8); 2] =
    [("storage", Ipv4Addr::new(127, 70, 0, 1), 1), ("cloud", Ipv4Addr::new(127, 70, 0, 2), 2)];

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C and SIGTERM set [`interrupted`] (the demo then stops between steps and cleans up);
/// a closed pipe is an error to handle, not the end of the process.
pub(crate) fn install_signal_handlers() {
    // SAFETY: installing a handler that only stores to an atomic; ignoring SIGPIPE so that a
    // closed pipe is an error to handle (the cleanup still runs), not the end of the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Ctrl-C (or SIGTERM) was received.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// A progress line on stderr (data goes to stdout). A reader that went away does not stop
/// the demo before it has cleaned up.
pub(crate) fn say(line: impl AsRef<str>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{}", line.as_ref());
}

/// Everything the demo started, stopped in reverse order.
pub(crate) struct World {
    /// The demo's directory.
    pub dir: PathBuf,
    /// The runtime of the apps, nodes and measurements.
    pub rt: Option<tokio::runtime::Runtime>,
    /// The `migrate proxy` of each host, in [`HOSTS`] order.
    pub proxies: Vec<Daemon>,
    /// Every address the demo listens on (none may be left listening).
    pub listening: Vec<SocketAddr>,
    /// Tells the client load to stop.
    pub load_stop: Arc<AtomicBool>,
    /// The client load's thread.
    pub load: Option<std::thread::JoinHandle<()>>,
}

impl World {
    /// The runtime's handle.
    pub fn handle(&self) -> anyhow::Result<tokio::runtime::Handle> {
        self.rt.as_ref().map(|r| r.handle().clone()).context("runtime")
    }

    /// Stops the client load and waits for it.
    pub fn stop_load(&mut self) {
        self.load_stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.load.take() {
            let _ = h.join();
        }
    }

    /// Stops everything; says what is left.
    pub fn cleanup(&mut self, remove: bool) -> summary::Cleanup {
        self.stop_load();
        for p in self.proxies.iter_mut().rev() {
            p.stop();
        }
        let processes_left = self
            .proxies
            .iter_mut()
            .map(|p| p.child.try_wait())
            .filter(|w| matches!(w, Ok(None)))
            .count();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        let listening_left = self
            .listening
            .iter()
            .filter(|a| std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok())
            .map(|a| a.to_string())
            .collect();
        let directory_removed = remove && std::fs::remove_dir_all(&self.dir).is_ok();
        summary::Cleanup { processes_left, listening_left, directory_removed }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if self.rt.is_some() {
            self.cleanup(false);
        }
    }
}
