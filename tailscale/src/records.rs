//! The records file format: name -> address entries in the JSON form of `tailcfg.DNSRecord`
//! that headscale reads from its `extra_records_path` (`[{"name","type","value"}]`,
//! `reference/tailscale.md` section 6), and that the proxy's split-DNS responder reads too.
//! Rendered sorted and stable (headscale compares file hashes), `[]` when empty (headscale
//! ignores an empty file).

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::Path;

/// One record (`tailcfg.DNSRecord`). Go's JSON matching is case-insensitive, so `Name` is read
/// as well as `name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DnsRecord {
    /// The name (a trailing dot is allowed).
    #[serde(alias = "Name")]
    pub name: String,
    /// `A`, `AAAA`, or empty (inferred from the value).
    #[serde(rename = "type", alias = "Type", default)]
    pub kind: String,
    /// The address.
    #[serde(alias = "Value")]
    pub value: String,
}

impl DnsRecord {
    /// The record's address, if it is an A/AAAA record with a valid one.
    pub fn addr(&self) -> Option<IpAddr> {
        let ip: IpAddr = self.value.trim().parse().ok()?;
        match (self.kind.to_ascii_uppercase().as_str(), ip) {
            ("A" | "", IpAddr::V4(_)) | ("AAAA" | "", IpAddr::V6(_)) => Some(ip),
            _ => None,
        }
    }

    /// The name, lower case, without a trailing dot.
    pub fn key(&self) -> String {
        normalize(&self.name)
    }
}

/// A DNS name as compared here: lower case, no trailing dot.
pub fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The records for one name and its addresses.
pub fn records_for(name: &str, addrs: &[IpAddr]) -> Vec<DnsRecord> {
    addrs
        .iter()
        .map(|a| DnsRecord {
            name: normalize(name),
            kind: if a.is_ipv4() { "A" } else { "AAAA" }.to_string(),
            value: a.to_string(),
        })
        .collect()
}

/// The file's text for a set of records: sorted, without duplicates, one per line.
pub fn render(records: &[DnsRecord]) -> String {
    let mut r = records.to_vec();
    r.sort();
    r.dedup();
    if r.is_empty() {
        return "[]\n".to_string();
    }
    let lines: Vec<String> =
        r.iter().map(|x| format!("  {}", serde_json::to_string(x).unwrap_or_default())).collect();
    format!("[\n{}\n]\n", lines.join(",\n"))
}

/// Parses a records file's text (empty text is no records).
pub fn parse(path: &Path, text: &str) -> Result<Vec<DnsRecord>, RecordsError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text).map_err(|e| RecordsError {
        path: path.display().to_string(),
        message: format!("not a records file (line {}, column {}): {e}", e.line(), e.column()),
    })
}

/// A file that is not a records file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}; left unchanged")]
pub struct RecordsError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}
