//! `[apply.check]` of `migrate.toml`: how a check reaches a service by its old name.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// How a check reaches a service by its old name.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Resolve names through this DNS server (default: the system resolver).
    #[serde(default)]
    pub resolver: Option<SocketAddr>,
    /// The HTTPS port names answer on.
    #[serde(default = "default_https_port")]
    pub port: u16,
    /// Extra CA certificates (PEM) to trust, besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Per request.
    #[serde(default = "default_check_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            resolver: None,
            port: default_https_port(),
            ca_file: None,
            timeout_ms: default_check_timeout_ms(),
        }
    }
}

impl CheckConfig {
    /// [`CheckConfig::timeout_ms`] as a duration.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.timeout_ms)
    }
}

fn default_https_port() -> u16 {
    443
}

fn default_check_timeout_ms() -> u64 {
    5000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_table_is_the_default() {
        let c: CheckConfig = toml::from_str("").unwrap();
        assert_eq!(c, CheckConfig::default());
        assert_eq!((c.port, c.timeout_ms), (443, 5000));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<CheckConfig>("prot = 8443").is_err());
    }
}
