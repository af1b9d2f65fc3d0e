//! Binding TCP listeners and the responder's UDP socket with `IP_FREEBIND`: in placement B the
//! proxy binds the node's tailnet address, which tailscaled assigns to `tailscale0` only once it
//! is up. With the option the bind succeeds before the address exists (the socket receives once
//! it does), so the unit can start without waiting for tailscaled to finish connecting.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;

fn socket(addr: SocketAddr, ty: Type, protocol: Protocol) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(protocol))?;
    if addr.is_ipv4() {
        s.set_freebind_v4(true)?;
    } else {
        s.set_freebind_v6(true)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

/// A TCP listener on `addr` (`ip:port`, or a name resolved first: each address tried in
/// turn), like `TcpListener::bind` (`SO_REUSEADDR`, backlog 1024) plus `IP_FREEBIND`.
pub async fn tcp(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let bound = (|| {
            let s = socket(a, Type::STREAM, Protocol::TCP)?;
            s.set_reuse_address(true)?;
            s.bind(&a.into())?;
            s.listen(1024)?;
            tokio::net::TcpListener::from_std(s.into())
        })();
        match bound {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: no address"))
    }))
}

/// A UDP socket on `addr`, with `IP_FREEBIND`.
pub fn udp(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let s = socket(addr, Type::DGRAM, Protocol::UDP)?;
    s.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(s.into())
}

#[cfg(test)]
mod tests {
    /// 192.0.2.0/24 (TEST-NET-1) is on no interface of a test machine: a plain bind fails, a
    /// free bind succeeds. Nothing is sent anywhere.
    #[tokio::test]
    async fn an_address_the_host_does_not_have_yet_can_be_bound() {
        let plain = std::net::TcpListener::bind("192.0.2.1:0");
        assert!(plain.is_err(), "the test address is on this machine: {plain:?}");
        let l = super::tcp("192.0.2.1:0").await.unwrap();
        assert_eq!(l.local_addr().unwrap().ip().to_string(), "192.0.2.1");
        let u = super::udp("192.0.2.1:0".parse().unwrap()).unwrap();
        assert_eq!(u.local_addr().unwrap().ip().to_string(), "192.0.2.1");
        // Loopback still works as before.
        let l = super::tcp("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let (c, a) = tokio::join!(tokio::net::TcpStream::connect(("127.0.0.1", port)), l.accept());
        assert!(c.is_ok() && a.is_ok());
    }
}
