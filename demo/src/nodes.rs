//! The legacy tsnsrv nodes, emulated: one HTTPS forwarder per service on its own loopback
//! address (design section 1C), with a certificate for the service's old name from the
//! development CA. It ends TLS and passes the bytes on to the app, connecting from its own
//! address so the app can say who reached it. A node stops listening while the `command`
//! adapter's flag file `<dir>/units/stopped-<host>-<service>` exists, and listens again when it
//! is removed; connections already open finish (a graceful stop).
//!
//! A host on the fork's one `tsnsrv-all` process is emulated as that one process
//! ([`SharedProc`]): it serves every one of that host's legacy names at once, stopping it
//! silences them all, and it reads its service list only when it (re)starts: from the moves
//! file the `nix` adapter writes, when the host's switch command asks for it (as
//! `nixos-rebuild switch` restarts a unit whose configuration changed, and only then).
//!
//! These forwarders stand in for tsnsrv nodes so that names move for real; their own cost is
//! not a tsnsrv node's and the demo never reports it as such.

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Where a node forwards to.
#[derive(Clone, Debug)]
pub enum Target {
    /// The app's TCP address.
    Tcp(SocketAddr),
    /// The app's unix socket.
    Unix(PathBuf),
}

/// One emulated node.
pub struct Node {
    /// `host/service`.
    pub id: String,
    /// The address its name resolves to while it serves.
    pub ip: IpAddr,
    /// Where the app is.
    pub target: Target,
    /// Its certificate (the service's old name).
    pub cert: Arc<CertifiedKey>,
    /// Served by its host's shared process ([`SharedProc`]) rather than a process of its own.
    pub shared: bool,
}

/// A host's one `tsnsrv-all` process, emulated.
#[derive(Clone, Debug)]
pub struct SharedProc {
    /// The host.
    pub host: String,
    /// The moves file its configuration comes from (`tailshift.moves/v1`).
    pub moves: PathBuf,
    /// How long a restart leaves every one of its names silent.
    pub restart: Duration,
    /// When it restarted, for the client's accounting.
    pub restarts: Arc<Restarts>,
}

/// The windows in which a shared process was restarting: requests to its names that fail in
/// one are the restart the plan announced (its `shared_process` finding), counted apart.
#[derive(Debug, Default)]
pub struct Restarts {
    /// The process's old names (`name.<tailnet>`).
    pub names: std::sync::Mutex<std::collections::HashSet<String>>,
    windows: std::sync::Mutex<Vec<(std::time::Instant, Option<std::time::Instant>)>>,
}

impl Restarts {
    /// Whether a request to `name` that failed now fell in a restart (or just after it: the
    /// request may have started in it).
    pub fn covers(&self, name: &str) -> bool {
        if !self.names.lock().unwrap_or_else(|p| p.into_inner()).contains(name) {
            return false;
        }
        let now = std::time::Instant::now();
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|(a, b)| *a <= now && b.is_none_or(|b| now <= b + Duration::from_secs(1)))
    }

    /// How many restarts there were.
    pub fn count(&self) -> usize {
        self.windows.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The services the process runs by the moves file: those `shared_processes.tsnsrv-all`
/// lists, none when the unit is disabled, else all.
fn configured(moves: &std::path::Path, all: &[String]) -> Vec<String> {
    let Some(m) = std::fs::read_to_string(moves)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    else {
        return all.to_vec();
    };
    if m["disabled_units"].as_array().is_some_and(|a| a.iter().any(|u| u == "tsnsrv-all")) {
        return Vec::new();
    }
    match m["shared_processes"]["tsnsrv-all"]["services"].as_array() {
        Some(a) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        None => all.to_vec(),
    }
}

/// The flag the host's switch command writes to ask the process to take its configuration.
pub fn switch_flag(units: &std::path::Path, host: &str) -> PathBuf {
    units.join(format!("switch-{host}"))
}

struct OneCert(Arc<CertifiedKey>);

impl std::fmt::Debug for OneCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneCert")
    }
}

impl ResolvesServerCert for OneCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The flag file the adapter script writes for a service id.
pub fn flag_file(units: &std::path::Path, id: &str) -> PathBuf {
    units.join(format!("stopped-{}", id.replace('/', "-")))
}

/// Runs every node on `port`, following the flag files in `units`; returns how many listen,
/// updated as they start and stop.
pub fn run(
    nodes: Vec<Node>,
    port: u16,
    units: PathBuf,
    shared: Option<SharedProc>,
    rt: &tokio::runtime::Handle,
) -> Arc<AtomicUsize> {
    let listening = Arc::new(AtomicUsize::new(0));
    let count = listening.clone();
    let name_of = |id: &str| id.rsplit('/').next().unwrap_or(id).to_string();
    let members: Vec<String> = nodes.iter().filter(|n| n.shared).map(|n| name_of(&n.id)).collect();
    // What the shared process serves, and until when it is restarting.
    let mut serving: std::collections::HashSet<String> = members.iter().cloned().collect();
    let mut restarting: Option<(std::time::Instant, Vec<String>)> = None;
    rt.spawn(async move {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut running: Vec<Option<tokio::task::JoinHandle<()>>> =
            nodes.iter().map(|_| None).collect();
        let acceptors: Vec<tokio_rustls::TlsAcceptor> = nodes
            .iter()
            .map(|n| {
                let mut cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default versions")
                    .with_no_client_auth()
                    .with_cert_resolver(Arc::new(OneCert(n.cert.clone())));
                // The bytes go to an HTTP/1.1 app as they are: no HTTP/2.
                cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
                tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
            })
            .collect();
        // One timer for every node (20 ms): the adapter's stop is seen well within the
        // apply's settle time.
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            // One directory listing per tick, not one lookup per node.
            let flags: std::collections::HashSet<PathBuf> = std::fs::read_dir(&units)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            if let Some(p) = &shared {
                let flag = switch_flag(&units, &p.host);
                match &restarting {
                    // Up again, with the configuration it read.
                    Some((until, next)) if std::time::Instant::now() >= *until => {
                        serving = next.iter().cloned().collect();
                        restarting = None;
                    }
                    Some(_) => {}
                    None if flags.contains(&flag) => {
                        let next = configured(&p.moves, &members);
                        if next.iter().cloned().collect::<std::collections::HashSet<_>>() != serving
                        {
                            let now = std::time::Instant::now();
                            p.restarts
                                .windows
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((now, Some(now + p.restart)));
                            restarting = Some((now + p.restart, next));
                        } else {
                            // Nothing changed: the switch leaves the unit alone.
                            let _ = std::fs::remove_file(&flag);
                        }
                    }
                    None => {}
                }
                if restarting.is_none() && flags.contains(&flag) {
                    let _ = std::fs::remove_file(&flag);
                }
            }
            for (i, n) in nodes.iter().enumerate() {
                let stopped = flags.contains(&flag_file(&units, &n.id))
                    || (n.shared && (restarting.is_some() || !serving.contains(&name_of(&n.id))));
                match (&running[i], stopped) {
                    (Some(_), true) => {
                        if let Some(h) = running[i].take() {
                            h.abort();
                        }
                    }
                    (None, false) => {
                        // Bound here, so the listener exists before the count says so.
                        let Ok(l) = std::net::TcpListener::bind((n.ip, port)) else { continue };
                        let _ = l.set_nonblocking(true);
                        let Ok(l) = tokio::net::TcpListener::from_std(l) else { continue };
                        let (acceptor, ip, target) = (acceptors[i].clone(), n.ip, n.target.clone());
                        running[i] = Some(tokio::spawn(accept(l, acceptor, ip, target)));
                    }
                    _ => {}
                }
            }
            count.store(running.iter().filter(|r| r.is_some()).count(), Ordering::SeqCst);
        }
    });
    listening
}

async fn accept(
    l: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    ip: IpAddr,
    target: Target,
) {
    loop {
        let Ok((tcp, _)) = l.accept().await else { continue };
        let (acceptor, target) = (acceptor.clone(), target.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(mut tls) = acceptor.accept(tcp).await else { return };
            match target {
                Target::Tcp(addr) => {
                    let socket = match addr {
                        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
                    };
                    let Ok(socket) = socket else { return };
                    // From the node's own address: the app tells its visitors apart by it.
                    if socket.bind(SocketAddr::new(ip, 0)).is_err() {
                        return;
                    }
                    let Ok(mut up) = socket.connect(addr).await else { return };
                    let _ = up.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                }
                Target::Unix(path) => {
                    let Ok(mut up) = tokio::net::UnixStream::connect(path).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                }
            }
        });
    }
}
