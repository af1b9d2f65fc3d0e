//! TLS for the HTTPS listener: certificates chosen by SNI through a rustls
//! `ResolvesServerCert`. The default source is a development CA kept in the state directory,
//! which issues a certificate for each route name on first use, so the proxy runs on any machine
//! (PEM files and the Tailscale LocalAPI are the other sources, next).

use super::routes::RouteTable;
use arc_swap::ArcSwap;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
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
}

impl DevCa {
    /// Loads `dev-ca.crt`/`dev-ca.key` from `dir`, creating them (key 0600) when absent.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<DevCa> {
        let (crt, key) = (dir.join("dev-ca.crt"), dir.join("dev-ca.key"));
        if crt.exists() && key.exists() {
            let kp = KeyPair::from_pem(&std::fs::read_to_string(&key)?)?;
            let pem = std::fs::read_to_string(&crt)?;
            let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
                .map_err(|e| anyhow::anyhow!("{}: {e:?}", crt.display()))?;
            return Ok(DevCa { issuer: Issuer::new(ca_params(), kp), cert_der: der });
        }
        let kp = KeyPair::generate()?;
        let cert = ca_params().self_signed(&kp)?;
        std::fs::create_dir_all(dir)?;
        tailshift_plans::plan_file::write_atomic(&key, &kp.serialize_pem())?;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        tailshift_plans::plan_file::write_atomic(&crt, &cert.pem())?;
        Ok(DevCa { cert_der: cert.der().clone(), issuer: Issuer::new(ca_params(), kp) })
    }

    /// A certificate for one name, signed by the CA (chain: leaf, CA).
    pub fn issue(&self, name: &str) -> anyhow::Result<CertifiedKey> {
        let kp = KeyPair::generate()?;
        let params = CertificateParams::new(vec![name.to_string()])?;
        let leaf = params.signed_by(&kp, &self.issuer)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(kp.serialize_der()));
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)?;
        Ok(CertifiedKey::new(vec![leaf.der().clone(), self.cert_der.clone()], signing))
    }
}

/// Picks a certificate by SNI; issues one for a route name the first time it is asked.
pub struct Resolver {
    ca: DevCa,
    certs: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
    issuing: Mutex<()>,
    routes: Arc<ArcSwap<RouteTable>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resolver({} certificates)", self.certs.load().len())
    }
}

impl Resolver {
    /// A resolver over the routes' names.
    pub fn new(ca: DevCa, routes: Arc<ArcSwap<RouteTable>>) -> Self {
        Resolver {
            ca,
            certs: ArcSwap::from_pointee(HashMap::new()),
            issuing: Mutex::new(()),
            routes,
        }
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        if let Some(c) = self.certs.load().get(&name) {
            return Some(c.clone());
        }
        // Only names the proxy serves get a certificate (clients by IP get none: tsnsrv's
        // "no SNI ServerName" case).
        self.routes.load().lookup(&name, "/")?;
        let _guard = self.issuing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = self.certs.load().get(&name) {
            return Some(c.clone());
        }
        let issued = Arc::new(self.ca.issue(&name).ok()?);
        self.certs.rcu(|old| {
            let mut m = (**old).clone();
            m.insert(name.clone(), issued.clone());
            m
        });
        Some(issued)
    }
}

/// The rustls server configuration: TLS 1.2+, ALPN h2 then http/1.1, certificates by SNI.
pub fn server_config(resolver: Arc<Resolver>) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}
