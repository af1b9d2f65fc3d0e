//! The proxy's life: start (route table, DNS responder, shared state, listeners, admin socket),
//! serve until a stop signal (SIGHUP re-reads `routes.json`), then drain.

use super::admin::{serve_admin, serve_metrics};
use super::config::{ListenerConfig, ProxyConfig};
use super::error::{ProxyError, Result};
use super::handler::Shared;
use super::listen::{
    ServiceSockets, Serving, bind_unix, raise_nofile_limit, serve_http, serve_https, serve_trusted,
};
use super::routes::{Fit, RouteTable};
use super::tls::DevCa;
use super::watchdog::{Limits, Watchdog};
use arc_swap::ArcSwap;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Tells systemd we are ready (`Type=notify`), when it asked.
fn notify_ready() {
    if let Some(sock) = std::env::var_os("NOTIFY_SOCKET") {
        let _ = notify(&sock, b"READY=1");
    }
}

/// One sd_notify datagram to `socket`: a path, or `@name` for an abstract socket (as systemd
/// gives it in some containers). No dependency: the protocol is one datagram.
fn notify(socket: &std::ffi::OsStr, message: &[u8]) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let s = std::os::unix::net::UnixDatagram::unbound()?;
    let bytes = socket.as_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        s.send_to_addr(message, &addr)?;
    } else {
        s.send_to(message, PathBuf::from(socket))?;
    }
    Ok(())
}

/// The split-DNS responder, when configured, and the DNS server upstream names resolve
/// through: an explicit `upstream_dns`, else the responder for its own zone (the emulation's
/// `auth.tailnet.test`), else the system's.
#[derive(Default)]
struct Dns {
    /// How the responder is described in the start line.
    described: Option<String>,
    /// The server upstream names are asked of.
    server: Option<SocketAddr>,
    /// The zone that server is asked for (`None`: every name).
    zone: Option<String>,
}

async fn start_dns(cfg: &ProxyConfig) -> Result<Dns> {
    let mut dns = Dns { server: cfg.upstream_dns, ..Dns::default() };
    if let Some(d) = &cfg.dns {
        let responder = Arc::new(crate::dns::Responder::new(&d.zone, d.records.clone(), d.ttl));
        let bound = responder
            .serve(d.listen)
            .await
            .map_err(|e| ProxyError::bind(format!("DNS responder {}", d.listen), e))?;
        dns.described = Some(format!("dns {bound} (zone {})", d.zone));
        if cfg.upstream_dns.is_none() {
            dns.server = Some(bound);
            dns.zone = Some(d.zone.clone());
        }
    }
    Ok(dns)
}

/// The development CA, when an HTTPS listener will use it: it exists before anything that may
/// trust it is read (`upstream_ca` often names it: MIGRATION.md section 3C), on a fresh state
/// directory too.
fn dev_ca_first(cfg: &ProxyConfig) -> Result<Option<DevCa>> {
    let uses_dev_ca = cfg.listeners.iter().any(|l| matches!(l, ListenerConfig::Https { .. }))
        && cfg.cert_dir.is_none()
        && !(cfg.localapi_certificates && cfg.localapi_socket.is_some());
    Ok(if uses_dev_ca { Some(DevCa::load_or_create(&cfg.state_dir)?) } else { None })
}

/// What the request path shares, around the first route table.
fn shared_state(cfg: &ProxyConfig, table: RouteTable, dns: &Dns) -> Result<Arc<Shared>> {
    let connector = super::upstream::Connector::new(&super::upstream::ClientOptions {
        extra_ca: cfg.upstream_ca.clone(),
        dns_server: dns.server,
        dns_zone: dns.zone.clone(),
        connect_timeout: Duration::from_millis(cfg.upstream_connect_timeout_ms),
    })
    .map_err(|e| match (e, &cfg.upstream_ca) {
        (ProxyError::Trust(error), Some(ca)) => ProxyError::UpstreamCa { file: ca.clone(), error },
        (e, _) => e,
    })?;
    connector.register(table.dials());
    let idle_timeout = Duration::from_millis(cfg.upstream_idle_timeout_ms);
    let auth_client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(idle_timeout)
        .pool_max_idle_per_host(cfg.upstream_max_idle_per_host)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(connector.clone());
    let pool =
        super::pool::Pool::new(connector.clone(), idle_timeout, cfg.upstream_max_idle_per_host);
    Ok(Arc::new(Shared {
        routes: Arc::new(ArcSwap::from_pointee(table)),
        connector,
        pool: Arc::new(pool),
        auth_client,
        metrics: super::metrics::Metrics::default(),
        whois: cfg
            .localapi_socket
            .as_ref()
            .map(|p| super::whois::Whois::new(tailshift_tailscale::LocalApi::new(p))),
        access_log: cfg.access_log,
        installed: Default::default(),
        tailnet_ranges: cfg
            .tailnet_ranges
            .iter()
            .filter_map(|r| super::config::parse_range(r))
            .collect(),
    }))
}

/// The limits every proxied listener keeps.
fn limits_of(cfg: &ProxyConfig) -> Limits {
    Limits {
        head_timeout: Duration::from_millis(cfg.header_read_timeout_ms),
        body_timeout: Duration::from_millis(cfg.body_read_timeout_ms),
        min_send_rate: cfg.min_send_rate,
        send_window: Duration::from_millis(cfg.send_rate_window_ms),
        max_connections: cfg.max_connections,
    }
}

/// What has been started: the accept loops (awaited at shutdown), the per-Service sockets
/// (closed at exit), and the start line's description of each listener.
#[derive(Default)]
struct Started {
    tasks: Vec<JoinHandle<()>>,
    service_sockets: Vec<Arc<ServiceSockets>>,
    described: Vec<String>,
}

async fn bind_tcp(addr: &str, what: &str) -> Result<TcpListener> {
    // With IP_FREEBIND: the tailnet address may not exist yet (placement B).
    crate::bind::tcp(addr).await.map_err(|e| ProxyError::bind(format!("{what}{addr}"), e))
}

/// The HTTPS listener's TLS: certificates from `cert_dir`, tailscaled's LocalAPI, or the
/// development CA (read once; a second HTTPS listener reads it again).
fn tls_for(
    cfg: &ProxyConfig,
    shared: &Shared,
    dev_ca: &mut Option<DevCa>,
) -> Result<(tokio_rustls::TlsAcceptor, Arc<super::tls::Resolver>)> {
    let source = match (&cfg.cert_dir, &cfg.localapi_socket) {
        (Some(dir), _) => super::tls::Source::Files(dir.clone()),
        (None, Some(_)) if cfg.localapi_certificates => super::tls::Source::LocalApi,
        _ => super::tls::Source::DevCa(Box::new(match dev_ca.take() {
            Some(ca) => ca,
            None => DevCa::load_or_create(&cfg.state_dir)?,
        })),
    };
    let localapi = matches!(source, super::tls::Source::LocalApi);
    let resolver = Arc::new(super::tls::Resolver::new(
        source,
        shared.routes.clone(),
        cfg.fallback_server_name.clone(),
    ));
    if localapi && let Some(sock) = &cfg.localapi_socket {
        tokio::spawn(super::tls::localapi_certs(
            resolver.clone(),
            tailshift_tailscale::LocalApi::new(sock),
        ));
    }
    shared.on_install(Box::new({
        let r = resolver.clone();
        move || r.routes_changed()
    }));
    let config = super::tls::server_config(resolver.clone())?;
    Ok((tokio_rustls::TlsAcceptor::from(Arc::new(config)), resolver))
}

/// Binds one configured listener and starts serving it; each has its own cap (and ticker).
async fn start_listener(
    cfg: &ProxyConfig,
    listener: &ListenerConfig,
    s: &Serving,
    dev_ca: &mut Option<DevCa>,
    started: &mut Started,
) -> Result<()> {
    let watchdog = Watchdog::new(&limits_of(cfg));
    match listener {
        ListenerConfig::Trusted { path, mode } => {
            let l = bind_unix(path, *mode)?;
            started.described.push(format!("trusted unix:{}", path.display()));
            started.tasks.push(serve_trusted(s, l, watchdog));
        }
        ListenerConfig::Services { dir, mode } => {
            let sockets = Arc::new(ServiceSockets::new(s, dir, *mode, watchdog));
            sockets.reconcile();
            started.described.push(format!("services unix:{}/<label>.sock", dir.display()));
            s.shared.on_install(Box::new({
                let sockets = sockets.clone();
                move || sockets.reconcile()
            }));
            started.service_sockets.push(sockets);
        }
        ListenerConfig::Https { addr } => {
            let l = bind_tcp(addr, "").await?;
            started.described.push(format!("https {}", l.local_addr()?));
            let (acceptor, resolver) = tls_for(cfg, &s.shared, dev_ca)?;
            started.tasks.push(serve_https(s, l, watchdog, acceptor, resolver));
        }
        ListenerConfig::Http { addr } => {
            let l = bind_tcp(addr, "").await?;
            started.described.push(format!("http {}", l.local_addr()?));
            started.tasks.push(serve_http(s, l, watchdog));
        }
    }
    Ok(())
}

/// Serves until SIGTERM or SIGINT; SIGHUP re-reads `routes.json` (a bad file keeps the routes
/// in place).
async fn serve_until_stopped(shared: &Shared, routes_file: &Path, fit: &Fit) -> Result<()> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = hup.recv() => match RouteTable::load(routes_file, fit) {
                Ok(t) => {
                    eprintln!("INFO reloaded {} routes from {}", t.routes.len(), routes_file.display());
                    shared.install(t);
                }
                Err(e) => eprintln!("WARN reload failed, keeping the current routes: {e:#}"),
            },
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Stops accepting, then lets requests in flight finish, for at most `drain_ms`.
async fn drain(
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    graceful: Arc<GracefulShutdown>,
    drain_ms: u64,
) {
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
    // Every accept loop has ended, so this is the last handle; connections hold only watchers.
    let graceful = Arc::try_unwrap(graceful).unwrap_or_else(|_| {
        eprintln!(
            "WARN a listener still holds the shutdown handle: not waiting for requests in flight"
        );
        GracefulShutdown::new()
    });
    tokio::select! {
        _ = graceful.shutdown() => eprintln!("INFO drained; bye"),
        _ = tokio::time::sleep(Duration::from_millis(drain_ms)) => eprintln!("WARN drain timeout: closing {drain_ms} ms after the stop signal"),
    }
}

/// Runs the proxy until SIGTERM or SIGINT; SIGHUP re-reads `routes.json`.
pub async fn run(cfg: ProxyConfig) -> Result<()> {
    if let Some(n) = raise_nofile_limit() {
        eprintln!("INFO open-file limit {n}");
    }
    std::fs::create_dir_all(&cfg.state_dir)?;
    let routes_file = Arc::new(cfg.routes_file());
    let fit = Fit::of(&cfg);
    let table = RouteTable::load(&routes_file, &fit)?;
    // The responder first: upstream and auth names in its zone resolve through it.
    let dns = start_dns(&cfg).await?;
    let mut dev_ca = dev_ca_first(&cfg)?;
    let shared = shared_state(&cfg, table, &dns)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let serving = Serving {
        shared: shared.clone(),
        graceful: Arc::new(GracefulShutdown::new()),
        stop: stop_rx,
    };
    let mut started =
        Started { described: dns.described.into_iter().collect(), ..Started::default() };
    for listener in &cfg.listeners {
        start_listener(&cfg, listener, &serving, &mut dev_ca, &mut started).await?;
    }
    let limits = limits_of(&cfg);
    if let Some(addr) = &cfg.metrics_addr {
        let l = bind_tcp(addr, "metrics ").await?;
        started.described.push(format!("metrics {}", l.local_addr()?));
        started.tasks.push(serve_metrics(&serving, l, &limits));
    }
    let admin_path = cfg.admin_socket();
    started.tasks.push(serve_admin(&serving, &admin_path, &limits, routes_file.clone(), fit)?);
    eprintln!(
        "INFO tailshift proxy serving {} routes on {}; admin unix:{}",
        shared.routes.load().routes.len(),
        started.described.join(", "),
        admin_path.display()
    );
    if cfg.health_interval_s > 0 {
        tokio::spawn(super::health::run(
            shared.clone(),
            Duration::from_secs(cfg.health_interval_s),
        ));
    }
    notify_ready();
    serve_until_stopped(&shared, &routes_file, &fit).await?;
    let Serving { graceful, .. } = serving;
    drain(stop_tx, started.tasks, graceful, cfg.drain_ms).await;
    let _ = std::fs::remove_file(&admin_path);
    for s in &started.service_sockets {
        s.close();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ready_reaches_a_path_socket_and_an_abstract_one() {
        use std::os::linux::net::SocketAddrExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let r = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        super::notify(path.as_os_str(), b"READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = r.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let name = format!("tailshift-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let r = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
        super::notify(std::ffi::OsStr::new(&format!("@{name}")), b"READY=1").unwrap();
        let n = r.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
