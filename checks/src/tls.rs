//! The checks' TLS client: the trust of the proxy (`tailshift_util::trust`), built once per
//! process and CA file.

use crate::CheckConfig;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tailshift_util::trust::TrustError;

/// The TLS client of the checks: the system's roots plus `cfg.ca_file`, TLS 1.2 and 1.3 with
/// ring. Built once per process (and CA file): reading the system store for every check would
/// be the same work again and again.
pub fn client_config(cfg: &CheckConfig) -> Result<Arc<rustls::ClientConfig>, TrustError> {
    type Cached = (Option<PathBuf>, Arc<rustls::ClientConfig>);
    static CACHE: Mutex<Option<Cached>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((ca, c)) = cache.as_ref()
        && *ca == cfg.ca_file
    {
        return Ok(c.clone());
    }
    let roots = tailshift_util::trust::root_store(cfg.ca_file.as_deref())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let c = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    *cache = Some((cfg.ca_file.clone(), c.clone()));
    Ok(c)
}
