//! Listeners, the admin socket, signals and graceful shutdown.

use super::config::{ListenerConfig, ProxyConfig};
use super::handler::{Origin, Peer, Shared, handle};
use super::routes::{Fit, RouteTable};
use super::watchdog::{Limits, Metered, Registration, Tracked, Watchdog};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tailshift_routes::Route;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

/// A connection builder for both HTTP versions. The header-read deadline is the
/// [`Watchdog`]'s (one coarse timer for every connection), not hyper's timer per request.
/// Responses are flattened into one buffer and written with one `send`: cheaper than `writev`
/// for the small heads and bodies that most requests have.
fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1().writev(false).header_read_timeout(None);
    b.http2().timer(hyper_util::rt::TokioTimer::new());
    b
}

/// Serves one accepted connection (HTTP/1.1 or HTTP/2, upgrades allowed) until it closes, the
/// proxy drains, or the listener's watchdog closes it.
async fn serve_conn<I>(
    io: I,
    shared: Arc<Shared>,
    origin: Origin,
    watcher: hyper_util::server::graceful::Watcher,
    registration: Registration,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let watch = registration.watch().clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        // The request stays in flight (no head deadline) until its response body is done.
        let in_flight = watch.begin();
        // Only a request with a body is timed for it (the inactivity deadline).
        let body_clock = (!req.body().is_end_stream()).then(|| watch.body_clock());
        // Boxed: the request's future is large (auth, whois, forwarding), and moving it by
        // value into this wrapper and then into hyper's slot copies all of it per request.
        let response = Box::pin(handle(shared.clone(), req, origin.clone(), body_clock));
        async move {
            let resp = response.await?;
            if resp.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
                in_flight.exempt();
            }
            Ok::<_, hyper::Error>(resp.map(|b| Tracked::new(b, in_flight)))
        }
    });
    let conn = builder().serve_connection_with_upgrades(TokioIo::new(io), svc).into_owned();
    tokio::select! {
        _ = watcher.watch(conn) => {}
        // Past a deadline or a limit: the connection is dropped (closed).
        _ = registration.expired() => {}
    }
}

/// Connections the metrics listener holds at most (Prometheus keeps one or two).
const METRICS_MAX_CONNECTIONS: usize = 16;

/// Connections the admin socket holds at most (`migrate apply` opens one at a time).
const ADMIN_MAX_CONNECTIONS: usize = 16;

/// Serves one connection of the metrics listener or the admin socket (HTTP/1.1): each request
/// is in flight until its response is written, the head deadline and the send rate are the
/// watchdog's, as on the proxied listeners.
async fn serve_side_conn<I, F, Fut>(io: I, registration: Registration, respond: F)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, hyper::Error>> + Send + 'static,
{
    let watch = registration.watch().clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let in_flight = watch.begin();
        let response = respond(req);
        async move { Ok::<_, hyper::Error>(response.await?.map(|b| Tracked::new(b, in_flight))) }
    });
    let mut b = hyper::server::conn::http1::Builder::new();
    b.header_read_timeout(None);
    tokio::select! {
        _ = b.serve_connection(TokioIo::new(io), svc) => {}
        _ = registration.expired() => {}
    }
}

/// A listening socket: TCP (with the peer's address) or unix.
trait Acceptor: Send + 'static {
    /// The accepted connection.
    type Io: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + std::os::fd::AsRawFd
        + Unpin
        + Send
        + 'static;
    /// Waits for the next connection.
    fn next(
        &self,
    ) -> impl std::future::Future<Output = std::io::Result<(Self::Io, Option<std::net::IpAddr>)>> + Send;
}

impl Acceptor for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn next(&self) -> std::io::Result<(Self::Io, Option<std::net::IpAddr>)> {
        let (stream, peer) = self.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, Some(peer.ip())))
    }
}

impl Acceptor for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn next(&self) -> std::io::Result<(Self::Io, Option<std::net::IpAddr>)> {
        Ok((self.accept().await?.0, None))
    }
}

/// How long accepting pauses when descriptors run out: existing connections keep being served
/// (and release theirs) meanwhile, and the loop does not spin on a failing `accept`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How many idle connections a listener closes each time it finds descriptors exhausted
/// (each pause, 100 ms).
const EVICT_WHEN_OUT_OF_DESCRIPTORS: usize = 32;

/// How long accepting pauses (then looks again) while a dial waits for a descriptor.
const DIAL_BACKOFF: Duration = Duration::from_millis(10);

/// How many idle connections a listener closes each time it finds a dial waiting for a
/// descriptor (every `DIAL_BACKOFF`).
const EVICT_WHILE_DIALS_WAIT: usize = 4;

/// How long a connection must have kept the proxy waiting (for its request body, or for the
/// client to read) before it is closed for a request that waits for a descriptor.
const SHED_STALLED_AFTER_MS: u64 = 1000;

/// Whether an accept error means descriptors (or kernel buffers) ran out.
fn out_of_resources(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

/// Accepts connections until the stop signal, handing each to `on` (every listener, the
/// metrics listener and the admin socket included). A failed accept is not fatal: a reset is
/// skipped; running out of descriptors pauses accepting briefly instead of spinning (issue 15
/// F2). Each connection is registered with the listener's watchdog as it is accepted (so its
/// cap counts it from the first moment, TLS handshake included), and its socket metered (the
/// watchdog sees whether bytes wait for the client, and how fast it takes them, beneath any
/// TLS); while the listener is at its cap with no idle connection, the connection just
/// accepted waits for a slot, and accepting with it.
fn watched_accept_loop<L: Acceptor>(
    listener: L,
    stop: watch::Receiver<bool>,
    watchdog: Watchdog,
    mut on: impl FnMut(Metered<L::Io>, Option<std::net::IpAddr>, Registration) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    accept_loop_with(listener, stop, Some(watchdog), move |io, peer, registration| {
        if let Some(r) = registration {
            on(Metered::new(io, r.watch().clone()), peer, r);
        }
    })
}

fn accept_loop_with<L: Acceptor>(
    listener: L,
    mut stop: watch::Receiver<bool>,
    watchdog: Option<Watchdog>,
    mut on: impl FnMut(L::Io, Option<std::net::IpAddr>, Option<Registration>) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            // Requests already accepted that wait for a descriptor to dial their upstream come
            // first: accepting now would take the descriptors they wait for.
            if super::upstream::dials_waiting() {
                // And idle connections give their descriptors to those requests, or else the
                // connections that have kept the proxy waiting longest (a flood of slow clients
                // would hold every descriptor until its deadlines).
                if let Some(w) = &watchdog
                    && w.evict_idle(EVICT_WHILE_DIALS_WAIT) == 0
                {
                    w.shed_stalled(EVICT_WHILE_DIALS_WAIT, SHED_STALLED_AFTER_MS);
                }
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(DIAL_BACKOFF) => continue,
                }
            }
            tokio::select! {
                _ = stop.changed() => break,
                accepted = listener.next() => match accepted {
                    Ok((io, peer)) => {
                        let mut registration = None;
                        if let Some(w) = &watchdog {
                            // At the cap with every connection busy, this one waits (unserved)
                            // for a slot, and those behind it in the kernel's queue.
                            tokio::select! {
                                _ = stop.changed() => break,
                                _ = w.admit() => registration = Some(w.register()),
                            }
                        }
                        on(io, peer, registration)
                    }
                    Err(e) if out_of_resources(&e) => {
                        super::metrics::ACCEPT_BACKOFFS
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        // Idle connections (kept alive, or yet to send a head) give their
                        // descriptors back first, closed during the pause.
                        if let Some(w) = &watchdog {
                            w.evict_idle(EVICT_WHEN_OUT_OF_DESCRIPTORS);
                        }
                        tokio::select! {
                            _ = stop.changed() => break,
                            _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        }
                    }
                    Err(_) => {}
                },
            }
        }
    })
}

/// Raises the soft open-file limit to the hard one (as Go programs, tsnsrv included, do): a
/// proxy holds two descriptors per proxied connection. Returns the limit in force.
pub fn raise_nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Some(lim.rlim_cur)
}

/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest route table the admin socket accepts.
const MAX_ADMIN_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Binds a unix socket with its mode set before anyone can connect: bound under a temporary
/// name, chmod-ed, then renamed into place (a socket's permissions are checked at connect).
fn bind_unix(path: &Path, mode: u32) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let l =
        UnixListener::bind(&tmp).map_err(|e| anyhow::anyhow!("bind {}: {e}", path.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("bind {}: {e}", path.display()))?;
    Ok(l)
}

/// The socket of the Tailscale Service `svc:<label>`: `<dir>/<label>.sock`, always directly
/// inside `dir`, or `None` for a label that is not a DNS label. Labels come from validated
/// route names, so `None` never happens today; it is checked here again because the proxy often
/// runs as root, and a socket path outside `dir` would replace (and later delete) another
/// program's file (issue 15 F5).
fn service_socket_path(dir: &Path, label: &str) -> Option<PathBuf> {
    let ok = !label.is_empty()
        && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then(|| dir.join(format!("{label}.sock")))
}

/// The per-Service trusted sockets: one per route, following the installed tables.
struct ServiceSockets {
    dir: PathBuf,
    mode: u32,
    live: std::sync::Mutex<std::collections::HashMap<String, tokio::task::JoinHandle<()>>>,
    shared: std::sync::Weak<Shared>,
    graceful: Arc<GracefulShutdown>,
    stop: watch::Receiver<bool>,
    watchdog: Watchdog,
}

impl ServiceSockets {
    fn path(&self, label: &str) -> Option<PathBuf> {
        service_socket_path(&self.dir, label)
    }

    /// Opens sockets for new routes and closes those of routes that went away.
    fn reconcile(&self) {
        let Some(shared) = self.shared.upgrade() else { return };
        let labels = shared.routes.load().service_labels();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|label, task| {
            let keep = labels.binary_search(label).is_ok();
            if !keep {
                task.abort();
                if let Some(path) = self.path(label) {
                    let _ = std::fs::remove_file(path);
                }
            }
            keep
        });
        for label in labels {
            if live.contains_key(&label) {
                continue;
            }
            let Some(path) = self.path(&label) else {
                eprintln!("WARN no Service socket for svc:{label}: not a DNS label");
                continue;
            };
            let listener = match bind_unix(&path, self.mode) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("WARN Service socket for svc:{label}: {e:#}");
                    continue;
                }
            };
            let (shared, graceful) = (shared.clone(), self.graceful.clone());
            let origin = Origin::Service(Arc::from(label.as_str()));
            // One watchdog for all the Service sockets: the cap is the listener's.
            let task = watched_accept_loop(
                listener,
                self.stop.clone(),
                self.watchdog.clone(),
                move |io, _, registration| {
                    tokio::spawn(serve_conn(
                        io,
                        shared.clone(),
                        origin.clone(),
                        graceful.watcher(),
                        registration,
                    ));
                },
            );
            live.insert(label, task);
        }
    }

    /// Removes every socket (at exit).
    fn close(&self) {
        for (label, task) in self.live.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            task.abort();
            if let Some(path) = self.path(&label) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Tells systemd we are ready (`Type=notify`), when it asked.
fn notify_ready() {
    if let Some(sock) = std::env::var_os("NOTIFY_SOCKET") {
        let s = std::os::unix::net::UnixDatagram::unbound();
        if let Ok(s) = s {
            let _ = s.send_to(b"READY=1", PathBuf::from(sock));
        }
    }
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

fn metrics_response(shared: &Shared) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(shared.metrics.render())));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

async fn admin(
    shared: Arc<Shared>,
    routes_file: Arc<PathBuf>,
    fit: Fit,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => json_response(StatusCode::OK, "{\"status\":\"ok\"}\n".into()),
        (&Method::GET, "/metrics") => metrics_response(&shared),
        (&Method::GET, "/upstreams") => {
            // Checked now: the caller (apply's pre-flight) wants the present, not the last round.
            let health = super::health::check_all(&shared).await;
            json_response(
                StatusCode::OK,
                serde_json::to_string_pretty(&health).unwrap_or_default() + "\n",
            )
        }
        (&Method::GET, "/routes") => {
            let t = shared.routes.load();
            let list: Vec<&Route> = t.routes.iter().map(|r| &r.route).collect();
            json_response(
                StatusCode::OK,
                serde_json::to_string_pretty(&list).unwrap_or_default() + "\n",
            )
        }
        (&Method::PUT, "/routes") => {
            let body =
                http_body_util::Limited::new(req.into_body(), MAX_ADMIN_BODY_BYTES).collect().await;
            let Ok(body) = body else {
                return Ok(json_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "{\"error\":\"table too large\"}\n".into(),
                ));
            };
            let parsed: Result<Vec<Route>, _> = serde_json::from_slice(&body.to_bytes());
            // Validate the whole table beside the old one; only then write and swap.
            match parsed
                .map_err(|e| e.to_string())
                .and_then(|r| RouteTable::new(r).map_err(|e| e.to_string()))
                .and_then(|t| fit.check(&t).map(|()| t))
            {
                Err(e) => json_response(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": e}).to_string() + "\n",
                ),
                Ok(table) => match table.save(&routes_file) {
                    Err(e) => json_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        serde_json::json!({"error": e.to_string()}).to_string() + "\n",
                    ),
                    Ok(()) => {
                        let n = table.routes.len();
                        shared.install(table);
                        json_response(StatusCode::OK, format!("{{\"routes\":{n}}}\n"))
                    }
                },
            }
        }
        _ => json_response(StatusCode::NOT_FOUND, "{\"error\":\"no such endpoint\"}\n".into()),
    })
}

/// Runs the proxy until SIGTERM or SIGINT; SIGHUP re-reads `routes.json`.
pub async fn run(cfg: ProxyConfig) -> anyhow::Result<()> {
    if let Some(n) = raise_nofile_limit() {
        eprintln!("INFO open-file limit {n}");
    }
    std::fs::create_dir_all(&cfg.state_dir)?;
    let routes_file = Arc::new(cfg.routes_file());
    let fit = Fit::of(&cfg);
    let table = RouteTable::load(&routes_file, &fit)?;
    // The responder first: upstream and auth names in its zone resolve through it (the
    // emulation's `auth.tailnet.test`), unless an explicit upstream DNS server says otherwise.
    let mut dns_described = None;
    let mut zone_dns = None;
    if let Some(d) = &cfg.dns {
        let responder = Arc::new(crate::dns::Responder::new(&d.zone, d.records.clone(), d.ttl));
        let bound = responder
            .serve(d.listen)
            .await
            .map_err(|e| anyhow::anyhow!("DNS responder on {}: {e}", d.listen))?;
        dns_described = Some(format!("dns {bound} (zone {})", d.zone));
        zone_dns = Some((bound, d.zone.clone()));
    }
    let (dns_server, dns_zone) = match (cfg.upstream_dns, zone_dns) {
        (Some(server), _) => (Some(server), None),
        (None, Some((bound, zone))) => (Some(bound), Some(zone)),
        (None, None) => (None, None),
    };
    // The development CA exists before anything that may trust it is read (`upstream_ca` often
    // names it: MIGRATION.md section 3C), on a fresh state directory too.
    let uses_dev_ca = cfg.listeners.iter().any(|l| matches!(l, ListenerConfig::Https { .. }))
        && cfg.cert_dir.is_none()
        && !(cfg.localapi_certificates && cfg.localapi_socket.is_some());
    let mut dev_ca =
        if uses_dev_ca { Some(super::tls::DevCa::load_or_create(&cfg.state_dir)?) } else { None };
    let connector = super::upstream::Connector::new(&super::upstream::ClientOptions {
        extra_ca: cfg.upstream_ca.clone(),
        dns_server,
        dns_zone,
        connect_timeout: Duration::from_millis(cfg.upstream_connect_timeout_ms),
    })
    .map_err(|e| match &cfg.upstream_ca {
        Some(ca) => anyhow::anyhow!("upstream_ca {}: {e:#}", ca.display()),
        None => e,
    })?;
    connector.register(table.dials());
    let pool = |b: &mut hyper_util::client::legacy::Builder| {
        b.pool_idle_timeout(Duration::from_millis(cfg.upstream_idle_timeout_ms))
            .pool_max_idle_per_host(cfg.upstream_max_idle_per_host)
            .pool_timer(hyper_util::rt::TokioTimer::new());
    };
    let mut b = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
    pool(&mut b);
    let auth_client = b.build(connector.clone());
    let pool = Arc::new(super::pool::Pool::new(
        connector.clone(),
        Duration::from_millis(cfg.upstream_idle_timeout_ms),
        cfg.upstream_max_idle_per_host,
    ));
    let shared = Arc::new(Shared {
        routes: Arc::new(ArcSwap::from_pointee(table)),
        connector,
        pool,
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
    });
    let limits = Limits {
        head_timeout: Duration::from_millis(cfg.header_read_timeout_ms),
        body_timeout: Duration::from_millis(cfg.body_read_timeout_ms),
        min_send_rate: cfg.min_send_rate,
        send_window: Duration::from_millis(cfg.send_rate_window_ms),
        max_connections: cfg.max_connections,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let graceful = Arc::new(GracefulShutdown::new());
    let mut tasks = Vec::new();
    let mut described: Vec<String> = dns_described.into_iter().collect();
    let mut service_sockets: Vec<Arc<ServiceSockets>> = Vec::new();
    for l in &cfg.listeners {
        let (shared, graceful) = (shared.clone(), graceful.clone());
        // Each listener has its own cap (and ticker).
        let watchdog = Watchdog::new(&limits);
        match l {
            ListenerConfig::Trusted { path, mode } => {
                let listener = bind_unix(path, *mode)?;
                described.push(format!("trusted unix:{}", path.display()));
                tasks.push(watched_accept_loop(
                    listener,
                    stop_rx.clone(),
                    watchdog,
                    move |io, _, registration| {
                        tokio::spawn(serve_conn(
                            io,
                            shared.clone(),
                            Origin::Trusted,
                            graceful.watcher(),
                            registration,
                        ));
                    },
                ));
            }
            ListenerConfig::Services { dir, mode } => {
                let sockets = Arc::new(ServiceSockets {
                    dir: dir.clone(),
                    mode: *mode,
                    live: Default::default(),
                    shared: Arc::downgrade(&shared),
                    graceful: graceful.clone(),
                    stop: stop_rx.clone(),
                    watchdog,
                });
                sockets.reconcile();
                described.push(format!("services unix:{}/<label>.sock", dir.display()));
                shared.on_install(Box::new({
                    let s = sockets.clone();
                    move || s.reconcile()
                }));
                service_sockets.push(sockets);
            }
            ListenerConfig::Https { addr } => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("bind {addr}: {e}"))?;
                described.push(format!("https {}", listener.local_addr()?));
                let source = match (&cfg.cert_dir, &cfg.localapi_socket) {
                    (Some(dir), _) => super::tls::Source::Files(dir.clone()),
                    (None, Some(_)) if cfg.localapi_certificates => super::tls::Source::LocalApi,
                    _ => super::tls::Source::DevCa(Box::new(match dev_ca.take() {
                        Some(ca) => ca,
                        // A second HTTPS listener reads the same CA again.
                        None => super::tls::DevCa::load_or_create(&cfg.state_dir)?,
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
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(
                    super::tls::server_config(resolver.clone())?,
                ));
                tasks.push(watched_accept_loop(
                    listener,
                    stop_rx.clone(),
                    watchdog,
                    move |io, peer, registration| {
                        // The watcher is taken now: the handshake task must not keep the
                        // shutdown handle. The handshake runs on its own task, bounded (and
                        // closed early if the watchdog needs its slot), so a slow client never
                        // holds the accept loop.
                        let (shared, acceptor, watcher, resolver) = (
                            shared.clone(),
                            acceptor.clone(),
                            graceful.watcher(),
                            resolver.clone(),
                        );
                        tokio::spawn(async move {
                            let handshake =
                                tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io));
                            let tls = tokio::select! {
                                done = handshake => match done {
                                    Ok(Ok(tls)) => tls,
                                    _ => return,
                                },
                                _ = registration.expired() => return,
                            };
                            // A client without SNI (connecting by address) is not held to a name.
                            let presented = tls
                                .get_ref()
                                .1
                                .server_name()
                                .map(|sni| Arc::new(super::tls::Presented::new(sni, resolver)));
                            serve_conn(
                                tls,
                                shared,
                                Origin::Https(peer.map(Peer::new), presented),
                                watcher,
                                registration,
                            )
                            .await;
                        });
                    },
                ));
            }
            ListenerConfig::Http { addr } => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("bind {addr}: {e}"))?;
                described.push(format!("http {}", listener.local_addr()?));
                tasks.push(watched_accept_loop(
                    listener,
                    stop_rx.clone(),
                    watchdog,
                    move |io, peer, registration| {
                        tokio::spawn(serve_conn(
                            io,
                            shared.clone(),
                            Origin::Http(peer.map(Peer::new)),
                            graceful.watcher(),
                            registration,
                        ));
                    },
                ));
            }
        }
    }
    // The metrics listener and the admin socket are small servers of the proxy's own, under
    // the same watchdog as the proxied listeners (header deadline, slow readers), with small
    // caps of their own: a few hundred idle sockets on them must not hold descriptors.
    let side_limits = |max_connections| Limits { max_connections, ..limits.clone() };
    if let Some(addr) = &cfg.metrics_addr {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("bind metrics {addr}: {e}"))?;
        described.push(format!("metrics {}", listener.local_addr()?));
        let shared = shared.clone();
        let watchdog = Watchdog::new(&side_limits(METRICS_MAX_CONNECTIONS));
        tasks.push(watched_accept_loop(
            listener,
            stop_rx.clone(),
            watchdog,
            move |io, _, registration| {
                let shared = shared.clone();
                tokio::spawn(serve_side_conn(io, registration, move |req: Request<Incoming>| {
                    let shared = shared.clone();
                    async move {
                        Ok::<_, hyper::Error>(if req.uri().path() == "/metrics" {
                            metrics_response(&shared)
                        } else {
                            json_response(
                                StatusCode::NOT_FOUND,
                                "{\"error\":\"only /metrics here\"}\n".into(),
                            )
                        })
                    }
                }));
            },
        ));
    }
    let admin_path = cfg.admin_socket();
    let admin_listener = bind_unix(&admin_path, 0o600)?;
    {
        let (shared, routes_file) = (shared.clone(), routes_file.clone());
        let watchdog = Watchdog::new(&side_limits(ADMIN_MAX_CONNECTIONS));
        tasks.push(watched_accept_loop(
            admin_listener,
            stop_rx.clone(),
            watchdog,
            move |io, _, registration| {
                let (shared, routes_file) = (shared.clone(), routes_file.clone());
                tokio::spawn(serve_side_conn(io, registration, move |req| {
                    admin(shared.clone(), routes_file.clone(), fit, req)
                }));
            },
        ));
    }
    eprintln!(
        "INFO tailshift proxy serving {} routes on {}; admin unix:{}",
        shared.routes.load().routes.len(),
        described.join(", "),
        admin_path.display()
    );
    if cfg.health_interval_s > 0 {
        tokio::spawn(super::health::run(
            shared.clone(),
            Duration::from_secs(cfg.health_interval_s),
        ));
    }
    notify_ready();
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = hup.recv() => match RouteTable::load(&routes_file, &fit) {
                Ok(t) => {
                    eprintln!("INFO reloaded {} routes from {}", t.routes.len(), routes_file.display());
                    shared.install(t);
                }
                Err(e) => eprintln!("WARN reload failed, keeping the current routes: {e:#}"),
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // Stop accepting, then let requests in flight finish (bounded).
    let _ = stop_tx.send(true);
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
        _ = tokio::time::sleep(Duration::from_millis(cfg.drain_ms)) => eprintln!("WARN drain timeout: closing {} ms after the stop signal", cfg.drain_ms),
    }
    let _ = std::fs::remove_file(&admin_path);
    for s in &service_sockets {
        s.close();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::service_socket_path;
    use crate::routes::service_label;
    use std::path::Path;
    use tailshift_routes::is_dns_name;

    #[test]
    fn a_service_socket_is_always_a_child_of_its_directory() {
        let dir = Path::new("/run/tailshift/services");
        let names = [
            "app.tailnet.test",
            "a",
            "x-1.example.com.",
            "/some/dir/tailscaled.x",
            "../etc/passwd",
            "..",
            ".",
            "./x",
            "a/../../b.test",
            ".hidden.test",
            "%2e%2e.test",
            "a\\b.test",
            "a\0b.test",
            "",
            "App.test",
            "a b.test",
        ];
        for name in names {
            let path = service_socket_path(dir, service_label(name));
            if is_dns_name(name) {
                let path = path.unwrap_or_else(|| panic!("{name:?}: a DNS name gets a socket"));
                assert_eq!(path.parent(), Some(dir), "{name:?}");
                assert!(path.file_name().unwrap().to_str().unwrap().ends_with(".sock"));
            } else if let Some(path) = path {
                // Not a route name (the table refuses it), yet even its label stays inside.
                assert_eq!(path.parent(), Some(dir), "{name:?}");
            }
        }
    }
}
