//! A name's addresses, the way a client of the tailnet finds them.

use crate::CheckConfig;
use std::net::{IpAddr, SocketAddr};

/// A name that did not resolve to any address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The DNS server answered, but with no address (NXDOMAIN, NODATA, another code).
    #[error("{name}: {answer} from {server}")]
    NoAddress {
        /// The name asked for.
        name: String,
        /// The server asked.
        server: SocketAddr,
        /// What it answered.
        answer: String,
    },
    /// The DNS server could not be asked, or did not answer in time.
    #[error("{name}: DNS {server}: {reason}")]
    Dns {
        /// The name asked for.
        name: String,
        /// The server asked.
        server: SocketAddr,
        /// Why not.
        reason: String,
    },
    /// The system resolver failed.
    #[error("{name}: {reason}")]
    System {
        /// The name asked for.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The addresses `name` resolves to: through `cfg.resolver` (A and AAAA, within
/// `cfg.timeout_ms`) when set, otherwise through the system's resolver.
pub fn resolve(cfg: &CheckConfig, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
    use tailshift_shims::dns::{Answer, query};
    match cfg.resolver {
        Some(server) => match query(server, name, cfg.timeout()) {
            Ok(Answer::Addrs(a)) if !a.is_empty() => Ok(a),
            Ok(other) => Err(ResolveError::NoAddress {
                name: name.into(),
                server,
                answer: format!("{other:?}"),
            }),
            Err(e) => Err(ResolveError::Dns { name: name.into(), server, reason: e.to_string() }),
        },
        None => {
            use std::net::ToSocketAddrs;
            (name, cfg.port)
                .to_socket_addrs()
                .map(|i| i.map(|a| a.ip()).collect())
                .map_err(|e| ResolveError::System { name: name.into(), reason: e.to_string() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_server_is_a_dns_error_within_the_timeout() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = silent.local_addr().unwrap();
        let cfg = CheckConfig { resolver: Some(server), timeout_ms: 200, ..Default::default() };
        let t = std::time::Instant::now();
        let e = resolve(&cfg, "grafana.tailnet.test").unwrap_err();
        assert!(matches!(e, ResolveError::Dns { server: s, .. } if s == server), "{e:?}");
        assert!(e.to_string().starts_with(&format!("grafana.tailnet.test: DNS {server}: ")));
        assert!(t.elapsed() < std::time::Duration::from_secs(3));
    }

    #[test]
    fn without_a_resolver_the_system_resolves() {
        let cfg = CheckConfig::default();
        let a = resolve(&cfg, "127.0.0.1").unwrap();
        assert_eq!(a, vec![IpAddr::from([127, 0, 0, 1])]);
    }
}
