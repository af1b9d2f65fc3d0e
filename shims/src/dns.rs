//! A small DNS client: asks one server for a name's A and AAAA records (the split-DNS shim's
//! verification and apply's resolution check use it; the responder is the proxy's).

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};
use tailshift_tailscale::records::normalize;

/// What a DNS server answered for a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// These addresses (possibly none: NODATA).
    Addrs(Vec<IpAddr>),
    /// NXDOMAIN.
    NoSuchName,
    /// Another response code.
    Error(String),
}

/// Asks `server` (UDP) for the A and AAAA records of `name`.
pub fn query(server: SocketAddr, name: &str, timeout: Duration) -> std::io::Result<Answer> {
    let mut addrs = Vec::new();
    for rtype in [RecordType::A, RecordType::AAAA] {
        let fqdn = Name::from_ascii(format!("{}.", normalize(name)))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let mut msg = Message::query();
        msg.metadata.id = rand_id();
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(fqdn, rtype));
        let bytes = msg.to_vec().map_err(|e| std::io::Error::other(e.to_string()))?;
        let bind: SocketAddr =
            if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
        let sock = std::net::UdpSocket::bind(bind)?;
        sock.set_read_timeout(Some(timeout))?;
        sock.connect(server)?;
        sock.send(&bytes)?;
        let mut buf = vec![0u8; 4096];
        let resp = loop {
            let n = sock.recv(&mut buf)?;
            let Ok(m) = Message::from_vec(&buf[..n]) else { continue };
            if m.metadata.id == msg.metadata.id {
                break m;
            }
        };
        match resp.metadata.response_code {
            ResponseCode::NoError => {}
            ResponseCode::NXDomain => return Ok(Answer::NoSuchName),
            other => return Ok(Answer::Error(other.to_string())),
        }
        for r in &resp.answers {
            match &r.data {
                RData::A(a) => addrs.push(IpAddr::V4(a.0)),
                RData::AAAA(a) => addrs.push(IpAddr::V6(a.0)),
                _ => {}
            }
        }
    }
    Ok(Answer::Addrs(addrs))
}

fn rand_id() -> u16 {
    let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    (t.subsec_nanos() ^ std::process::id()) as u16
}
