//! The HTTP check against a real TLS server on loopback, with a CA of the test's own.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use tailshift_checks::{CheckConfig, CheckError, Outcome, ResolveError, check, check_with};

/// A CA (its PEM file in `dir`) and a server certificate for `localhost` it signed.
fn ca_and_leaf(
    dir: &std::path::Path,
) -> (PathBuf, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.clone().self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf =
        CertificateParams::new(vec!["localhost".into()]).unwrap().signed_by(&key, &issuer).unwrap();
    let ca_file = dir.join("ca.crt");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (ca_file, vec![leaf.der().clone(), ca_cert.der().clone()], der)
}

/// Serves `answers.len()` connections on 127.0.0.1, one answer each; returns the port and the
/// request heads received.
fn serve(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    answers: Vec<&'static str>,
) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let cfg = Arc::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for answer in answers {
            let (tcp, _) = l.accept().unwrap();
            let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
            let mut s = rustls::StreamOwned::new(conn, tcp);
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(1) => head.push(b[0]),
                    _ => break,
                }
            }
            seen.push(String::from_utf8_lossy(&head).into_owned());
            let _ = s.write_all(answer.as_bytes());
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        seen
    });
    (port, h)
}

fn cfg(port: u16, ca_file: Option<PathBuf>) -> CheckConfig {
    CheckConfig { resolver: None, port, ca_file, timeout_ms: 3000 }
}

#[test]
fn an_answer_gives_its_status_address_and_location() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, chain, key) = ca_and_leaf(dir.path());
    let (port, server) = serve(
        chain,
        key,
        vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 308 Permanent Redirect\r\nlocation: https://localhost/x\r\n\r\n",
        ],
    );
    let c = cfg(port, Some(ca));
    let o = check_with(&c, "localhost", "/health", &["Authorization: Bearer t ".into()]);
    let local = IpAddr::from([127, 0, 0, 1]);
    assert_eq!(o, Outcome::Status { code: 200, addr: local, location: None });
    assert_eq!(o.class(), Some(2));
    let o = check(&c, "localhost", "/");
    assert_eq!(
        o,
        Outcome::Status { code: 308, addr: local, location: Some("https://localhost/x".into()) }
    );
    let seen = server.join().unwrap();
    assert!(seen[0].starts_with("GET /health HTTP/1.1\r\nHost: localhost\r\n"), "{}", seen[0]);
    assert!(seen[0].contains("\r\nAuthorization: Bearer t\r\n"), "{}", seen[0]);
}

#[test]
fn a_certificate_from_an_unknown_ca_is_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (_, chain, key) = ca_and_leaf(dir.path());
    let (port, server) = serve(chain, key, vec!["HTTP/1.1 200 OK\r\n\r\n"]);
    let o = check(&cfg(port, None), "localhost", "/");
    let _ = server.join();
    assert_eq!(o.class(), None);
    assert!(matches!(&o, Outcome::Error(CheckError::Io { .. })), "{o:?}");
}

#[test]
fn an_unreadable_ca_file_is_a_trust_error() {
    let o = check(&cfg(1, Some("/nonexistent/ca.crt".into())), "127.0.0.1", "/");
    assert!(matches!(&o, Outcome::Error(CheckError::Trust(_))), "{o:?}");
}

#[test]
fn a_name_the_resolver_does_not_know_is_a_resolve_error() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let c = CheckConfig {
        resolver: Some(silent.local_addr().unwrap()),
        timeout_ms: 200,
        ..Default::default()
    };
    let o = check(&c, "gone.tailnet.test", "/");
    assert!(matches!(&o, Outcome::Error(CheckError::Resolve(ResolveError::Dns { .. }))), "{o:?}");
}
