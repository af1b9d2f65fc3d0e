//! The split-DNS responder the proxy hosts (design section 3, split DNS). It is authoritative for one zone
//! of the user's own domain (or the emulation's `tailnet.test`) and answers A/AAAA from one or
//! more records files, the first file naming a name winning (the moved names' file before the
//! legacy one). It re-reads a file when its modification time or size changed, checked when a
//! query arrives: no timer, no watcher thread, nothing running while nobody asks.
//!
//! Names in the zone that no file has are NXDOMAIN; a name with records of the other family
//! gets an empty answer (NODATA); names outside the zone are REFUSED. Messages are hickory's.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tailshift_tailscale::records::{DnsRecord, normalize, parse};

/// A loaded records file and what it was loaded from.
#[derive(Default)]
struct Loaded {
    stamp: Option<(SystemTime, u64)>,
    names: HashMap<String, Vec<IpAddr>>,
}

/// The responder's configuration and its loaded files.
pub struct Responder {
    zone: String,
    files: Vec<PathBuf>,
    ttl: u32,
    loaded: Mutex<Vec<Loaded>>,
}

impl Responder {
    /// A responder for `zone` answering from `files` (earlier files win), with this TTL.
    pub fn new(zone: &str, files: Vec<PathBuf>, ttl: u32) -> Self {
        let n = files.len();
        Responder {
            zone: normalize(zone),
            files,
            ttl,
            loaded: Mutex::new((0..n).map(|_| Loaded::default()).collect()),
        }
    }

    fn in_zone(&self, name: &str) -> bool {
        name == self.zone || name.ends_with(&format!(".{}", self.zone))
    }

    /// The addresses of a name, reloading files that changed; `None` when no file has it.
    pub fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        let name = normalize(name);
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        for (path, l) in self.files.iter().zip(loaded.iter_mut()) {
            let stamp =
                std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
            if stamp != l.stamp {
                // A file that cannot be read or parsed keeps its last good contents.
                let parsed: Option<Vec<DnsRecord>> = match std::fs::read_to_string(path) {
                    Ok(t) => parse(path, &t).ok(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Vec::new()),
                    Err(_) => None,
                };
                if let Some(records) = parsed {
                    let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
                    for r in &records {
                        if let Some(a) = r.addr() {
                            names.entry(r.key()).or_default().push(a);
                        }
                    }
                    *l = Loaded { stamp, names };
                }
            }
            if let Some(a) = l.names.get(&name) {
                return Some(a.clone());
            }
        }
        None
    }

    /// Answers one DNS message; `None` for something that is not a query.
    pub fn answer(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let req = Message::from_vec(packet).ok()?;
        if req.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.add_queries(req.queries.iter().cloned());
        let Some(q) = req.queries.first().filter(|_| req.metadata.op_code == OpCode::Query) else {
            resp.metadata.response_code = ResponseCode::NotImp;
            return resp.to_vec().ok();
        };
        let name = normalize(&q.name().to_ascii());
        if !self.in_zone(&name) {
            resp.metadata.response_code = ResponseCode::Refused;
            return resp.to_vec().ok();
        }
        resp.metadata.authoritative = true;
        match self.lookup(&name) {
            None => resp.metadata.response_code = ResponseCode::NXDomain,
            Some(addrs) => {
                for a in addrs {
                    let rdata = match (a, q.query_type()) {
                        (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(v4)),
                        (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => {
                            RData::AAAA(AAAA(v6))
                        }
                        _ => continue,
                    };
                    resp.add_answer(Record::from_rdata(q.name().clone(), self.ttl, rdata));
                }
            }
        }
        resp.to_vec().ok()
    }

    /// Serves UDP and TCP on `addr` until the task is dropped.
    pub async fn serve(self: Arc<Self>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        // UDP and TCP on one port. With port 0 the kernel picks a UDP port whose TCP twin may
        // be taken (by an outgoing connection, say): pick again.
        let mut attempt = 0;
        let (udp, tcp) = loop {
            // With IP_FREEBIND: the tailnet address may not exist yet (placement B).
            let udp = crate::bind::udp(addr)?;
            let bound = udp.local_addr()?;
            match crate::bind::tcp(&bound.to_string()).await {
                Ok(tcp) => break (udp, tcp),
                Err(e) if addr.port() == 0 && attempt < 20 => {
                    attempt += 1;
                    let _ = e;
                }
                Err(e) => return Err(e),
            }
        };
        let bound = udp.local_addr()?;
        let this = self.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = udp.recv_from(&mut buf).await else { continue };
                if let Some(out) = this.answer(&buf[..n]) {
                    let _ = udp.send_to(&out, peer).await;
                }
            }
        });
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = tcp.accept().await else { continue };
                let this = self.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    loop {
                        let Ok(len) = s.read_u16().await else { return };
                        let mut msg = vec![0u8; len as usize];
                        if s.read_exact(&mut msg).await.is_err() {
                            return;
                        }
                        let Some(out) = this.answer(&msg) else { return };
                        if s.write_u16(out.len() as u16).await.is_err()
                            || s.write_all(&out).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Ok(bound)
    }
}
