//! Validation of a whole route table, as far as it needs no listener configuration: what the
//! router could not serve is refused before it is installed. What depends on the proxy's
//! listeners (first-label collisions under a `services` listener) the proxy checks itself.

use crate::route::Route;
use std::collections::{BTreeMap, BTreeSet};

/// Why a route table is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// A value of one route cannot be served.
    #[error("{service}: {option} = {value:?}: {message}")]
    Invalid {
        /// The service.
        service: String,
        /// The field.
        option: String,
        /// The value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// Two routes claim one name and mount.
    #[error("{first} and {second} both claim {name}{mount}")]
    Conflict {
        /// The first route.
        first: String,
        /// The second route.
        second: String,
        /// The name.
        name: String,
        /// The mount.
        mount: String,
    },
}

/// Whether `name` is a DNS name a route can answer for: lower-case labels of letters, digits
/// and inner hyphens (1 to 63 characters each), at most 253 characters, one trailing dot
/// allowed, and not an address: a name whose last label is a number (`10.0.0.1`, `8080`,
/// `0x7f`) is read as an IPv4 address by URL parsers and browsers (WHATWG URL, "ends in a
/// number"). Anything else (a `/`, whitespace, an empty label) could not be asked for, and
/// would reach the file system where a name becomes a socket's name.
pub fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let numeric = |l: &str| {
        l.bytes().all(|b| b.is_ascii_digit())
            || l.strip_prefix("0x").is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(label_ok)
        && !name.rsplit('.').next().is_some_and(numeric)
}

/// Whether `id` is a service id: `host/name`, as a plan writes it (`ServiceId`), or a bare
/// `name` in a table written by hand; each part host-name labels joined by dots (letters, digits, `-`, `_`; 1 to 63 characters each; the
/// host may be `?` when the inventory did not know it). The id is a metrics label, a log field
/// and a file's key: no `/` beyond the one, no empty label (so no `.` or `..`), no
/// whitespace or control bytes.
pub fn is_service_id(id: &str) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let dotted = |s: &str| s.len() <= 253 && s.split('.').all(label);
    match id.split_once('/') {
        Some((host, name)) => (host == "?" || dotted(host)) && dotted(name),
        None => dotted(id),
    }
}

/// Validates a whole table: every route by itself ([`validate_route`]), every service once,
/// and no two routes claiming one name and mount, whatever their listeners (the router picks
/// by name and path; `x` and `x.` are one name).
pub fn validate_table(routes: &[Route]) -> Result<(), RouteError> {
    let mut seen: BTreeMap<(String, String), &str> = BTreeMap::new();
    let mut services = BTreeSet::new();
    for r in routes {
        validate_route(r)?;
        if !services.insert(&r.service) {
            return Err(RouteError::Invalid {
                service: r.service.clone(),
                option: "service".into(),
                value: r.service.clone(),
                message: "appears twice in the table".into(),
            });
        }
        for h in &r.hosts {
            let name = h.name.strip_suffix('.').unwrap_or(&h.name).to_string();
            if let Some(first) = seen.insert((name, h.mount.clone()), &r.service) {
                return Err(RouteError::Conflict {
                    first: first.to_string(),
                    second: r.service.clone(),
                    name: h.name.clone(),
                    mount: h.mount.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Validates one route by itself, each refusal naming the route, the field and the value:
/// its service id ([`is_service_id`]); names ([`is_dns_name`]) and mounts ([`mount_problem`]);
/// the upstream URL (`http` or `https`, no userinfo, fragment or port 0); tsnsrv
/// prefixes ([`prefix_problem`]); `upstream_headers` ([`crate::headers::reserved`], valid
/// names and values); `redirect_to` ([`redirect_problem`]).
pub fn validate_route(r: &Route) -> Result<(), RouteError> {
    let invalid = |option: &str, value: &str, message: &str| RouteError::Invalid {
        service: r.service.clone(),
        option: option.into(),
        value: value.into(),
        message: message.into(),
    };
    if !is_service_id(&r.service) {
        return Err(invalid(
            "service",
            &r.service,
            "a service is `host/name` (or a bare `name`), each a host name's label (letters, digits, - and _)",
        ));
    }
    let url = &r.upstream.url;
    if let Some(why) = upstream_problem(url) {
        return Err(invalid("upstream.url", url.as_str(), why));
    }
    if let Some(addr) = &r.upstream.tcp_addr
        && let Some(why) = tcp_addr_problem(addr)
    {
        return Err(invalid("upstream.tcp_addr", addr, why));
    }
    if let Some(path) = &r.upstream.unix
        && path.chars().any(char::is_control)
    {
        return Err(invalid("upstream.unix", path, "a socket path has no control characters"));
    }
    if r.hosts.is_empty() {
        return Err(invalid("hosts", "[]", "a route answers for at least one name"));
    }
    for h in &r.hosts {
        if !is_dns_name(&h.name) {
            return Err(invalid(
                "hosts.name",
                &h.name,
                "names are lower-case DNS names (not addresses)",
            ));
        }
        if let Some(why) = mount_problem(&h.mount) {
            return Err(invalid("hosts.mount", &h.mount, why));
        }
    }
    for p in &r.prefixes {
        if let Some(why) = prefix_problem(p) {
            return Err(invalid("prefixes", p, why));
        }
    }
    for (k, v) in &r.upstream_headers {
        let token = !k.is_empty()
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(invalid("upstream_headers", k, "not a header name"));
        }
        if let Some(why) = crate::headers::reserved(k) {
            return Err(invalid("upstream_headers", k, why));
        }
        if v.chars().any(|c| c.is_control() && c != '\t') {
            return Err(invalid(
                &format!("upstream_headers.{k}"),
                v,
                "a header value has no control characters",
            ));
        }
    }
    if let Some(to) = &r.redirect_to
        && let Some(why) = redirect_problem(to)
    {
        return Err(invalid("redirect_to", to, why));
    }
    Ok(())
}

/// What is wrong with an upstream URL, if anything: only `http` and `https` are proxied; a
/// userinfo (tsnsrv's transport never sent it) or a fragment are not a place to dial, and port
/// 0 cannot be dialed. A query is kept: tsnsrv merged it into every request's (`SetURL`), and
/// so does the proxy (`upstream_query`).
pub fn upstream_problem(url: &url::Url) -> Option<&'static str> {
    if !matches!(url.scheme(), "http" | "https") {
        Some("only http:// and https:// upstreams are proxied")
    } else if !url.username().is_empty() || url.password().is_some() {
        Some("an upstream URL carries no user or password (set an upstream header instead)")
    } else if url.fragment().is_some() {
        Some("an upstream URL has no fragment")
    } else if url.port() == Some(0) {
        Some("port 0 cannot be dialed")
    } else {
        None
    }
}

/// Whether a path segment is `.` or `..`, also percent-encoded (`%2e`, any case).
fn is_dot_segment(seg: &str) -> bool {
    let lower = seg.to_ascii_lowercase();
    let decoded = lower.replace("%2e", ".");
    decoded == "." || decoded == ".."
}

/// What is wrong with a fixed upstream address, if anything: it is `host:port` (as tsnsrv's
/// `upstreamTCPAddr` and Go's dialer take it), a port from 1 to 65535, no whitespace or
/// control characters (a line feed would reach logs and the dialer's error text).
pub fn tcp_addr_problem(addr: &str) -> Option<&'static str> {
    if addr.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Some("an address has no whitespace or control characters");
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => None,
        _ => Some("an address is host:port, with a port from 1 to 65535"),
    }
}

/// What an upstream may read in a mount's or prefix's segments once it decodes them, if
/// anything: every `%` starts an escape (`%XX`), the decoded text is UTF-8 with no control
/// characters (`%00`, C1 such as U+0085, raw or encoded), and no segment reads as a separator
/// or a dot-segment once normalised ([`crate::segment::decoded_segment_risk`]: `/．．/b`,
/// `/%EF%BC%8E%EF%BC%8E/b`, `/..%20/b`, `/a%2Fb`).
fn decoded_problem(path: &str) -> Option<&'static str> {
    use crate::segment::{SegmentRisk, decoded_segment_risk, percent_decoded};
    for seg in path.split('/') {
        let Some(decoded) = percent_decoded(seg) else {
            return Some("every % starts an escape (%XX)");
        };
        let Ok(text) = std::str::from_utf8(&decoded) else {
            return Some("the path is UTF-8 once decoded");
        };
        match decoded_segment_risk(text) {
            None => {}
            Some(SegmentRisk::Control) => return Some("no control characters, raw or encoded"),
            Some(SegmentRisk::Separator) => {
                return Some("no /, \\ or % once decoded and normalised (%2F, ／, ％)");
            }
            Some(SegmentRisk::Dots) => {
                return Some(
                    "no segment of dots and spaces once decoded and normalised (．．, ..%20)",
                );
            }
        }
    }
    None
}

/// What is wrong with a mount, if anything: it starts with `/`, has no dot-segments, no
/// empty segment (`//`), no `?`, `#`, `;`, `\`, whitespace or control bytes, and nothing that
/// decodes or normalises into one ([`decoded_problem`]): a mount is matched against the clean
/// paths the proxy routes, and one no clean path can reach (or that reads differently to the
/// upstream) is a mistake.
pub fn mount_problem(mount: &str) -> Option<&'static str> {
    if !mount.starts_with('/') {
        Some("a mount starts with /")
    } else if mount.bytes().any(|b| b <= b' ' || b == 0x7f || b"?#;\\".contains(&b)) {
        Some("a mount has no ?, #, ;, \\, whitespace or control characters")
    } else if mount.contains("//") {
        Some("a mount has no empty segment (//)")
    } else if mount[1..].split('/').any(is_dot_segment) {
        Some("a mount has no . or .. segment")
    } else {
        decoded_problem(mount)
    }
}

/// What is wrong with a tsnsrv prefix, if anything: `tailnet:` or `funnel:` (or nothing) then
/// a path starting with `/`; no control bytes. tsnsrv matched the text after the kind as a
/// plain string prefix, so an empty one (`funnel:`) allowed every path and an unknown kind
/// (`public:/x`) was a bare prefix no path can match: both are refused (`funnel:/` allows
/// every path, and says so). Prefixes are matched against clean paths, so one with a `.` or
/// `..` segment (`funnel:/..`, `/pub/%2e%2e/`), `//` (`funnel://evil`), `\`, `?`, `#` or
/// whitespace can never match, or reads as another path to the upstream, and so can one that
/// decodes or normalises into such ([`decoded_problem`]).
pub fn prefix_problem(prefix: &str) -> Option<&'static str> {
    let rest = prefix
        .strip_prefix("tailnet:")
        .or_else(|| prefix.strip_prefix("funnel:"))
        .unwrap_or(prefix);
    if prefix.chars().any(char::is_control) {
        Some("a prefix has no control characters")
    } else if rest.is_empty() {
        Some(
            "an empty prefix allows every path: write `/` (or `funnel:/`, `tailnet:/`) if that is meant",
        )
    } else if !rest.starts_with('/') {
        Some("a prefix is `/path`, `tailnet:/path` or `funnel:/path`")
    } else if rest.bytes().any(|b| b == b' ' || b"?#\\".contains(&b)) {
        Some("a prefix has no ?, #, \\ or whitespace: no clean path holds them")
    } else if rest.contains("//") {
        Some("a prefix has no empty segment (//): no clean path holds one")
    } else if rest[1..].split('/').any(is_dot_segment) {
        Some("a prefix has no . or .. segment: no clean path holds one")
    } else {
        decoded_problem(rest)
    }
}

/// What is wrong with a `redirect_to`, if anything. The proxy answers 308 to it with the
/// request's path appended, so it is a place a browser goes: an absolute `http`/`https` URL
/// with a host and no userinfo, or a path starting with one `/` (`//evil` and `/\evil` are
/// read by browsers as another host); never `javascript:` or `data:`; no whitespace or
/// control bytes.
pub fn redirect_problem(to: &str) -> Option<&'static str> {
    if to.chars().any(|c| c <= ' ' || c.is_control() || c == '\\') {
        return Some("a redirect has no whitespace, backslash or control characters");
    }
    if to.starts_with('/') {
        return (to.starts_with("//")).then_some("a redirect path starts with a single /");
    }
    let lower = to.get(..8).unwrap_or(to).to_ascii_lowercase();
    let absolute = lower.starts_with("http://") || lower.starts_with("https://");
    match url::Url::parse(to) {
        Ok(u)
            if absolute
                && matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.username().is_empty()
                && u.password().is_none() =>
        {
            None
        }
        _ => Some(
            "a redirect is an absolute http(s) URL without userinfo, or a path starting with /",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Route {
        serde_json::from_value(serde_json::json!({
            "service": "box/app",
            "hosts": [{"name": "app.tailnet.test", "mount": "/"}],
            "listen": {"kind": "https", "port": 443},
            "upstream": {"url": "http://127.0.0.1:8080/base"},
            "strip_prefix": false,
            "host_header": "keep",
            "proxy_headers": false,
            "funnel": true,
            "tailnet": true,
            "whois": {"enabled": false, "timeout_ms": 0},
        }))
        .unwrap()
    }

    /// The field a refusal names, or `None` when the route passes.
    fn refused(change: impl FnOnce(&mut Route)) -> Option<String> {
        let mut r = route();
        change(&mut r);
        match validate_route(&r) {
            Ok(()) => None,
            Err(RouteError::Invalid { option, .. }) => Some(option),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn service_ids_are_host_slash_name() {
        for ok in ["box/app", "?/app", "storage/yarr-dev", "box.lan/my_app", "box/a.b.test", "app"]
        {
            assert!(is_service_id(ok), "{ok}");
        }
        for bad in
            ["", "box/", "/app", "../../x", "box/..", "box/.x", "box/a/b", "box/a\nx 1", "box/a b"]
        {
            assert!(!is_service_id(bad), "{bad:?}");
            assert_eq!(refused(|r| r.service = bad.into()).as_deref(), Some("service"), "{bad:?}");
        }
    }

    #[test]
    fn addresses_are_no_route_names() {
        for bad in ["127.0.0.1", "10.0.0.1.", "8080", "a.0x7f", "1.2.3.04"] {
            assert!(!is_dns_name(bad), "{bad}");
        }
        for ok in ["app.tailnet.test", "1password.example", "a1.b2", "x0x7f.test"] {
            assert!(is_dns_name(ok), "{ok}");
        }
    }

    #[test]
    fn mounts_are_clean_paths() {
        for bad in [
            "app",
            "/a/../b",
            "/a/./b",
            "/a/%2e%2E/b",
            "/..",
            "/a//b",
            "/a?x",
            "/a#x",
            "/a;x",
            "/a\r\nb",
            "/a\\b",
            "/a b",
        ] {
            let got = refused(|r| r.hosts[0].mount = bad.into());
            assert_eq!(got.as_deref(), Some("hosts.mount"), "{bad:?}");
        }
        // The attacker pass: escapes, look-alike dots and C1 controls, raw or encoded.
        for bad in [
            "/a%00",
            "/a%",
            "/a%4",
            "/a%zz",
            "/\u{FF0E}\u{FF0E}/b",
            "/%EF%BC%8E%EF%BC%8E/b",
            "/\u{FE30}/b",
            "/..%20/b",
            "/a\u{85}b",
            "/a%C2%85b",
            "/a\u{9F}",
            "/a%2Fb",
            "/a%ff",
        ] {
            let got = refused(|r| r.hosts[0].mount = bad.into());
            assert_eq!(got.as_deref(), Some("hosts.mount"), "{bad:?}");
        }
        for ok in ["/", "/app", "/app/", "/a/...b/c", "/%41", "/caf%C3%A9", "/café"] {
            assert_eq!(refused(|r| r.hosts[0].mount = ok.into()), None, "{ok}");
        }
    }

    #[test]
    fn prefixes_have_a_kind_and_a_path() {
        for bad in [
            "funnel:",
            "tailnet:",
            "",
            "public:/x",
            "x",
            "funnel:x",
            "/a\nb",
            "funnel:/..",
            "funnel:/.",
            "funnel://evil",
            "funnel:/pub\\",
            "funnel:/pub/%2e%2e/",
            "funnel:/pub/../x",
            "funnel:/a b",
            "funnel:/a?x",
            "funnel:/a#x",
            "funnel:/pub/%",
            "funnel:/pub/%00",
            "funnel:/pub/\u{85}",
            "funnel:/\u{FF0E}\u{FF0E}/",
            "funnel:/..%C2%A0/",
        ] {
            let got = refused(|r| r.prefixes = vec![bad.into()]);
            assert_eq!(got.as_deref(), Some("prefixes"), "{bad:?}");
        }
        for ok in
            ["funnel:/", "tailnet:/", "/", "/api", "funnel:/pub/", "funnel:/pub", "/a.", "/..x"]
        {
            assert_eq!(refused(|r| r.prefixes = vec![ok.into()]), None, "{ok}");
        }
    }

    #[test]
    fn upstream_urls_are_places_to_dial() {
        for bad in [
            "http://u:p@127.0.0.1:1/",
            "http://u@127.0.0.1:1/",
            "http://127.0.0.1:1/#f",
            "http://127.0.0.1:0/",
            "ftp://127.0.0.1/",
        ] {
            let got = refused(|r| r.upstream.url = bad.parse().unwrap());
            assert_eq!(got.as_deref(), Some("upstream.url"), "{bad}");
        }
        for bad in ["127.0.0.1:1\r\nX: y", "127.0.0.1:1\u{85}", "a b:1", "127.0.0.1", ":80", "h:0"]
        {
            let got = refused(|r| r.upstream.tcp_addr = Some(bad.into()));
            assert_eq!(got.as_deref(), Some("upstream.tcp_addr"), "{bad:?}");
        }
        for ok in ["127.0.0.1:8080", "[::1]:80", "app.internal:443"] {
            assert_eq!(refused(|r| r.upstream.tcp_addr = Some(ok.into())), None, "{ok}");
        }
        assert_eq!(refused(|r| r.hosts.clear()).as_deref(), Some("hosts"));
        // tsnsrv merged a toURL query into each request's; the proxy does too.
        assert_eq!(refused(|r| r.upstream.url = "http://127.0.0.1:1/?k=v".parse().unwrap()), None);
    }

    #[test]
    fn routes_set_no_framing_hop_by_hop_host_or_identity_header() {
        for name in ["Content-Length", "Transfer-Encoding", "Host", "X-Tailscale-User", "a b"] {
            let got = refused(|r| {
                r.upstream_headers.insert(name.into(), "1".into());
            });
            assert_eq!(got.as_deref(), Some("upstream_headers"), "{name}");
        }
        for value in ["1\r\nX-B: 2", "1\u{85}X-B: 2", "\u{9f}"] {
            let got = refused(|r| {
                r.upstream_headers.insert("X-A".into(), value.into());
            });
            assert_eq!(got.as_deref(), Some("upstream_headers.X-A"), "{value:?}");
        }
        assert_eq!(
            refused(|r| {
                r.upstream_headers.insert("X-Forwarded-Proto".into(), "https".into());
            }),
            None
        );
    }

    #[test]
    fn redirects_go_to_web_pages_only() {
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "//evil.example",
            "/\\evil.example",
            "https://u:p@evil.example/",
            "https:evil.example",
            "ftp://x.example/",
            "/a b",
            "relative",
            "/a\u{85}b",
            "https://x.example/\u{9f}",
        ] {
            let got = refused(|r| r.redirect_to = Some(bad.into()));
            assert_eq!(got.as_deref(), Some("redirect_to"), "{bad:?}");
        }
        for ok in ["https://node.tailnet.test/app", "http://x.example", "/", "/app/"] {
            assert_eq!(refused(|r| r.redirect_to = Some(ok.into())), None, "{ok}");
        }
    }
}
