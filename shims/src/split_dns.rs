//! The `split-dns` backend: for a zone of your own domain (on a real `ts.net` tailnet MagicDNS
//! answers those names first, so not there), the old name goes into a records file that the
//! responder hosted by `migrate proxy` serves, and clients resolve the zone through it (split
//! DNS in the tailnet's DNS settings, or any resolver forwarding the zone).

use crate::dns::{Answer, query};
use crate::records::RecordsFile;
use crate::shim::{Shim, ShimError, ShimService, Verification};
use std::net::SocketAddr;
use std::time::Duration;

/// The `split-dns` shim.
#[derive(Clone, Debug)]
pub struct SplitDnsShim {
    /// The records file the responder serves.
    pub records: RecordsFile,
    /// Where the responder answers (verify asks it).
    pub responder: SocketAddr,
}

impl Shim for SplitDnsShim {
    fn kind(&self) -> &'static str {
        "split-dns"
    }

    fn describe(&self, s: &ShimService) -> Vec<String> {
        vec![format!(
            "answer `{}` with {} from {} (responder {})",
            s.legacy_name,
            s.proxy_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "),
            self.records.path().display(),
            self.responder
        )]
    }

    fn prepare(&self, s: &ShimService) -> Result<(), ShimError> {
        self.records.set(&s.legacy_name, &s.proxy_addrs).map(|_| ())
    }

    fn complete(&self, _: &ShimService) -> Result<(), ShimError> {
        Ok(())
    }

    fn verify(&self, s: &ShimService) -> Result<Verification, ShimError> {
        verify_dns(self.responder, s)
    }

    fn uncomplete(&self, _: &ShimService) -> Result<(), ShimError> {
        Ok(())
    }

    fn unprepare(&self, s: &ShimService) -> Result<(), ShimError> {
        self.records.remove(&s.legacy_name).map(|_| ())
    }
}

/// Asks a DNS server for the legacy name: it must answer the proxy's addresses, all of them.
pub fn verify_dns(server: SocketAddr, s: &ShimService) -> Result<Verification, ShimError> {
    let answer = query(server, &s.legacy_name, Duration::from_secs(3)).map_err(|e| {
        ShimError::External { what: format!("DNS query to {server}"), message: e.to_string() }
    })?;
    Ok(match answer {
        Answer::Addrs(mut got) => {
            let mut want = s.proxy_addrs.clone();
            got.sort();
            want.sort();
            if got == want {
                Verification::Holds
            } else {
                Verification::Missing(format!(
                    "{server} answers {} with {got:?}, not the proxy's {want:?}",
                    s.legacy_name
                ))
            }
        }
        Answer::NoSuchName => {
            Verification::Missing(format!("{server} says {} does not exist", s.legacy_name))
        }
        Answer::Error(e) => Verification::Missing(format!("{server} answered {e}")),
    })
}
