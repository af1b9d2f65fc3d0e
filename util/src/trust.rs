//! The TLS trust of every client of ours (the proxy toward upstreams and auth services, the
//! checks toward old names): the system's roots plus the certificates of an extra CA file.
//! Behind the `trust` feature, so that crates without TLS do not build rustls.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::{Path, PathBuf};

/// The extra CA file cannot be read or holds a certificate that is not usable as a root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustError {
    /// The CA file, as given.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for TrustError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for TrustError {}

/// The system's trusted roots plus every certificate of `extra_ca` (PEM). A missing or
/// unreadable system store is not an error (the extra CA may be all that is needed); an
/// unreadable or unusable `extra_ca` is.
pub fn root_store(extra_ca: Option<&Path>) -> Result<rustls::RootCertStore, TrustError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    if let Some(path) = extra_ca {
        let err = |message: String| TrustError { path: path.to_path_buf(), message };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| err(format!("{e:?}")))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(format!("{e:?}")))?;
        for c in certs {
            roots.add(c).map_err(|e| err(e.to_string()))?;
        }
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_names_the_file() {
        let e = root_store(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert_eq!(e.path, Path::new("/nonexistent/ca.pem"));
        assert!(e.to_string().starts_with("/nonexistent/ca.pem: "), "{e}");
    }

    #[test]
    fn a_file_without_certificates_adds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.pem");
        std::fs::write(&p, "no certificate here\n").unwrap();
        let with = root_store(Some(&p)).unwrap().len();
        assert_eq!(with, root_store(None).unwrap().len());
    }

    #[test]
    fn a_garbled_certificate_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.pem");
        std::fs::write(&p, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .unwrap();
        assert!(root_store(Some(&p)).is_err());
    }
}
