//! The legacy tsnsrv nodes, emulated: one HTTPS forwarder per service on its own loopback
//! address (design section 1C), with a certificate for the service's old name from the
//! development CA. It ends TLS and passes the bytes on to the app, connecting from its own
//! address so the app can say who reached it. A node stops listening while the `command`
//! adapter's flag file `<dir>/units/stopped-<host>-<service>` exists, and listens again when it
//! is removed; connections already open finish (a graceful stop).
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
    rt: &tokio::runtime::Handle,
) -> Arc<AtomicUsize> {
    let listening = Arc::new(AtomicUsize::new(0));
    let count = listening.clone();
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
            for (i, n) in nodes.iter().enumerate() {
                let stopped = flags.contains(&flag_file(&units, &n.id));
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
