//! `migrate proxy`: runs the data plane until stopped.

use crate::cli::args::ProxyArgs;
use crate::exit::Exit;
use tailshift_proxy::ProxyConfig;
use tailshift_proxy::routes::{Fit, RouteTable};

/// Runs the command.
pub fn run(a: &ProxyArgs) -> anyhow::Result<Exit> {
    let cfg = ProxyConfig::load(&a.config)?;
    if a.check_config {
        // The table as this configuration would serve it: what the proxy would refuse at start
        // (group or tag rules without localapi_socket, Service labels shared under a
        // `services` listener) fails here too.
        let table = RouteTable::load(&cfg.routes_file(), &Fit::of(&cfg))?;
        println!(
            "{}: ok ({} listeners, {} routes in {})",
            a.config.display(),
            cfg.listeners.len(),
            table.routes.len(),
            cfg.routes_file().display()
        );
        return Ok(Exit::Ok);
    }
    // The CLI restores SIGPIPE's default for pipelines; a server must not die when a client
    // closes its socket while we write to it: ignore it, and let the write return EPIPE.
    // SAFETY: changing one signal's disposition before the runtime starts any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    // One worker: a current-thread runtime (no work-stealing, no cross-thread wake-ups);
    // blocking calls (LocalAPI) still get their own threads.
    let mut rt = match a.workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(1));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = rt.enable_all().build()?;
    rt.block_on(tailshift_proxy::server::run(cfg))?;
    Ok(Exit::Ok)
}
