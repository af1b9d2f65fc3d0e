//! Helpers: run `migrate`, find the shared scenario, write fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (tests run `migrate` from here so paths in output are stable).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `migrate` with arguments, run from the repository root.
pub fn migrate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run migrate")
}

/// `migrate` run in another directory.
pub fn migrate_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run migrate")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses `--format json` output.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// `../shared/scenarios/homelab` relative to the repository root, when present.
pub fn homelab() -> Option<&'static str> {
    let rel = "../shared/scenarios/homelab";
    if root().join(rel).is_dir() {
        Some(rel)
    } else {
        tailshift_util::testing::skip(&format!(
            "{rel} is absent (the shared scenario is only on CI and dev machines)"
        ));
        None
    }
}

/// Skips the test when the shared scenario is absent.
#[macro_export]
macro_rules! need_homelab {
    () => {
        match $crate::util::homelab() {
            Some(h) => h,
            None => return Default::default(),
        }
    };
}

/// The diagnostics of a JSON inventory with a given code.
pub fn diags<'a>(inv: &'a serde_json::Value, code: &str) -> Vec<&'a serde_json::Value> {
    inv["diagnostics"].as_array().unwrap().iter().filter(|d| d["code"] == code).collect()
}

/// One service of a JSON inventory.
pub fn service<'a>(inv: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    inv["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no service {name}"))
}

/// The known value of an option (`declared` or `effective`).
pub fn value<'a>(svc: &'a serde_json::Value, part: &str, opt: &str) -> &'a serde_json::Value {
    &svc[part][opt]["known"]["value"]
}

/// A rustls server configuration with the certificate `<dir>/<name>.crt` (chain) and `.key`.
pub fn tls_server_config(dir: &Path, name: &str) -> std::sync::Arc<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject;
    let chain: Vec<_> =
        rustls_pki_types::CertificateDer::pem_file_iter(dir.join(format!("{name}.crt")))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key =
        rustls_pki_types::PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).unwrap();
    std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap(),
    )
}

/// GET `https://<fqdn>:<port>/` as a client of the emulated tailnet does: the name resolved
/// through `dns`, the certificate verified against `ca`. (status, body); status 0 when the name
/// does not resolve or nothing answers.
pub fn get_by_name(dns: std::net::SocketAddr, port: u16, ca: &Path, fqdn: &str) -> (u16, String) {
    let addr = match tailshift_shims::dns::query(dns, fqdn, std::time::Duration::from_secs(2)) {
        Ok(tailshift_shims::dns::Answer::Addrs(a)) if !a.is_empty() => a[0],
        _ => return (0, "unresolved".into()),
    };
    let o = Command::new("curl")
        .args(["-s", "-m", "5", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{fqdn}:{port}:{addr}")])
        .arg(format!("https://{fqdn}:{port}/"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.parse().unwrap_or(0), body.to_string())
}

/// The error diagnostics of a JSON inventory.
pub fn errors(inv: &serde_json::Value) -> Vec<&serde_json::Value> {
    inv["diagnostics"].as_array().unwrap().iter().filter(|d| d["severity"] == "error").collect()
}

/// The names of a JSON inventory's services, sorted.
pub fn service_names(inv: &serde_json::Value) -> Vec<&str> {
    let mut n: Vec<&str> =
        inv["services"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    n.sort();
    n
}
