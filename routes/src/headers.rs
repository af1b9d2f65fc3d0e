//! The header names the proxy keeps for itself, written once: the proxy's request path strips
//! and sets them (`tailshift_proxy::handler`), and route validation refuses a route whose
//! `upstream_headers` would set one ([`reserved`]).

/// The fixed hop-by-hop fields (RFC 9110 7.6.1, and the legacy `Proxy-Connection`), lower
/// case; `Connection` first. The proxy removes them (and what `Connection` names) from every
/// message it forwards.
pub const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The prefixes of the identity headers, lower case: tailscaled's serve sends `Tailscale-*`
/// (believed only on the trusted sockets), the proxy sends `X-Tailscale-*` from whois. A
/// client's are always dropped, and no route may set one.
pub const IDENTITY_PREFIXES: [&str; 2] = ["tailscale-", "x-tailscale-"];

/// Whether a lower-case name is an identity header ([`IDENTITY_PREFIXES`]).
#[inline]
pub fn is_identity(lower: &str) -> bool {
    IDENTITY_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// Why a route may not set the header `name` (any case; `_` read as `-`, as CGI and WSGI
/// upstreams read it) in its `upstream_headers`, or `None` when it may.
///
/// - `Content-Length` and the hop-by-hop fields frame the message or the connection: a
///   route's value would tell the upstream where the request ends, a smuggled request after
///   it (tsnsrv's Go transport ignored `Content-Length`, `Transfer-Encoding` and `Trailer`).
/// - `Host` has a field of its own, `host_header` (Go ignored a `Host` header too).
/// - Identity headers ([`IDENTITY_PREFIXES`]) come from tailscaled only (tsnsrv deleted every
///   `X-Tailscale-*` a route set).
pub fn reserved(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase().replace('_', "-");
    if lower == "content-length" || HOP_BY_HOP.contains(&lower.as_str()) {
        Some(
            "framing and hop-by-hop headers are the proxy's own (a route's value would change where the upstream thinks the request ends)",
        )
    } else if lower == "host" {
        Some("the upstream's Host is chosen by host_header")
    } else if is_identity(&lower) {
        Some("identity headers come from tailscaled only")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_hop_by_hop_host_and_identity_names_are_reserved() {
        for n in [
            "Content-Length",
            "transfer-encoding",
            "Transfer_Encoding",
            "Connection",
            "Keep-Alive",
            "Proxy-Connection",
            "TE",
            "Trailer",
            "Upgrade",
            "Host",
            "X-Tailscale-User-LoginName",
            "x_tailscale_user",
            "Tailscale-User-Login",
        ] {
            assert!(reserved(n).is_some(), "{n}");
        }
        for n in ["X-Forwarded-Proto", "Authorization", "X-Api-Key", "X-Tailscaled"] {
            assert_eq!(reserved(n), None, "{n}");
        }
    }
}
