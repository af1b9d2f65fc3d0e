//! TLS for the HTTPS listener: certificates chosen by SNI through a rustls
//! `ResolvesServerCert`. The default source is a development CA kept in the state directory,
//! which issues a certificate for each route name on first use, so the proxy runs on any machine.
//! The others are PEM files (re-read when they change) and tailscaled's LocalAPI, whose
//! certificates a background task fetches ahead of use and refreshes (see [`localapi_certs`]):
//! the handshake itself never waits on I/O.

use super::routes::RouteTable;
use crate::error::ProxyError;
use arc_swap::ArcSwap;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "tailshift development CA");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

/// The development CA: its key and certificate live in the state directory.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    spki: Vec<u8>,
}

impl DevCa {
    /// Loads `dev-ca.crt`/`dev-ca.key` from `dir`, creating them (key 0600) when absent.
    pub fn load_or_create(dir: &Path) -> crate::error::Result<DevCa> {
        let (crt, key) = (dir.join("dev-ca.crt"), dir.join("dev-ca.key"));
        if crt.exists() && key.exists() {
            let kp = KeyPair::from_pem(
                &std::fs::read_to_string(&key).map_err(|e| ProxyError::file(&key, e))?,
            )
            .map_err(|e| ProxyError::file(&key, e))?;
            let pem = std::fs::read_to_string(&crt).map_err(|e| ProxyError::file(&crt, e))?;
            let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
                .map_err(|e| ProxyError::file(&crt, format!("{e:?}")))?;
            let spki = rcgen::PublicKeyData::subject_public_key_info(&kp);
            return Ok(DevCa { issuer: Issuer::new(ca_params(), kp), cert_der: der, spki });
        }
        let kp = KeyPair::generate()?;
        let cert = ca_params().self_signed(&kp)?;
        std::fs::create_dir_all(dir).map_err(|e| ProxyError::file(dir, e))?;
        let write = |path: &Path, text: String, mode| {
            tailshift_util::write_atomic(path, text.as_bytes(), mode)
                .map_err(|e| ProxyError::file(path, e))
        };
        // The key is 0600 from its first byte; the certificate is public.
        write(&key, kp.serialize_pem(), tailshift_util::FileMode::Private)?;
        write(&crt, cert.pem(), tailshift_util::FileMode::KeepOr(0o644))?;
        let spki = rcgen::PublicKeyData::subject_public_key_info(&kp);
        Ok(DevCa { cert_der: cert.der().clone(), issuer: Issuer::new(ca_params(), kp), spki })
    }

    /// base64 of the SHA-256 of the CA's SubjectPublicKeyInfo: what Chromium's
    /// `--ignore-certificate-errors-spki-list` takes to trust it.
    pub fn spki_sha256_base64(&self) -> String {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&self.spki))
    }

    /// A certificate for one name, signed by the CA (chain: leaf, CA).
    pub fn issue(&self, name: &str) -> crate::error::Result<CertifiedKey> {
        let kp = KeyPair::generate()?;
        let params = CertificateParams::new(vec![name.to_string()])?;
        let leaf = params.signed_by(&kp, &self.issuer)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(kp.serialize_der()));
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)?;
        Ok(CertifiedKey::new(vec![leaf.der().clone(), self.cert_der.clone()], signing))
    }
}

/// Where certificates come from.
pub enum Source {
    /// The development CA issues one per route name.
    DevCa(Box<DevCa>),
    /// `<dir>/<name>.crt` (full chain) and `<dir>/<name>.key`, re-read when they change.
    Files(std::path::PathBuf),
    /// tailscaled's `cert/<domain>?type=pair`, fetched by [`localapi_certs`].
    LocalApi,
}

/// Modification times of a certificate's two files when last read.
type FileTimes = (Option<std::time::SystemTime>, Option<std::time::SystemTime>);

/// Reads a PEM certificate chain and key for rustls.
fn load_pem(crt: &Path, key: &Path) -> crate::error::Result<CertifiedKey> {
    use rustls_pki_types::pem::PemObject;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(crt)
        .map_err(|e| ProxyError::file(crt, format!("{e:?}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| ProxyError::file(crt, format!("{e:?}")))?;
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| ProxyError::file(key, format!("{e:?}")))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)?;
    Ok(CertifiedKey::new(chain, signing))
}

fn mtime(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Picks a certificate by SNI; issues one for a route name the first time it is asked, or
/// reads it from files (again whenever they change; the last good one stays if a read fails).
pub struct Resolver {
    source: Source,
    file_times: Mutex<HashMap<String, FileTimes>>,
    certs: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
    issuing: Mutex<()>,
    routes: Arc<ArcSwap<RouteTable>>,
    /// The name whose certificate a client without SNI gets (one connecting by address).
    fallback: Option<String>,
    /// Names asked for that have no certificate yet (LocalAPI source): the fetcher's queue.
    missing: Mutex<std::collections::BTreeSet<String>>,
    /// Wakes the fetcher.
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resolver({} certificates)", self.certs.load().len())
    }
}

impl Resolver {
    /// A resolver over the routes' names.
    pub fn new(source: Source, routes: Arc<ArcSwap<RouteTable>>, fallback: Option<String>) -> Self {
        Resolver {
            source,
            file_times: Mutex::new(HashMap::new()),
            certs: ArcSwap::from_pointee(HashMap::new()),
            issuing: Mutex::new(()),
            routes,
            fallback: fallback.map(|f| f.to_ascii_lowercase()),
            missing: Mutex::new(Default::default()),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Wakes the LocalAPI fetcher (the route table changed).
    pub fn routes_changed(&self) {
        self.wake.notify_one();
    }

    /// The certificate a handshake for `sni` was given (the one it is kept under).
    fn presented(&self, sni: &str) -> Option<Arc<CertifiedKey>> {
        self.certs.load().get(sni).cloned()
    }

    fn store(&self, name: &str, cert: Arc<CertifiedKey>) {
        self.certs.rcu(|old| {
            let mut m = (**old).clone();
            m.insert(name.to_string(), cert.clone());
            m
        });
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = match hello.server_name() {
            Some(n) => n.to_ascii_lowercase(),
            None => self.fallback.clone()?,
        };
        if let Source::Files(dir) = &self.source {
            let (crt, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
            let now = (mtime(&crt), mtime(&key));
            let cached = self.certs.load().get(&name).cloned();
            let mut times = self.file_times.lock().unwrap_or_else(|p| p.into_inner());
            if cached.is_some() && times.get(&name) == Some(&now) {
                return cached;
            }
            return match load_pem(&crt, &key) {
                Ok(c) => {
                    times.insert(name.clone(), now);
                    let c = Arc::new(c);
                    self.store(&name, c.clone());
                    Some(c)
                }
                Err(e) => {
                    eprintln!("WARN certificate for {name}: {e:#}; keeping the last good one");
                    cached
                }
            };
        }
        if let Some(c) = self.certs.load().get(&name) {
            return Some(c.clone());
        }
        if let Source::LocalApi = &self.source {
            // Fetched in the background; this handshake fails, the client's retry succeeds.
            if self.routes.load().serves_name(&name) || self.fallback.as_ref() == Some(&name) {
                self.missing.lock().unwrap_or_else(|p| p.into_inner()).insert(name);
                self.wake.notify_one();
            }
            return None;
        }
        // Only names the proxy serves get a certificate (clients by IP get none: tsnsrv's
        // "no SNI ServerName" case).
        if !self.routes.load().serves_name(&name) {
            return None;
        }
        let Source::DevCa(ca) = &self.source else { return None };
        let _guard = self.issuing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = self.certs.load().get(&name) {
            return Some(c.clone());
        }
        let issued = Arc::new(ca.issue(&name).ok()?);
        self.store(&name, issued.clone());
        Some(issued)
    }
}

/// What one TLS connection was set up for: the name the client sent (SNI) and the resolver that
/// chose its certificate. A request on the connection may name another host only when that
/// certificate covers it too (several names, or a wildcard): browsers reuse one HTTP/2
/// connection for every name its certificate covers (RFC 9113 9.1.1), and that must keep
/// working; any other name gets 421 and the client opens a connection of its own.
#[derive(Debug)]
pub struct Presented {
    sni: Box<str>,
    resolver: Arc<Resolver>,
}

impl Presented {
    /// A connection whose client sent `sni`.
    pub fn new(sni: &str, resolver: Arc<Resolver>) -> Presented {
        Presented { sni: sni.to_ascii_lowercase().into_boxed_str(), resolver }
    }

    /// Whether a request for `host` (as asked: any case, a port, a trailing dot) may be
    /// answered on this connection.
    pub fn covers(&self, host: &str) -> bool {
        let host = super::routes::bare_host(host);
        // The common case (the name the connection was made for) reads no certificate.
        if host.eq_ignore_ascii_case(&self.sni) {
            return true;
        }
        self.resolver.presented(&self.sni).is_some_and(|cert| certificate_covers(&cert, host))
    }
}

/// Whether a certificate's leaf is valid for `host` (its DNS or IP subject names, wildcards as
/// RFC 6125 reads them: `*.example.test` covers `a.example.test`, not `a.b.example.test`).
fn certificate_covers(cert: &CertifiedKey, host: &str) -> bool {
    let Ok(leaf) = cert.end_entity_cert() else { return false };
    let Ok(parsed) = rustls::server::ParsedCertificate::try_from(leaf) else { return false };
    let Ok(name) = rustls_pki_types::ServerName::try_from(host.to_ascii_lowercase()) else {
        return false;
    };
    rustls::client::verify_server_name(&parsed, &name).is_ok()
}

/// How often each certificate is asked for again. tailscaled answers from its cache while the
/// certificate has at least [`MIN_VALIDITY`] left, and renews it first otherwise.
const REFRESH: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// What a refreshed certificate must still be valid for (a Go duration for tailscaled).
const MIN_VALIDITY: &str = "720h";
/// The first retry delay after a failure (doubled up to an hour) without a `Retry-After`.
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(30);

/// Keeps the LocalAPI certificates of every HTTPS route name (and the fallback name): fetched
/// when a name appears, refreshed daily with `min_validity`, a 429's `Retry-After` honoured,
/// the last good certificate kept on failure. One task, one timer (the earliest due name).
pub async fn localapi_certs(resolver: Arc<Resolver>, api: tailshift_tailscale::LocalApi) {
    use std::time::Instant;
    // name -> (when it is due, consecutive failures, whether tailscaled said when to retry)
    let mut due: HashMap<String, (Instant, u32, bool)> = HashMap::new();
    loop {
        let mut wanted: std::collections::BTreeSet<String> = resolver
            .routes
            .load()
            .routes
            .iter()
            .filter(|r| matches!(r.listen, tailshift_routes::Listen::Https { .. }))
            .flat_map(|r| r.hosts.iter().map(|h| h.name.clone()))
            .collect();
        wanted.extend(resolver.fallback.clone());
        let asked =
            std::mem::take(&mut *resolver.missing.lock().unwrap_or_else(|p| p.into_inner()));
        due.retain(|n, _| wanted.contains(n));
        let now = Instant::now();
        for name in &wanted {
            let entry = due.entry(name.clone()).or_insert((now, 0, false));
            // A client asked for a name still failing: try it now rather than at our own
            // backoff (never before a `Retry-After`).
            if asked.contains(name) && entry.1 > 0 && !entry.2 && entry.0 > now + RETRY_FIRST {
                entry.0 = now;
            }
            if entry.0 > now {
                continue;
            }
            let (api, n) = (api.clone(), name.clone());
            let got =
                tokio::task::spawn_blocking(move || api.cert_pair(&n, Some(MIN_VALIDITY))).await;
            let result = match got {
                Ok(r) => r.map_err(|e| e.into()).and_then(|p| parse_pair(&p)),
                Err(e) => Err(ProxyError::BadPair(format!("fetch task: {e}"))),
            };
            match result {
                Ok(cert) => {
                    resolver.store(name, Arc::new(cert));
                    *entry = (Instant::now() + REFRESH, 0, false);
                }
                Err(e) => {
                    let told = match &e {
                        ProxyError::LocalApi(tailshift_tailscale::LocalApiError::RateLimited {
                            retry_after,
                            ..
                        }) => *retry_after,
                        _ => None,
                    };
                    let retry = told.unwrap_or_else(|| {
                        (RETRY_FIRST * 2u32.saturating_pow(entry.1.min(7)))
                            .min(std::time::Duration::from_secs(3600))
                    });
                    eprintln!(
                        "WARN certificate for {name} from the LocalAPI: {e:#}; next try in {retry:?}"
                    );
                    *entry = (Instant::now() + retry, entry.1 + 1, told.is_some());
                }
            }
        }
        let next = due.values().map(|(at, _, _)| *at).min();
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = resolver.wake.notified() => {}
                }
            }
            None => resolver.wake.notified().await,
        }
    }
}

/// A LocalAPI pair as a rustls certified key.
fn parse_pair(p: &tailshift_tailscale::CertPair) -> crate::error::Result<CertifiedKey> {
    use rustls_pki_types::pem::PemObject;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(p.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| ProxyError::BadPair(format!("certificate chain: {e:?}")))?;
    if chain.is_empty() {
        return Err(ProxyError::BadPair("no certificate in the answer".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(p.key_pem.as_bytes())
        .map_err(|e| ProxyError::BadPair(format!("private key: {e:?}")))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)?;
    Ok(CertifiedKey::new(chain, signing))
}

/// The rustls server configuration: TLS 1.2+, ALPN h2 then http/1.1, certificates by SNI.
pub fn server_config(resolver: Arc<Resolver>) -> crate::error::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certified key for `names`, self-signed (only its subject names matter here).
    fn cert_for(names: &[&str]) -> CertifiedKey {
        let kp = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&kp).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(kp.serialize_der()));
        let signing = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
        CertifiedKey::new(vec![cert.der().clone()], signing)
    }

    #[test]
    fn a_certificate_covers_its_names_and_one_level_under_its_wildcards() {
        let c = cert_for(&["*.example.test", "other.test"]);
        for host in ["a.example.test", "B.example.test", "other.test"] {
            assert!(certificate_covers(&c, host), "{host}");
        }
        for host in ["example.test", "a.b.example.test", "x.test", "127.0.0.1", ""] {
            assert!(!certificate_covers(&c, host), "{host}");
        }
    }
}
