//! Accepting and serving connections: the accept loops (with their back-off when descriptors
//! run out, issue 15 F2), each listener kind's connections handed to the request path, and the
//! per-Service sockets that follow the installed route tables.

use super::error::ProxyError;
use super::handler::{Origin, Peer, Shared, handle};
use super::watchdog::{Metered, Registration, Tracked, Watchdog};
use http::Request;
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What every listener's connections share: the request path's state, the drain handle, and
/// the stop signal.
#[derive(Clone)]
pub(crate) struct Serving {
    /// The request path's shared state.
    pub shared: Arc<Shared>,
    /// Lets requests in flight finish at shutdown.
    pub graceful: Arc<GracefulShutdown>,
    /// Becomes `true` when the proxy stops accepting.
    pub stop: watch::Receiver<bool>,
}

/// tailscaled's serve on the node's trusted unix socket.
pub(crate) fn serve_trusted(
    s: &Serving,
    listener: UnixListener,
    watchdog: Watchdog,
) -> JoinHandle<()> {
    let (shared, graceful) = (s.shared.clone(), s.graceful.clone());
    watched_accept_loop(listener, s.stop.clone(), watchdog, move |io, _, registration| {
        tokio::spawn(serve_conn(
            io,
            shared.clone(),
            Origin::Trusted,
            graceful.watcher(),
            registration,
        ));
    })
}

/// A plain HTTP TCP listener.
pub(crate) fn serve_http(s: &Serving, listener: TcpListener, watchdog: Watchdog) -> JoinHandle<()> {
    let (shared, graceful) = (s.shared.clone(), s.graceful.clone());
    watched_accept_loop(listener, s.stop.clone(), watchdog, move |io, peer, registration| {
        tokio::spawn(serve_conn(
            io,
            shared.clone(),
            Origin::Http(peer.map(Peer::new)),
            graceful.watcher(),
            registration,
        ));
    })
}

/// The HTTPS listener. The handshake runs on the connection's own task, bounded (and closed
/// early if the watchdog needs its slot), so a slow client never holds the accept loop.
pub(crate) fn serve_https(
    s: &Serving,
    listener: TcpListener,
    watchdog: Watchdog,
    acceptor: tokio_rustls::TlsAcceptor,
    resolver: Arc<super::tls::Resolver>,
) -> JoinHandle<()> {
    let (shared, graceful) = (s.shared.clone(), s.graceful.clone());
    watched_accept_loop(listener, s.stop.clone(), watchdog, move |io, peer, registration| {
        // The watcher is taken now: the handshake task must not keep the shutdown handle.
        let (shared, acceptor, watcher, resolver) =
            (shared.clone(), acceptor.clone(), graceful.watcher(), resolver.clone());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io));
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
            let origin = Origin::Https(peer.map(Peer::new), presented);
            serve_conn(tls, shared, origin, watcher, registration).await;
        });
    })
}

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
pub(crate) async fn serve_conn<I>(
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
        // Boxed inside: the request's future is large, and is moved only as a pointer.
        let response = handle(shared.clone(), req, origin.clone(), body_clock);
        async move {
            let resp = response.await.unwrap_or_else(super::answer::Early::into_response);
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

/// A listening socket: TCP (with the peer's address) or unix.
pub(crate) trait Acceptor: Send + 'static {
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
/// F2). Each connection is registered with the listener's watchdog as it is accepted (so its cap counts it from the first moment, TLS handshake
/// included), and its socket metered (the watchdog sees whether bytes wait for the client, and
/// how fast it takes them, beneath any TLS); while the listener is at its cap with no idle
/// connection, the connection just accepted waits for a slot, and accepting with it.
pub(crate) fn watched_accept_loop<L: Acceptor>(
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
pub(crate) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds a unix socket with its mode set before anyone can connect: bound under a temporary
/// name, chmod-ed, then renamed into place (a socket's permissions are checked at connect).
pub(crate) fn bind_unix(path: &Path, mode: u32) -> crate::error::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let l = UnixListener::bind(&tmp).map_err(|e| ProxyError::bind(path.display(), e))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path).map_err(|e| ProxyError::bind(path.display(), e))?;
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
pub(crate) struct ServiceSockets {
    dir: PathBuf,
    mode: u32,
    live: std::sync::Mutex<std::collections::HashMap<String, tokio::task::JoinHandle<()>>>,
    shared: std::sync::Weak<Shared>,
    /// Held weakly, as the table-install callback keeps these sockets alive to the end: the
    /// drain at shutdown needs the last strong handle.
    graceful: std::sync::Weak<GracefulShutdown>,
    stop: watch::Receiver<bool>,
    watchdog: Watchdog,
}

impl ServiceSockets {
    /// The sockets of a `services` listener under `dir`, none open yet ([`Self::reconcile`]).
    pub(crate) fn new(s: &Serving, dir: &Path, mode: u32, watchdog: Watchdog) -> ServiceSockets {
        ServiceSockets {
            dir: dir.to_path_buf(),
            mode,
            live: Default::default(),
            shared: Arc::downgrade(&s.shared),
            graceful: Arc::downgrade(&s.graceful),
            stop: s.stop.clone(),
            watchdog,
        }
    }

    fn path(&self, label: &str) -> Option<PathBuf> {
        service_socket_path(&self.dir, label)
    }

    /// Opens sockets for new routes and closes those of routes that went away.
    pub(crate) fn reconcile(&self) {
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
                    // Gone: the proxy is draining, and accepts nothing more.
                    let Some(graceful) = graceful.upgrade() else { return };
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
    pub(crate) fn close(&self) {
        for (label, task) in self.live.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            task.abort();
            if let Some(path) = self.path(&label) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
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
