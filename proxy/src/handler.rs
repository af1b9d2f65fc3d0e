//! One request, top to bottom: which name was asked for, which route, Funnel and prefix
//! rules, tsnsrv's headers toward the upstream, forward, answer (`reference/tsnsrv.md` 3).

use super::h1::SendError;
use super::path::PathDecision;
use super::prefix::Via;
use super::routes::RouteTable;
use super::routes::Routed;
use super::upstream::Connector;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::{Body as _, Incoming};
use hyper_util::client::legacy::Client;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use tailshift_routes::headers::is_identity;
use tailshift_routes::{HostHeader, Listen, Route};

/// Response bodies: streamed from the upstream, or small synthetic ones.
pub type Body = BoxBody<Bytes, super::pool::BodyError>;

/// What the request path shares: the swappable route table and the upstream client (whose pool
/// outlives route swaps).
pub struct Shared {
    /// The current route table (shared with the certificate resolver).
    pub routes: Arc<ArcSwap<RouteTable>>,
    /// Dials upstreams and auth services (its registry follows the installed tables).
    pub connector: Connector,
    /// Pooled HTTP/1.1 connections toward upstreams.
    pub pool: Arc<super::pool::Pool>,
    /// Write the `served` access-log line.
    pub access_log: bool,
    /// Client toward forward-auth services (bodiless requests; redirects are never followed).
    pub auth_client: Client<Connector, http_body_util::Empty<Bytes>>,
    /// tsnsrv's metrics.
    pub metrics: super::metrics::Metrics,
    /// Called after every table install (certificate fetcher, Service sockets).
    pub installed: std::sync::Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
    /// Identity lookups through the LocalAPI, when configured.
    pub whois: Option<super::whois::Whois>,
    /// The tailnet's address ranges (TCP peers inside them are looked up by whois).
    pub tailnet_ranges: Vec<(IpAddr, u8)>,
}

impl Shared {
    /// Installs a validated table: its dials become known first, then the swap.
    pub fn install(&self, table: RouteTable) {
        self.connector.register(table.dials());
        self.pool.retain(table.dial_keys());
        let services: std::collections::BTreeSet<&str> =
            table.routes.iter().map(|r| r.route.service.as_str()).collect();
        self.metrics.retain(&services);
        self.routes.store(Arc::new(table));
        for f in self.installed.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            f();
        }
    }

    /// Registers something to run after every table install.
    pub fn on_install(&self, f: Box<dyn Fn() + Send + Sync>) {
        self.installed.lock().unwrap_or_else(|p| p.into_inner()).push(f);
    }
}

/// Where a connection came from.
#[derive(Clone, Debug)]
pub enum Origin {
    /// tailscaled's serve on the node's trusted unix socket (routes by `X-Forwarded-Host`).
    Trusted,
    /// tailscaled's serve for one Tailscale Service, on that Service's socket: the socket
    /// names the route (by the first label of its legacy name).
    Service(Arc<str>),
    /// A plain HTTP TCP listener; the peer address.
    Http(Option<Peer>),
    /// The HTTPS listener; the peer address, and what the connection's certificate was
    /// presented for (`None` when the client sent no SNI).
    Https(Option<Peer>, Option<Arc<super::tls::Presented>>),
}

/// A TCP peer's address as a header value, written once per connection: every request on it
/// carries the same text in X-Forwarded-For and X-Real-Ip, and a clone is a reference count.
#[derive(Clone, Debug)]
pub struct Peer(HeaderValue);

impl Peer {
    /// The peer at `ip`.
    pub fn new(ip: IpAddr) -> Peer {
        // An address's text is always a valid header value.
        Peer(HeaderValue::try_from(ip.to_string()).unwrap_or(HeaderValue::from_static("")))
    }
}

fn synthetic(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(body.as_bytes())).map_err(|never| match never {}).boxed(),
    );
    *r.status_mut() = status;
    if !body.is_empty() {
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    r
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    r
}

/// The Tailscale Service a request came through (`svc:<label>`), for whois: the capabilities
/// are then the grants toward that Service, as tsnsrv's own node for it had.
fn service_of(origin: &Origin) -> Option<String> {
    match origin {
        Origin::Service(label) => Some(format!("svc:{label}")),
        _ => None,
    }
}

/// The route's own name the client asked for (its spelling, case and port aside; a short name
/// is its full name), so a metrics label can take only as many values as the route has names:
/// a client must not grow the proxy's memory by spelling one name many ways.
fn canonical_name<'a>(route: &'a tailshift_routes::Route, asked: &str) -> &'a str {
    let host = super::routes::bare_host(asked);
    route
        .hosts
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(host))
        .or_else(|| {
            route.hosts.iter().find(|h| {
                h.name.split('.').next().is_some_and(|first| first.eq_ignore_ascii_case(host))
            })
        })
        .or(route.hosts.first())
        .map(|h| h.name.as_str())
        .unwrap_or("")
}

/// Requests answered before any routing: a transfer coding other than `chunked` (501),
/// `CONNECT` (405; the proxy is no tunnel), `OPTIONS *`
/// (the proxy's own answer), two `Host` headers (400), and an HTTP/2 `host` that differs from
/// `:authority` (400, RFC 9113 8.3.1).
fn refuse_unusual(req: &Request<Incoming>) -> Option<Response<Body>> {
    if req.method() == http::Method::CONNECT {
        return Some(synthetic(StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not served\n"));
    }
    // RFC 9112 6.1: a transfer coding the proxy cannot decode is answered 501. hyper decodes
    // only `chunked`: a `gzip, chunked` body forwarded as chunked would lose its gzip. Only a
    // request with a body can carry one (HTTP/2 has no Transfer-Encoding).
    if !req.body().is_end_stream() {
        let mut te = req.headers().get_all(http::header::TRANSFER_ENCODING).iter();
        if let Some(first) = te.next()
            && (te.next().is_some()
                || !first.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked"))
        {
            return Some(synthetic(
                StatusCode::NOT_IMPLEMENTED,
                "only the chunked transfer coding is accepted\n",
            ));
        }
    }
    if req.method() == http::Method::OPTIONS && req.uri() == "*" {
        let mut r = empty(StatusCode::NO_CONTENT);
        r.headers_mut().insert(
            http::header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
        return Some(r);
    }
    // A target's userinfo (`http://user@host/`, or an HTTP/2 `:authority` with one) has no
    // meaning for a server (RFC 9110 4.2.4, RFC 9113 8.3.1): refused, never routed.
    if req.uri().authority().is_some_and(|a| a.as_str().contains('@')) {
        return Some(synthetic(StatusCode::BAD_REQUEST, "userinfo in the request target\n"));
    }
    let mut hosts = req.headers().get_all(http::header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Some(synthetic(StatusCode::BAD_REQUEST, "more than one Host header\n"));
    }
    if req.version() == http::Version::HTTP_2
        && let (Some(h), Some(a)) = (first, req.uri().authority())
        && !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes())
    {
        return Some(synthetic(StatusCode::BAD_REQUEST, "host differs from :authority\n"));
    }
    None
}

/// The answer to a path that is not forwarded.
fn path_answer(decision: PathDecision) -> Response<Body> {
    match decision {
        PathDecision::Redirect(location) => {
            let mut r = empty(StatusCode::MOVED_PERMANENTLY);
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            r
        }
        PathDecision::Refuse(why) => synthetic(StatusCode::BAD_REQUEST, why),
        PathDecision::NotAllowed => synthetic(StatusCode::NOT_FOUND, "404 page not found\n"),
        // Never asked: a forwarded path is no answer.
        PathDecision::Forward { .. } => empty(StatusCode::BAD_GATEWAY),
    }
}

fn redirect(location: &str) -> Response<Body> {
    let mut r = empty(StatusCode::PERMANENT_REDIRECT);
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}

/// A header name checked at compile time (no parsing on the request path).
macro_rules! name {
    ($s:literal) => {
        const { HeaderName::from_static($s) }
    };
}

/// RFC 9110 7.6.1 hop-by-hop headers, plus whatever `Connection` names.
fn strip_hop_by_hop(h: &mut HeaderMap) {
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
fn upgrade_protocol(h: &HeaderMap) -> Option<String> {
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

/// `host[:port]` of a URL, the port only when it is not the scheme's default.
pub(super) fn authority(u: &url::Url) -> String {
    let host = u.host_str().unwrap_or("localhost");
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// A header's value when it is text (what `header` would return), as the value itself.
fn text_value(h: &HeaderMap, name: &str) -> Option<HeaderValue> {
    h.get(name).filter(|v| v.to_str().is_ok()).cloned()
}

/// A rewritten request target, `None` when it cannot be one.
fn text_target(t: String) -> Option<http::uri::PathAndQuery> {
    http::uri::PathAndQuery::from_maybe_shared(Bytes::from(t)).ok()
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Sets a header; UTF-8 text (a decoded display name) goes as its bytes, as Go's net/http
/// sent it under tsnsrv.
fn set(h: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
        h.insert(name, v);
    }
}

/// The identity tailscaled's serve put on a request (trusted listener only).
struct Identity {
    login: Option<String>,
    name: Option<String>,
    picture: Option<String>,
}

/// Serves one request; `body_clock` times the reads of its body, when it has one.
pub async fn handle(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    origin: Origin,
    body_clock: Option<super::watchdog::BodyClock>,
) -> Result<Response<Body>, hyper::Error> {
    let started = Instant::now();
    let trusted = matches!(origin, Origin::Trusted | Origin::Service(_));
    if let Some(refused) = refuse_unusual(&req) {
        return Ok(refused);
    }
    // `Upgrade: h2c` is a hop-by-hop offer to this connection, never the upstream's.
    if header(req.headers(), "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("h2c")) {
        req.headers_mut().remove(http::header::UPGRADE);
    }
    // A WebSocket (or other) upgrade: keep the client's side to splice after the 101.
    let upgrade =
        upgrade_protocol(req.headers()).map(|proto| (proto, hyper::upgrade::on(&mut req)));
    let h = req.headers();
    // Which name, and through what, the client came: believed only from tailscaled. Values
    // are kept as the request's own header values (a clone is a reference count, not a copy).
    // An absolute-form target (and HTTP/2's `:authority`) names the host (RFC 9112 3.2.2).
    let asked = if trusted {
        text_value(h, "x-forwarded-host")
    } else {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .or_else(|| text_value(h, "host"))
    };
    let Some(asked_value) = asked else {
        return Ok(synthetic(StatusCode::BAD_REQUEST, "missing Host\n"));
    };
    let asked = asked_value.to_str().unwrap_or_default();
    // The connection's certificate vouches only for the names it covers: a request for another
    // name on it is misdirected (RFC 9110 15.5.20), and the client retries on a connection of
    // its own. Names it covers (a wildcard's) are served, so HTTP/2 coalescing keeps working.
    if let Origin::Https(_, Some(tls)) = &origin
        && !tls.covers(asked)
    {
        return Ok(synthetic(StatusCode::MISDIRECTED_REQUEST, "misdirected request\n"));
    }
    // Any Funnel marker, whatever its value or count, makes the request a Funnel one: were a
    // client's own header ever passed along beside tailscaled's, doubt must deny, not admit.
    let via = if trusted && h.contains_key("tailscale-funnel-request") {
        Via::Funnel
    } else {
        Via::Tailnet
    };
    let peer_value = match &origin {
        Origin::Trusted | Origin::Service(_) => text_value(h, "x-forwarded-for"),
        Origin::Http(p) | Origin::Https(p, _) => p.as_ref().map(|p| p.0.clone()),
    };
    let peer = peer_value.as_ref().map(|v| v.to_str().unwrap_or_default());
    let identity = (trusted && via == Via::Tailnet).then(|| Identity {
        login: header(h, "tailscale-user-login"),
        // tailscaled encodes non-ASCII display names as RFC 2047 words (`=?utf-8?q?...?=`).
        name: header(h, "tailscale-user-name").map(|n| super::rfc2047::decode(&n)),
        picture: header(h, "tailscale-user-profile-pic"),
    });
    // The request's target, kept whole: the path and query are borrowed from it below.
    let target = req.uri().clone();
    let path = target.path();
    // A path the upstream would resolve elsewhere is never routed: redirected to its clean form
    // (as Go's ServeMux did under tsnsrv), or refused on Funnel (the first half of path::decide).
    let checked = match super::path::check(path, target.query(), via) {
        Ok(checked) => checked,
        Err(answer) => return Ok(path_answer(answer)),
    };
    let table = shared.routes.load();
    let found = match &origin {
        Origin::Service(label) => table.service(label).map(|r| (r, "/".to_string())),
        _ => table.lookup(asked, path),
    };
    let Some((route, _mount)) = found else {
        return Ok(synthetic(StatusCode::NOT_FOUND, "404 page not found\n"));
    };
    // Funnel isolation: a public request reaches only routes that are public.
    if via == Via::Funnel && !route.funnel {
        return Ok(synthetic(StatusCode::FORBIDDEN, "not available through Funnel\n"));
    }
    if via == Via::Tailnet && !route.tailnet {
        return Ok(synthetic(StatusCode::NOT_FOUND, "404 page not found\n"));
    }
    // Access rules replace the per-node ACLs that told services apart: with rules, only a
    // tailnet peer that matches one gets in (identity comes from tailscaled only).
    // Group and tag rules need the LocalAPI's answer (serve's headers carry neither): it is
    // asked here, before the decision, and reused for the identity headers below.
    // A TCP peer inside the tailnet's ranges (placement B: the proxy on the node's own
    // address) is identified by whois too; serve's headers exist only on the trusted sockets.
    let tcp_tailnet_peer = match &origin {
        Origin::Http(Some(p)) | Origin::Https(Some(p), _) => {
            p.0.to_str().ok().and_then(|s| s.parse::<IpAddr>().ok()).is_some_and(|ip| {
                shared.tailnet_ranges.iter().any(|r| super::config::in_range(ip, *r))
            })
        }
        _ => false,
    };
    let mut early_whois = None;
    if tcp_tailnet_peer
        && (route.whois.enabled || !route.access.is_empty() || route.auth.is_some())
        && let (Some(w), Some(addr)) = (&shared.whois, peer)
    {
        let limit = std::time::Duration::from_millis(route.whois.timeout_ms.max(1));
        early_whois = Box::pin(w.lookup(addr, None, limit)).await;
    }
    if via == Via::Tailnet && !route.access.is_empty() {
        let login: Option<String> = identity
            .as_ref()
            .and_then(|i| i.login.clone())
            .or_else(|| early_whois.as_ref().and_then(|w| w.login.clone()));
        let needs_whois = route.access.iter().any(|r| {
            matches!(
                r,
                tailshift_routes::AccessRule::Group(_) | tailshift_routes::AccessRule::Tag(_)
            )
        });
        if needs_whois
            && trusted
            && let (Some(w), Some(addr)) = (&shared.whois, peer)
        {
            let limit = std::time::Duration::from_millis(route.whois.timeout_ms.max(1000));
            early_whois = Box::pin(w.lookup(addr, service_of(&origin).as_deref(), limit)).await;
        }
        let (groups, tags) = match &early_whois {
            Some(id) => (id.groups.as_slice(), id.tags.as_slice()),
            None => (&[][..], &[][..]),
        };
        if !super::access::admits(&route.access, login.as_deref(), groups, tags) {
            return Ok(synthetic(StatusCode::FORBIDDEN, "forbidden by the route's access rules\n"));
        }
    }
    let query = target.query();
    if let (Origin::Https(..), Listen::Plaintext { .. }) = (&origin, route.listen) {
        return Ok(synthetic(StatusCode::NOT_FOUND, "404 page not found\n"));
    }
    if let (Origin::Http(_), Listen::Https { .. }) = (&origin, route.listen) {
        let host = asked.split(':').next().unwrap_or(asked);
        let q = query.map(|q| format!("?{q}")).unwrap_or_default();
        return Ok(redirect(&format!("https://{host}{path}{q}")));
    }
    if let Some(to) = &route.redirect_to {
        let q = query.map(|q| format!("?{q}")).unwrap_or_default();
        let rest = path.trim_start_matches('/');
        // `redirect_to` is an absolute URL or a path starting with one `/` (validated), the
        // rest has no leading `/`, and `\` goes encoded: never `//host` or `/\host`.
        return Ok(redirect(&super::clean::location_safe(format!(
            "{}{rest}{q}",
            if to.ends_with('/') { to.clone() } else { format!("{to}/") }
        ))));
    }
    // Forward auth runs before the prefix check, as in the fork (tsnsrv.md 3.2).
    let mut granted: Vec<(HeaderName, HeaderValue)> = Vec::new();
    if let Some(auth) = &route.auth {
        let tailnet_user = via == Via::Tailnet
            && identity
                .as_ref()
                .and_then(|i| i.login.as_deref())
                .or_else(|| early_whois.as_ref().and_then(|w| w.login.as_deref()))
                .is_some_and(|l| l != "tagged-devices");
        // Identified tailnet users may skip auth; Funnel and tagged devices never do.
        if !(auth.bypass_for_tailnet && tailnet_user) {
            let asked_at = Instant::now();
            // Boxed, as the other rare steps below: the request's future is as large as its
            // largest step, and it is moved whole once per request.
            let decision = Box::pin(super::auth::check(
                &shared.auth_client,
                auth,
                &route.auth_key,
                &req,
                asked,
                trusted,
            ))
            .await;
            shared
                .metrics
                .service(&route.service)
                .auth(decision.status(), asked_at.elapsed().as_nanos() as u64);
            match decision {
                super::auth::Decision::Allow(copied) => granted = copied,
                super::auth::Decision::Respond(resp) => {
                    eprintln!(
                        "INFO auth denied service={} status={} remote_addr={} duration={:?} url={path}",
                        route.service,
                        resp.status().as_u16(),
                        peer.unwrap_or(""),
                        started.elapsed()
                    );
                    return Ok(resp);
                }
            }
        }
    }
    // The second half of path::decide: tsnsrv's prefix rules, then the upstream's path.
    let (new_path, new_query) = match super::path::forward(&route, checked, query) {
        PathDecision::Forward { path, query } => (path, query),
        PathDecision::NotAllowed => {
            eprintln!(
                "WARN URL prefix not allowed url={path} prefixes={:?} forFunnel={}",
                route.prefixes,
                via == Via::Funnel
            );
            return Ok(path_answer(PathDecision::NotAllowed));
        }
        answer => return Ok(path_answer(answer)),
    };
    let dest = &route.upstream.url;
    let authority = route.dest_authority.as_str();
    // Most routes forward the target unchanged: then it is the request's own (no copy).
    let path_and_query = match (&new_query, target.path_and_query()) {
        (q, Some(pq)) if new_path == path && q.as_deref() == query => Some(pq.clone()),
        (Some(q), _) => text_target(format!("{new_path}?{q}")),
        (None, _) => text_target(new_path.into_owned()),
    };
    let Some(path_and_query) = path_and_query else {
        return Ok(empty(StatusCode::BAD_GATEWAY));
    };
    let (mut parts, body) = req.into_parts();
    let looked_up =
        match (&shared.whois, trusted && via == Via::Tailnet && route.whois.enabled, peer) {
            _ if early_whois.is_some() && route.whois.enabled => early_whois.clone(),
            (Some(w), true, Some(addr)) => {
                let limit = std::time::Duration::from_millis(route.whois.timeout_ms);
                Box::pin(w.lookup(addr, service_of(&origin).as_deref(), limit)).await
            }
            _ => None,
        };
    let tls = trusted || matches!(origin, Origin::Https(..));
    let mut headers = outgoing_headers(
        std::mem::take(&mut parts.headers),
        &route,
        authority,
        &Requester { asked: &asked_value, peer: peer_value.as_ref(), trusted, tls },
        identity,
    );
    if let Some(id) = looked_up {
        // The LocalAPI's answer is the full tsnsrv set; it replaces what serve's headers gave.
        let ours: Vec<HeaderName> =
            headers.keys().filter(|k| k.as_str().starts_with("x-tailscale-")).cloned().collect();
        for k in ours {
            headers.remove(k);
        }
        for (k, v) in id.headers.iter() {
            set(&mut headers, HeaderName::from_static(k), v);
        }
    }
    if let Some(auth) = &route.auth {
        // The fork let a client send these itself when the auth answer lacked them: not here.
        for name in &auth.copy_headers {
            headers.remove(name.as_str());
        }
        for (k, v) in granted {
            headers.insert(k, v);
        }
    }
    if let Some((proto, _)) = &upgrade {
        // Hop-by-hop, but an upgrade must reach the upstream (Go's ReverseProxy keeps them too).
        set(&mut headers, name!("connection"), "upgrade");
        set(&mut headers, name!("upgrade"), proto);
    }
    parts.headers = headers;
    // Origin-form: the connection is chosen by the route's dial, the Host header is set above.
    let mut uri = http::uri::Parts::default();
    // Kept for the access log only when it is written.
    let logged_target = shared.access_log.then(|| path_and_query.clone());
    uri.path_and_query = Some(path_and_query);
    parts.uri = match Uri::from_parts(uri) {
        Ok(u) => u,
        Err(_) => return Ok(empty(StatusCode::BAD_GATEWAY)),
    };
    parts.version = http::Version::HTTP_11;
    let out = Request::from_parts(parts, body);
    let login = identity_login(&out);
    let forwarded_at = Instant::now();
    let result = forward(&shared, &route, out, body_clock).await;
    let m = route.metrics.get_or_init(|| shared.metrics.service(&route.service));
    m.request(canonical_name(&route.route, asked));
    let response = match result {
        Ok(mut resp) => {
            m.observe(resp.status().as_u16(), forwarded_at.elapsed().as_nanos() as u64);
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS
                && let Some((proto, client_side)) = upgrade
            {
                // Splice the two upgraded connections; the 101 goes back with its headers.
                let upstream_side = hyper::upgrade::on(&mut resp);
                tokio::spawn(async move {
                    if let (Ok(c), Ok(u)) = (client_side.await, upstream_side.await) {
                        let mut c = hyper_util::rt::TokioIo::new(c);
                        let mut u = hyper_util::rt::TokioIo::new(u);
                        let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                    }
                });
                strip_hop_by_hop(resp.headers_mut());
                set(resp.headers_mut(), name!("connection"), "upgrade");
                set(resp.headers_mut(), name!("upgrade"), &proto);
                resp.map(|b| b.boxed())
            } else {
                strip_hop_by_hop(resp.headers_mut());
                resp.map(|b| b.boxed())
            }
        }
        // The client's body could not be read (malformed chunked framing, cut short): the
        // client's fault, not the upstream's.
        Err(SendError::ClientBody(e)) => {
            eprintln!("WARN bad request body service={} error={e}", route.service);
            synthetic(StatusCode::BAD_REQUEST, "malformed request body\n")
        }
        Err(e) => {
            m.error();
            eprintln!("WARN proxy error service={} error={e}", route.service);
            empty(StatusCode::BAD_GATEWAY)
        }
    };
    if let Some(path_and_query) = logged_target {
        eprintln!(
            "INFO served service={} original={path} rewritten={}://{authority}{path_and_query} origin_login={:?} origin_node=\"\" duration={:?} http_status={}",
            route.service,
            dest.scheme(),
            login.unwrap_or_default(),
            started.elapsed(),
            response.status().as_u16()
        );
    }
    Ok(response)
}

fn identity_login(r: &Request<Incoming>) -> Option<String> {
    header(r.headers(), "x-tailscale-user-loginname")
}

/// tsnsrv's `rewrite` (3.4), in its order, with the identity of tailscaled's serve mapped onto
/// tsnsrv's header names.
/// Who asked, how: what the upstream headers are derived from.
struct Requester<'a> {
    /// The name asked for (`Host`, or `X-Forwarded-Host` behind tailscaled); text.
    asked: &'a HeaderValue,
    /// The peer address; text.
    peer: Option<&'a HeaderValue>,
    /// Through tailscaled's trusted socket.
    trusted: bool,
    /// Over TLS (ours or tailscaled's).
    tls: bool,
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

fn outgoing_headers(
    incoming: HeaderMap,
    route: &Route,
    upstream_authority: &str,
    who: &Requester,
    identity: Option<Identity>,
) -> HeaderMap {
    let Requester { asked, peer, trusted, tls } = *who;
    let mut h = incoming;
    strip_hop_by_hop(&mut h);
    // What tailscaled says is read above; nothing a client sends as identity (or as a
    // forwarding chain) goes further. One pass finds whether there is anything to remove.
    // With `_`, a name CGI/WSGI upstreams read as one the proxy sets (`X_Tailscale_User` is
    // `HTTP_X_TAILSCALE_USER` there) goes too; other underscore names pass, as tsnsrv's did.
    let replaced = |k: &HeaderName| {
        let k = k.as_str();
        let is_ours = |k: &str| {
            matches!(
                k,
                "forwarded"
                    | "x-forwarded-for"
                    | "x-forwarded-host"
                    | "x-forwarded-proto"
                    | "x-forwarded-server"
                    | "x-forwarded-port"
                    | "x-real-ip"
                    | "x-scheme"
            ) || is_identity(k)
        };
        if k.contains('_') {
            is_ours(&k.replace('_', "-"))
        } else {
            matches!(k, "forwarded" | "x-forwarded-for" | "x-forwarded-host" | "x-forwarded-proto")
                || is_identity(k)
        }
    };
    if h.keys().any(replaced) {
        let gone: Vec<HeaderName> = h.keys().filter(|k| replaced(k)).cloned().collect();
        for k in gone {
            h.remove(k);
        }
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

async fn forward(
    shared: &Shared,
    route: &Routed,
    req: Request<Incoming>,
    body_clock: Option<super::watchdog::BodyClock>,
) -> Result<Response<super::pool::ForwardBody>, SendError> {
    let Some(dial) = &route.dial else {
        return Err(SendError::Other(format!(
            "upstream URL {:?} is not http(s)",
            route.upstream.url
        )));
    };
    let slot = route.pool_slot.get_or_init(|| shared.pool.slot(&route.dial_key));
    // The send is made inside each arm: made before the match, its future would take one
    // slot of the request's future and the timeout's copy of it another.
    match route.timeouts.response_header_ms {
        Some(ms) => tokio::time::timeout(
            std::time::Duration::from_millis(ms),
            shared.pool.send(slot, dial, req, body_clock),
        )
        .await
        .map_err(|_| SendError::Other(format!("no response headers within {ms} ms")))?,
        None => shared.pool.send(slot, dial, req, body_clock).await,
    }
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
