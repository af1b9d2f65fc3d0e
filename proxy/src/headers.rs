//! Header policy, toward the upstream and back: hop-by-hop fields removed (RFC 9110 7.6.1),
//! identity and forwarding headers believed only from tailscaled and rebuilt as tsnsrv sent
//! them (`reference/tsnsrv.md` 3.4), a route's own headers added.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use tailshift_routes::headers::is_identity;
use tailshift_routes::{HostHeader, Route};

/// A header name checked at compile time (no parsing on the request path).
macro_rules! name {
    ($s:literal) => {
        const { HeaderName::from_static($s) }
    };
}
pub(crate) use name;

/// RFC 9110 7.6.1 hop-by-hop headers, plus whatever `Connection` names.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    // One pass over the names finds which are there (most messages carry none): seven
    // lookups, each hashing a name, cost more.
    let mut present = 0u8;
    for k in h.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|n| n == k) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    // HOP_BY_HOP[0] is Connection.
    if present & 1 != 0 {
        // The options named: almost always only `keep-alive` (removed below anyway) or
        // `close`; a list is collected only when there is more.
        let options = || {
            h.get_all(http::header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case("keep-alive"))
        };
        let close = options().any(|n| n.eq_ignore_ascii_case("close"));
        if options().any(|n| !n.eq_ignore_ascii_case("close")) {
            let named: Vec<HeaderName> =
                options().filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok()).collect();
            for n in named {
                h.remove(n);
            }
        } else if close {
            h.remove(name!("close"));
        }
    }
    for (i, n) in HOP_BY_HOP.into_iter().enumerate() {
        if present & (1 << i) != 0 {
            h.remove(n);
        }
    }
}

/// The fixed hop-by-hop fields (RFC 9110 7.6.1, and the legacy `Proxy-Connection`): the
/// list route validation refuses in `upstream_headers` too
/// (`tailshift_routes::headers::HOP_BY_HOP`), as names made at compile time.
const HOP_BY_HOP: [HeaderName; 7] = {
    let n = tailshift_routes::headers::HOP_BY_HOP;
    [
        HeaderName::from_static(n[0]),
        HeaderName::from_static(n[1]),
        HeaderName::from_static(n[2]),
        HeaderName::from_static(n[3]),
        HeaderName::from_static(n[4]),
        HeaderName::from_static(n[5]),
        HeaderName::from_static(n[6]),
    ]
};

/// The protocol a request asks to upgrade to (`Connection: upgrade` + `Upgrade: x`).
pub fn upgrade_protocol(h: &HeaderMap) -> Option<String> {
    let conn = h
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
    if !conn {
        return None;
    }
    header(h, "upgrade")
}

/// A header's value when it is text (what `header` would return), as the value itself.
pub fn text_value(h: &HeaderMap, name: &str) -> Option<HeaderValue> {
    h.get(name).filter(|v| v.to_str().is_ok()).cloned()
}

/// A header's value as text.
pub fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Sets a header; UTF-8 text (a decoded display name) goes as its bytes, as Go's net/http
/// sent it under tsnsrv.
pub fn set(h: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
        h.insert(name, v);
    }
}

/// The identity tailscaled's serve put on a request (trusted listener only).
pub struct Identity {
    /// The login name.
    pub login: Option<String>,
    /// The display name, decoded.
    pub name: Option<String>,
    /// The profile picture URL.
    pub picture: Option<String>,
}

/// The login the outgoing request carries (for the access log).
pub fn identity_login(h: &HeaderMap) -> Option<String> {
    header(h, "x-tailscale-user-loginname")
}

/// Who asked, how: what the upstream headers are derived from.
pub struct Requester<'a> {
    /// The name asked for (`Host`, or `X-Forwarded-Host` behind tailscaled); text.
    pub asked: &'a HeaderValue,
    /// The peer address; text.
    pub peer: Option<&'a HeaderValue>,
    /// Through tailscaled's trusted socket.
    pub trusted: bool,
    /// Over TLS (ours or tailscaled's).
    pub tls: bool,
    /// A Funnel request (tailscaled's `Tailscale-Funnel-Request`).
    pub funnel: bool,
    /// An HTTP/2 request (its `cookie` fields are joined into one for HTTP/1.1).
    pub http2: bool,
}

/// Whether a client's header (lower case, `-` spelling) never reaches the upstream: the
/// forwarding chain the proxy rebuilds (`X-Forwarded-Port` too, set from the name asked with
/// `proxy_headers`), identity, and on Funnel the URL overrides that Symfony and IIS route by.
fn dropped(k: &str, funnel: bool) -> bool {
    matches!(
        k,
        "forwarded"
            | "x-forwarded-for"
            | "x-forwarded-host"
            | "x-forwarded-proto"
            | "x-forwarded-port"
    ) || is_identity(k)
        || (funnel && matches!(k, "x-original-url" | "x-rewrite-url"))
}

/// An HTTP/2 request's `cookie` fields (RFC 9113 8.2.3: HTTP/2 clients send one a cookie)
/// joined with `; ` into the one field an HTTP/1.1 upstream expects.
fn join_cookies(h: &mut HeaderMap) {
    let mut all = h.get_all(http::header::COOKIE).iter();
    if all.next().is_none() || all.next().is_none() {
        return;
    }
    let mut joined = Vec::new();
    for v in h.get_all(http::header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        h.insert(http::header::COOKIE, v);
    }
}

/// `value` when it is exactly `text`, else a new value (values derived from the name asked
/// are nearly always the name itself, and reusing it is a reference count, not a copy).
fn reuse_or_new(value: &HeaderValue, text: &str) -> Option<HeaderValue> {
    if value.as_bytes() == text.as_bytes() {
        Some(value.clone())
    } else {
        HeaderValue::from_str(text).ok()
    }
}

/// tsnsrv's `rewrite` (3.4), in its order, with the identity of tailscaled's serve mapped onto
/// tsnsrv's header names: the headers the upstream gets are the client's, minus hop-by-hop and identity fields, plus
/// tsnsrv's forwarding headers, the route's own, and the identity.
pub fn outgoing_headers(
    incoming: HeaderMap,
    route: &Route,
    upstream_authority: &str,
    who: &Requester,
    identity: Option<Identity>,
) -> HeaderMap {
    let Requester { asked, peer, trusted, tls, funnel, http2 } = *who;
    let mut h = incoming;
    strip_hop_by_hop(&mut h);
    // What tailscaled says is read above; nothing a client sends as identity (or as a
    // forwarding chain) goes further. One pass finds whether there is anything to remove.
    // With `_`, a name CGI/WSGI upstreams read as one the proxy sets or strips
    // (`X_Tailscale_User` is `HTTP_X_TAILSCALE_USER` there, `Transfer_Encoding` frames the
    // body to some) goes too; other underscore names pass, as tsnsrv's did. On Funnel, the
    // URL overrides Symfony and IIS route by (`X-Original-URL`, `X-Rewrite-URL`) go too.
    let replaced = |k: &HeaderName| {
        let k = k.as_str();
        if k.contains('_') {
            let k = k.replace('_', "-");
            dropped(&k, funnel)
                || matches!(k.as_str(), "x-forwarded-server" | "x-real-ip" | "x-scheme")
                || tailshift_routes::headers::reserved(&k).is_some()
        } else {
            dropped(k, funnel)
        }
    };
    if h.keys().any(replaced) {
        let gone: Vec<HeaderName> = h.keys().filter(|k| replaced(k)).cloned().collect();
        for k in gone {
            h.remove(k);
        }
    }
    if http2 {
        join_cookies(&mut h);
    }
    let asked_text = asked.to_str().unwrap_or_default();
    // Behind tailscaled a short name stands for the route's first full name.
    let full_host = (trusted && !asked_text.contains('.'))
        .then(|| route.hosts.first().and_then(|h| HeaderValue::from_str(&h.name).ok()))
        .flatten()
        .unwrap_or_else(|| asked.clone());
    let full_text = full_host.to_str().unwrap_or_default();
    let proto = if tls { "https" } else { "http" };
    if let Some(p) = peer {
        h.insert(name!("x-forwarded-for"), p.clone());
    }
    h.insert(name!("x-forwarded-host"), full_host.clone());
    h.insert(name!("x-forwarded-proto"), HeaderValue::from_static(proto));
    let host = match route.host_header {
        // Behind tailscaled the Host is always `localhost`: rebuild it from the name asked.
        HostHeader::Keep if trusted => {
            reuse_or_new(&full_host, full_text.split(':').next().unwrap_or(full_text))
        }
        HostHeader::Keep => Some(asked.clone()),
        HostHeader::Upstream => HeaderValue::from_str(upstream_authority).ok(),
    };
    if let Some(host) = host {
        h.insert(http::header::HOST, host);
    }
    if route.proxy_headers {
        h.insert(name!("x-scheme"), HeaderValue::from_static(proto));
        if let Some(p) = peer {
            h.insert(name!("x-real-ip"), p.clone());
        }
        let (server, port) = match full_text.rsplit_once(':') {
            Some((s, p)) if p.chars().all(|c| c.is_ascii_digit()) => (s, Some(p)),
            _ => (full_text, None),
        };
        if let Some(v) = reuse_or_new(&full_host, server) {
            h.insert(name!("x-forwarded-server"), v);
        }
        if let Some(p) = port {
            set(&mut h, name!("x-forwarded-port"), p);
        }
    }
    for (k, v) in &route.upstream_headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            h.insert(n, v);
        }
    }
    // tsnsrv deletes every outgoing X-Tailscale-* whatever set it, then adds the identity;
    // the client's are gone already, so only the route's own headers can have brought one.
    if !route.upstream_headers.is_empty() {
        let ours: Vec<HeaderName> =
            h.keys().filter(|k| k.as_str().starts_with("x-tailscale-")).cloned().collect();
        for k in ours {
            h.remove(k);
        }
    }
    if route.whois.enabled
        && let Some(id) = identity
    {
        if let Some(login) = id.login {
            if let Some((local, domain)) = login.split_once('@') {
                set(&mut h, name!("x-tailscale-user-loginname-localpart"), local);
                set(&mut h, name!("x-tailscale-user-loginname-domain"), domain);
            }
            set(&mut h, name!("x-tailscale-user-loginname"), &login);
            set(&mut h, name!("x-tailscale-user-displayname"), id.name.as_deref().unwrap_or(""));
            if let Some(p) = id.picture.filter(|p| !p.is_empty()) {
                set(&mut h, name!("x-tailscale-user-profilepicurl"), &p);
            }
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(fields: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in fields {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut n: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        n.sort_unstable();
        n
    }

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_are_removed() {
        let mut h = map(&[
            ("host", "a.test"),
            ("connection", "keep-alive, X-Secret"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("x-secret", "1"),
            ("close", "a field named by Connection: close"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["accept", "host"]);
    }

    #[test]
    fn connection_close_alone_removes_only_the_fixed_set() {
        let mut h = map(&[("connection", "close"), ("close", "x"), ("te", "trailers"), ("a", "1")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["a"]);
        // Nothing hop-by-hop: nothing changes.
        let mut h = map(&[("a", "1"), ("b", "2")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["a", "b"]);
    }
}
