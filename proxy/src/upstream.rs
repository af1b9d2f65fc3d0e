//! The client side, toward upstreams and forward-auth services: one pooled HTTP/1.1 client whose
//! connector dials what each route says: a name (system resolver, or the configured DNS server),
//! a fixed address (tsnsrv's `upstreamTCPAddr`), a unix socket, each with TLS where the URL is
//! `https` (system roots plus an extra CA; no verification where tsnsrv's `insecureHTTPS` said
//! so), under a connect timeout.
//!
//! A URL alone cannot say all that, so every distinct way of dialing is a [`Dial`] with a key,
//! used as the request's authority (`<key>.dial.invalid`): the pool is keyed by it, so
//! connections are reused per way of dialing, and the connector looks the key up in a registry
//! filled when a route table is installed, never on the request path. The Host the upstream sees
//! is always set by the handler, never taken from that authority.

use arc_swap::ArcSwap;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;

/// The suffix of every dial key authority (`.invalid` never resolves, RFC 6761).
const KEY_SUFFIX: &str = ".dial.invalid";

/// Dials waiting for a descriptor (the process is out of them). While any does, the accept
/// loops take no new clients (`dials_waiting`).
static DIALS_WAITING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether a dial is waiting for a descriptor: a descriptor freed now should go to a request
/// already accepted (which would otherwise wait, holding its client's descriptor, or fail with
/// a 502), not to a new connection that would then wait the same way. Without this, under a
/// flood every descriptor can end up held by clients whose dials wait for one, and nothing
/// moves until their connect timeouts.
pub fn dials_waiting() -> bool {
    DIALS_WAITING.load(std::sync::atomic::Ordering::Relaxed) > 0
}

/// How soon a dial short of descriptors tries again (within its connect timeout), at first and
/// at most.
const DESCRIPTOR_RETRY: Duration = Duration::from_millis(10);
const DESCRIPTOR_RETRY_MAX: Duration = Duration::from_millis(100);

/// How long the waiting dials may all go without one finding a descriptor before they give up
/// (each then fails with its 502). Every descriptor can be held by clients whose dials wait for
/// one (a flood accepted in one burst): nothing would move until their connect timeouts, while
/// failing them frees descriptors for what follows. While descriptors keep turning up, a dial
/// waits on (within its connect timeout).
const DESCRIPTOR_STALL: Duration = Duration::from_secs(1);

/// When a waiting dial last found a descriptor (milliseconds since [`descriptor_clock`]'s start).
static DESCRIPTOR_FOUND_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn descriptor_clock() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64
}

/// Connects, trying again while the process (or the system) is out of descriptors, within the
/// caller's connect timeout: under a flood of slow clients descriptors free up every moment,
/// and a request already accepted should not get a 502 for want of one. Meanwhile the accept
/// loops pause ([`dials_waiting`]). Gives up when no waiting dial has found a descriptor for
/// [`DESCRIPTOR_STALL`].
async fn connect_when_descriptors_free<T, F, Fut>(mut connect: F) -> io::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    use std::sync::atomic::Ordering::Relaxed;
    /// Counts the dial as waiting while it lives (dropped on success, error or timeout).
    struct Waiting;
    impl Drop for Waiting {
        fn drop(&mut self) {
            DIALS_WAITING.fetch_sub(1, Relaxed);
        }
    }
    let mut waiting = None;
    let mut pause = DESCRIPTOR_RETRY;
    let stall = DESCRIPTOR_STALL.as_millis() as u64;
    let mut since = 0;
    loop {
        match connect().await {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                let now = descriptor_clock();
                if waiting.is_none() {
                    DIALS_WAITING.fetch_add(1, Relaxed);
                    waiting = Some(Waiting);
                    since = now;
                }
                let moved = DESCRIPTOR_FOUND_MS.load(Relaxed).max(since);
                if now.saturating_sub(moved) >= stall {
                    return Err(e);
                }
                tokio::time::sleep(pause).await;
                // Hundreds of dials may be waiting: each tries less often the longer it waits.
                pause = (pause * 2).min(DESCRIPTOR_RETRY_MAX);
            }
            done => {
                if waiting.is_some() && done.is_ok() {
                    DESCRIPTOR_FOUND_MS.fetch_max(descriptor_clock(), Relaxed);
                }
                return done;
            }
        }
    }
}

/// One way of reaching an upstream or auth service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dial {
    /// TLS on top of the connection.
    pub tls: bool,
    /// The URL's host: resolved (unless an address or socket is fixed), and the TLS server name.
    pub host: String,
    /// The URL's port (or the scheme's default).
    pub port: u16,
    /// Always dial this unix socket.
    pub unix: Option<PathBuf>,
    /// Always dial this address (`host:port`, resolved when it is a name).
    pub tcp_addr: Option<String>,
    /// Accept any certificate.
    pub insecure: bool,
    /// Connect timeout (the proxy's default when `None`).
    pub connect_timeout_ms: Option<u64>,
}

impl Dial {
    /// The dial for a URL, with a route's overrides; `None` for a URL that is not http(s).
    pub fn for_url(
        url: &url::Url,
        unix: Option<&str>,
        tcp_addr: Option<&str>,
        insecure: bool,
        connect_timeout_ms: Option<u64>,
    ) -> Option<Dial> {
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return None,
        };
        let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']').to_string();
        Some(Dial {
            tls,
            host,
            port: url.port_or_known_default()?,
            unix: unix.map(PathBuf::from),
            tcp_addr: tcp_addr.map(str::to_string),
            insecure: tls && insecure,
            connect_timeout_ms,
        })
    }

    /// The authority this dial is pooled and looked up under: a digest of every field.
    pub fn key(&self) -> String {
        let canonical = format!(
            "{}|{}|{}|{:?}|{:?}|{}|{:?}",
            self.tls,
            self.host,
            self.port,
            self.unix,
            self.tcp_addr,
            self.insecure,
            self.connect_timeout_ms
        );
        let digest = Sha256::digest(canonical.as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{hex}{KEY_SUFFIX}")
    }
}

/// What the connector knows besides the registry: trust, DNS, the default connect timeout.
pub struct ClientOptions {
    /// PEM file of extra CA certificates trusted toward upstreams and auth services.
    pub extra_ca: Option<PathBuf>,
    /// A DNS server (`ip:port`) for upstream and auth names, instead of the system resolver.
    pub dns_server: Option<SocketAddr>,
    /// Only names in this zone go to `dns_server` (the proxy's own responder); others to the
    /// system resolver. `None`: every name.
    pub dns_zone: Option<String>,
    /// Connect timeout when a route sets none.
    pub connect_timeout: Duration,
}

/// Accepts every certificate: tsnsrv's `insecureHTTPS`, for upstreams with self-signed ones.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Dials by key; cheap to clone (the client clones its connector).
#[derive(Clone)]
pub struct Connector {
    inner: Arc<Dialer>,
}

struct Dialer {
    registry: ArcSwap<HashMap<String, Arc<Dial>>>,
    verified: tokio_rustls::TlsConnector,
    insecure: tokio_rustls::TlsConnector,
    dns: Option<hickory_resolver::TokioResolver>,
    dns_zone: Option<String>,
    connect_timeout: Duration,
}

impl Connector {
    /// A connector with the system's roots plus `extra_ca`, and the DNS server if given.
    pub fn new(opts: &ClientOptions) -> crate::error::Result<Connector> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = tailshift_util::trust::root_store(opts.extra_ca.as_deref())?;
        let mut verified = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        verified.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut insecure = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth();
        insecure.alpn_protocols = vec![b"http/1.1".to_vec()];
        let dns = match opts.dns_server {
            None => None,
            Some(addr) => {
                use hickory_resolver::config::{
                    ConnectionConfig, NameServerConfig, ResolverConfig,
                };
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                let config = ResolverConfig::from_name_servers(vec![ns]);
                Some(
                    hickory_resolver::TokioResolver::builder_with_config(
                        config,
                        hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
                    )
                    .build()
                    .map_err(|e| crate::error::ProxyError::Dns {
                        server: addr,
                        error: e.to_string(),
                    })?,
                )
            }
        };
        Ok(Connector {
            inner: Arc::new(Dialer {
                registry: ArcSwap::from_pointee(HashMap::new()),
                verified: tokio_rustls::TlsConnector::from(Arc::new(verified)),
                insecure: tokio_rustls::TlsConnector::from(Arc::new(insecure)),
                dns,
                dns_zone: opts
                    .dns_zone
                    .as_ref()
                    .map(|z| z.trim_end_matches('.').to_ascii_lowercase()),
                connect_timeout: opts.connect_timeout,
            }),
        })
    }

    /// Makes these dials known (before the routes that use them are installed). Keys are never
    /// removed: requests of a replaced table may still be connecting, and a key is a few bytes.
    pub fn register<'a>(&self, dials: impl IntoIterator<Item = &'a Arc<Dial>>) {
        let new: Vec<Arc<Dial>> = dials
            .into_iter()
            .filter(|d| !self.inner.registry.load().contains_key(&d.key()))
            .cloned()
            .collect();
        if new.is_empty() {
            return;
        }
        self.inner.registry.rcu(|old| {
            let mut m = (**old).clone();
            for d in &new {
                m.insert(d.key(), d.clone());
            }
            m
        });
    }

    /// Opens a connection for a dial (also used by health checks).
    pub async fn open(&self, dial: &Dial) -> io::Result<UpstreamStream> {
        let limit = dial
            .connect_timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(self.inner.connect_timeout);
        match tokio::time::timeout(limit, self.inner.open(dial)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect to {} timed out after {limit:?}", describe(dial)),
            )),
        }
    }
}

/// A dial in words, for errors and logs.
pub fn describe(d: &Dial) -> String {
    let scheme = if d.tls { "https" } else { "http" };
    match (&d.unix, &d.tcp_addr) {
        (Some(u), _) => format!("{scheme} over unix:{}", u.display()),
        (None, Some(a)) => format!("{scheme}://{}:{} via {a}", d.host, d.port),
        (None, None) => format!("{scheme}://{}:{}", d.host, d.port),
    }
}

impl Dialer {
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let in_zone = |z: &String| {
            let h = host.trim_end_matches('.').to_ascii_lowercase();
            h == *z || h.ends_with(&format!(".{z}"))
        };
        match self.dns.as_ref().filter(|_| self.dns_zone.as_ref().is_none_or(in_zone)) {
            Some(r) => {
                let answer = r
                    .lookup_ip(host)
                    .await
                    .map_err(|e| io::Error::other(format!("resolve {host}: {e}")))?;
                Ok(answer.iter().map(|ip| SocketAddr::new(ip, port)).collect())
            }
            None => Ok(tokio::net::lookup_host((host, port)).await?.collect()),
        }
    }

    async fn tcp(&self, dial: &Dial) -> io::Result<TcpStream> {
        let addrs = match &dial.tcp_addr {
            Some(a) => match a.parse::<SocketAddr>() {
                Ok(sa) => vec![sa],
                Err(_) => {
                    let (h, p) = a.rsplit_once(':').ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidInput, format!("address {a:?}"))
                    })?;
                    let p = p.parse().map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidInput, format!("address {a:?}"))
                    })?;
                    self.resolve(h, p).await?
                }
            },
            None => self.resolve(&dial.host, dial.port).await?,
        };
        let mut last =
            io::Error::new(io::ErrorKind::NotFound, format!("{}: no address", dial.host));
        for a in addrs {
            match connect_when_descriptors_free(|| TcpStream::connect(a)).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = io::Error::new(e.kind(), format!("dial tcp {a}: {e}")),
            }
        }
        Err(last)
    }

    async fn open(&self, dial: &Dial) -> io::Result<UpstreamStream> {
        if let Some(path) = &dial.unix {
            let s =
                connect_when_descriptors_free(|| UnixStream::connect(path)).await.map_err(|e| {
                    io::Error::new(e.kind(), format!("dial unix {}: {e}", path.display()))
                })?;
            if !dial.tls {
                return Ok(UpstreamStream::Unix(s));
            }
            let tls = self.handshake(dial, s).await?;
            return Ok(UpstreamStream::UnixTls(Box::new(tls)));
        }
        let s = self.tcp(dial).await?;
        if !dial.tls {
            return Ok(UpstreamStream::Tcp(s));
        }
        Ok(UpstreamStream::Tls(Box::new(self.handshake(dial, s).await?)))
    }

    async fn handshake<S>(&self, dial: &Dial, s: S) -> io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = ServerName::try_from(dial.host.clone()).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{}: {e}", dial.host))
        })?;
        let connector = if dial.insecure { &self.insecure } else { &self.verified };
        connector
            .connect(name, s)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("TLS with {}: {e}", dial.host)))
    }
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<UpstreamStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let key = uri.host().unwrap_or_default();
            let dial = this.inner.registry.load().get(key).cloned().ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no dial registered for {key}"))
            })?;
            Ok(TokioIo::new(this.open(&dial).await?))
        })
    }
}

/// A connection to an upstream.
pub enum UpstreamStream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
    /// A unix socket.
    Unix(UnixStream),
    /// TLS over a unix socket.
    UnixTls(Box<TlsStream<UnixStream>>),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            UpstreamStream::Tcp($s) => {
                let $s = Pin::new($s);
                $e
            }
            UpstreamStream::Tls($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
            UpstreamStream::Unix($s) => {
                let $s = Pin::new($s);
                $e
            }
            UpstreamStream::UnixTls($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
        }
    };
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Tcp(s) => s.is_write_vectored(),
            UpstreamStream::Tls(s) => s.is_write_vectored(),
            UpstreamStream::Unix(s) => s.is_write_vectored(),
            UpstreamStream::UnixTls(s) => s.is_write_vectored(),
        }
    }
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_every_field_and_are_valid_authorities() {
        let u = url::Url::parse("https://app.example:8443/x").unwrap();
        let base = Dial::for_url(&u, None, None, false, None).unwrap();
        assert_eq!((base.tls, base.port, base.host.as_str()), (true, 8443, "app.example"));
        let variants = [
            Dial::for_url(&u, Some("/run/a.sock"), None, false, None).unwrap(),
            Dial::for_url(&u, None, Some("127.0.0.1:1"), false, None).unwrap(),
            Dial::for_url(&u, None, None, true, None).unwrap(),
            Dial::for_url(&u, None, None, false, Some(5)).unwrap(),
        ];
        for v in &variants {
            assert_ne!(v.key(), base.key(), "{v:?}");
        }
        let auth: http::uri::Authority = base.key().parse().unwrap();
        assert!(auth.host().ends_with(".dial.invalid"));
        // insecure only means something with TLS.
        let plain = url::Url::parse("http://app.example/").unwrap();
        assert!(!Dial::for_url(&plain, None, None, true, None).unwrap().insecure);
        assert!(
            Dial::for_url(&url::Url::parse("ftp://x/").unwrap(), None, None, false, None).is_none()
        );
    }
}
