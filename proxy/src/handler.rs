//! One request, top to bottom: which name was asked for, which route, Funnel and prefix
//! rules, tsnsrv's headers toward the upstream, forward, answer (`reference/tsnsrv.md` 3).

pub use super::answer::Body;
use super::answer::{Early, HttpError, empty, redirect};
use super::h1::SendError;
use super::headers::{
    Identity, Requester, header, identity_login, name, outgoing_headers, set, strip_hop_by_hop,
    text_value, upgrade_protocol,
};
use super::path::{Checked, PathDecision};
use super::prefix::Via;
use super::routes::{RouteTable, Routed};
use super::upstream::Connector;
use super::whois::PeerIdentity;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tailshift_routes::{AccessRule, Listen};

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
    pub auth_client: hyper_util::client::legacy::Client<Connector, http_body_util::Empty<Bytes>>,
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

/// The Tailscale Service a request came through (`svc:<label>`), for whois: the capabilities
/// are then the grants toward that Service, as tsnsrv's own node for it had.
fn service_of(origin: &Origin) -> Option<String> {
    match origin {
        Origin::Service(label) => Some(format!("svc:{label}")),
        _ => None,
    }
}

/// Requests answered before any routing: `CONNECT` (405; the proxy is no tunnel), a transfer
/// coding other than `chunked` (501), `OPTIONS *` (the proxy's own answer), userinfo in the
/// target (400), two `Host` headers (400), and an HTTP/2 `host` that differs from `:authority`
/// (400, RFC 9113 8.3.1).
fn refuse_unusual(req: &Request<Incoming>) -> Result<(), Early> {
    if req.method() == http::Method::CONNECT {
        return Err(HttpError::ConnectNotServed.into());
    }
    // Only a request with a body can carry a transfer coding (HTTP/2 has none).
    if !req.body().is_end_stream() {
        let mut te = req.headers().get_all(http::header::TRANSFER_ENCODING).iter();
        if let Some(first) = te.next()
            && (te.next().is_some()
                || !first.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked"))
        {
            return Err(HttpError::TransferCoding.into());
        }
    }
    if req.method() == http::Method::OPTIONS && req.uri() == "*" {
        let mut r = empty(StatusCode::NO_CONTENT);
        r.headers_mut().insert(
            http::header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
        return Err(r.into());
    }
    if req.uri().authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(HttpError::UserinfoInTarget.into());
    }
    let mut hosts = req.headers().get_all(http::header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(HttpError::TwoHosts.into());
    }
    if req.version() == http::Version::HTTP_2
        && let (Some(h), Some(a)) = (first, req.uri().authority())
        && !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes())
    {
        return Err(HttpError::HostNotAuthority.into());
    }
    Ok(())
}

/// The answer to a path that is not forwarded.
fn path_answer(decision: PathDecision) -> Response<Body> {
    match decision {
        PathDecision::Redirect(location) => redirect(StatusCode::MOVED_PERMANENTLY, &location),
        PathDecision::Refuse(why) => HttpError::BadPath(why).into(),
        PathDecision::NotAllowed => HttpError::NotFound.into(),
        // Never asked: a forwarded path is no answer.
        PathDecision::Forward { .. } => HttpError::BadGateway.into(),
    }
}

/// A rewritten request target, `None` when it cannot be one.
fn text_target(t: String) -> Option<http::uri::PathAndQuery> {
    http::uri::PathAndQuery::from_maybe_shared(Bytes::from(t)).ok()
}

/// A request's upgrade offer (WebSocket or other): the protocol, and the client's side of the
/// connection to splice after the upstream's 101. `Upgrade: h2c` is a hop-by-hop offer to
/// this connection, never the upstream's: it is dropped.
type Upgrade = (String, hyper::upgrade::OnUpgrade);

fn take_upgrade(req: &mut Request<Incoming>) -> Option<Upgrade> {
    if header(req.headers(), "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("h2c")) {
        req.headers_mut().remove(http::header::UPGRADE);
    }
    upgrade_protocol(req.headers()).map(|proto| (proto, hyper::upgrade::on(req)))
}

/// Who asks, for which name, through what: read once from the request and its connection,
/// and believed only from tailscaled. Values are kept as the request's own header values (a
/// clone is a reference count, not a copy).
struct Client {
    /// Through tailscaled (its trusted socket, or a Service's).
    trusted: bool,
    /// The name asked for; text.
    asked: HeaderValue,
    /// Through Funnel (the internet) or the tailnet.
    via: Via,
    /// The peer's address; text.
    peer: Option<HeaderValue>,
    /// What tailscaled's serve says of a tailnet client.
    identity: Option<Identity>,
}

impl Client {
    fn asked(&self) -> &str {
        self.asked.to_str().unwrap_or_default()
    }

    fn peer(&self) -> Option<&str> {
        self.peer.as_ref().map(|v| v.to_str().unwrap_or_default())
    }
}

/// Reads the client off the request. An absolute-form target (and HTTP/2's `:authority`)
/// names the host (RFC 9112 3.2.2).
fn client_of(req: &Request<Incoming>, origin: &Origin) -> Result<Client, Early> {
    let trusted = matches!(origin, Origin::Trusted | Origin::Service(_));
    let h = req.headers();
    let asked = if trusted {
        text_value(h, "x-forwarded-host")
    } else {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .or_else(|| text_value(h, "host"))
    };
    let asked = asked.ok_or(HttpError::MissingHost)?;
    // The connection's certificate vouches only for the names it covers: a request for another
    // name on it is misdirected (RFC 9110 15.5.20), and the client retries on a connection of
    // its own. Names it covers (a wildcard's) are served, so HTTP/2 coalescing keeps working.
    if let Origin::Https(_, Some(tls)) = origin
        && !tls.covers(asked.to_str().unwrap_or_default())
    {
        return Err(HttpError::Misdirected.into());
    }
    // Any Funnel marker, whatever its value or count, makes the request a Funnel one: were a
    // client's own header ever passed along beside tailscaled's, doubt must deny, not admit.
    let via = if trusted && h.contains_key("tailscale-funnel-request") {
        Via::Funnel
    } else {
        Via::Tailnet
    };
    let peer = match origin {
        Origin::Trusted | Origin::Service(_) => text_value(h, "x-forwarded-for"),
        Origin::Http(p) | Origin::Https(p, _) => p.as_ref().map(|p| p.0.clone()),
    };
    let identity = (trusted && via == Via::Tailnet).then(|| Identity {
        login: header(h, "tailscale-user-login"),
        // tailscaled encodes non-ASCII display names as RFC 2047 words (`=?utf-8?q?...?=`).
        name: header(h, "tailscale-user-name").map(|n| super::rfc2047::decode(&n)),
        picture: header(h, "tailscale-user-profile-pic"),
    });
    Ok(Client { trusted, asked, via, peer, identity })
}

/// The route for the name and path asked (a Service's socket names its route), if this client
/// may reach it: Funnel isolation, a public request reaches only routes that are public.
fn route_for(
    table: &RouteTable,
    origin: &Origin,
    client: &Client,
    path: &str,
) -> Result<Arc<Routed>, Early> {
    let found = match origin {
        Origin::Service(label) => table.service(label),
        _ => table.lookup(client.asked(), path).map(|(route, _mount)| route),
    };
    let route = found.ok_or(HttpError::NotFound)?;
    if client.via == Via::Funnel && !route.funnel {
        return Err(HttpError::NotViaFunnel.into());
    }
    if client.via == Via::Tailnet && !route.tailnet {
        return Err(HttpError::NotFound.into());
    }
    Ok(route)
}

/// Access rules replace the per-node ACLs that told services apart: with rules, only a tailnet
/// peer that matches one gets in (identity comes from tailscaled only). Group and tag rules
/// need the LocalAPI's answer (serve's headers carry neither): it is asked here, before the
/// decision, and returned for the identity headers. A TCP peer inside the tailnet's ranges
/// (placement B: the proxy on the node's own address) is identified by whois too; serve's
/// headers exist only on the trusted sockets.
async fn admit(
    shared: &Shared,
    route: &Routed,
    origin: &Origin,
    client: &Client,
    tcp_tailnet_peer: bool,
) -> Result<Option<Arc<PeerIdentity>>, Early> {
    let mut whois = None;
    if tcp_tailnet_peer
        && (route.whois.enabled || !route.access.is_empty() || route.auth.is_some())
        && let (Some(w), Some(addr)) = (&shared.whois, client.peer())
    {
        let limit = Duration::from_millis(route.whois.timeout_ms.max(1));
        whois = Box::pin(w.lookup(addr, None, limit)).await;
    }
    if client.via == Via::Funnel || route.access.is_empty() {
        return Ok(whois);
    }
    let login: Option<String> = client
        .identity
        .as_ref()
        .and_then(|i| i.login.clone())
        .or_else(|| whois.as_ref().and_then(|w| w.login.clone()));
    let needs_whois =
        route.access.iter().any(|r| matches!(r, AccessRule::Group(_) | AccessRule::Tag(_)));
    if needs_whois
        && client.trusted
        && let (Some(w), Some(addr)) = (&shared.whois, client.peer())
    {
        let limit = Duration::from_millis(route.whois.timeout_ms.max(1000));
        whois = Box::pin(w.lookup(addr, service_of(origin).as_deref(), limit)).await;
    }
    let (groups, tags) = match &whois {
        Some(id) => (id.groups.as_slice(), id.tags.as_slice()),
        None => (&[][..], &[][..]),
    };
    if !super::access::admits(&route.access, login.as_deref(), groups, tags) {
        return Err(HttpError::ForbiddenByAccess.into());
    }
    Ok(whois)
}

/// Whether a TCP peer is inside the tailnet's ranges (placement B), so whois can name it.
fn tcp_tailnet_peer(shared: &Shared, origin: &Origin) -> bool {
    match origin {
        Origin::Http(Some(p)) | Origin::Https(Some(p), _) => {
            p.0.to_str().ok().and_then(|s| s.parse::<IpAddr>().ok()).is_some_and(|ip| {
                shared.tailnet_ranges.iter().any(|r| super::config::in_range(ip, *r))
            })
        }
        _ => false,
    }
}

/// Whether [`admit`] has anything to do: access rules, or a TCP peer whois can name.
fn needs_admission(shared: &Shared, route: &Routed, origin: &Origin) -> Option<bool> {
    let tcp_peer = !shared.tailnet_ranges.is_empty() && tcp_tailnet_peer(shared, origin);
    (tcp_peer || !route.access.is_empty()).then_some(tcp_peer)
}

/// What the route answers without its upstream: a plaintext route is not served on the HTTPS
/// listener, an HTTPS route's request on the HTTP listener goes to HTTPS, and a redirecting
/// route redirects.
fn answer_without_upstream(
    origin: &Origin,
    route: &Routed,
    asked: &str,
    path: &str,
    query: Option<&str>,
) -> Result<(), Early> {
    if let (Origin::Https(..), Listen::Plaintext { .. }) = (origin, route.listen) {
        return Err(HttpError::NotFound.into());
    }
    let q = || query.map(|q| format!("?{q}")).unwrap_or_default();
    if let (Origin::Http(_), Listen::Https { .. }) = (origin, route.listen) {
        let host = asked.split(':').next().unwrap_or(asked);
        return Err(redirect(
            StatusCode::PERMANENT_REDIRECT,
            &format!("https://{host}{path}{}", q()),
        )
        .into());
    }
    if let Some(to) = &route.redirect_to {
        let rest = path.trim_start_matches('/');
        let to = if to.ends_with('/') { to.clone() } else { format!("{to}/") };
        // `redirect_to` is an absolute URL or a path starting with one `/` (validated), the
        // rest has no leading `/`, and `\` goes encoded: never `//host` or `/\host`.
        let location = super::clean::location_safe(format!("{to}{rest}{}", q()));
        return Err(redirect(StatusCode::PERMANENT_REDIRECT, &location).into());
    }
    Ok(())
}

/// Forward auth, run before the prefix check as in the fork (tsnsrv.md 3.2): the headers the
/// auth service grants, or its answer to the client. Identified tailnet users may skip it when
/// the route says so; Funnel and tagged devices never do.
async fn forward_auth(
    shared: &Shared,
    route: &Routed,
    req: &Request<Incoming>,
    client: &Client,
    whois: Option<&PeerIdentity>,
    started: Instant,
) -> Result<Vec<(HeaderName, HeaderValue)>, Early> {
    let Some(auth) = &route.auth else {
        return Ok(Vec::new());
    };
    let tailnet_user = client.via == Via::Tailnet
        && client
            .identity
            .as_ref()
            .and_then(|i| i.login.as_deref())
            .or_else(|| whois.and_then(|w| w.login.as_deref()))
            .is_some_and(|l| l != "tagged-devices");
    if auth.bypass_for_tailnet && tailnet_user {
        return Ok(Vec::new());
    }
    let asked_at = Instant::now();
    // Boxed, as the other rare steps: the request's future is as large as its largest step,
    // and it is moved whole once per request.
    let decision = Box::pin(super::auth::check(
        &shared.auth_client,
        auth,
        &route.auth_key,
        req,
        client.asked(),
        client.trusted,
    ))
    .await;
    shared
        .metrics
        .service(&route.service)
        .auth(decision.status(), asked_at.elapsed().as_nanos() as u64);
    match decision {
        super::auth::Decision::Allow(copied) => Ok(copied),
        super::auth::Decision::Respond(resp) => {
            eprintln!(
                "INFO auth denied service={} status={} remote_addr={} duration={:?} url={}",
                route.service,
                resp.status().as_u16(),
                client.peer().unwrap_or(""),
                started.elapsed(),
                req.uri().path()
            );
            Err(resp.into())
        }
    }
}

/// The target the upstream is asked for: tsnsrv's prefix rules, then the upstream's path (the
/// second half of path::decide). Most routes forward the target unchanged: then it is the
/// request's own (no copy).
fn upstream_target(
    route: &Routed,
    checked: Checked,
    target: &Uri,
    via: Via,
) -> Result<PathAndQuery, Early> {
    let (path, query) = (target.path(), target.query());
    let (new_path, new_query) = match super::path::forward(route, checked, query) {
        PathDecision::Forward { path, query } => (path, query),
        PathDecision::NotAllowed => {
            eprintln!(
                "WARN URL prefix not allowed url={path} prefixes={:?} forFunnel={}",
                route.prefixes,
                via == Via::Funnel
            );
            return Err(path_answer(PathDecision::NotAllowed).into());
        }
        answer => return Err(path_answer(answer).into()),
    };
    let path_and_query = match (&new_query, target.path_and_query()) {
        (q, Some(pq)) if new_path == path && q.as_deref() == query => Some(pq.clone()),
        (Some(q), _) => text_target(format!("{new_path}?{q}")),
        (None, _) => text_target(new_path.into_owned()),
    };
    path_and_query.ok_or_else(|| HttpError::BadGateway.into())
}

/// The request the upstream gets: origin-form (the connection is chosen by the route's dial),
/// HTTP/1.1, with the header policy's headers, the LocalAPI's identity in place of serve's,
/// what forward auth granted, and the upgrade offer kept.
#[allow(clippy::too_many_arguments)]
fn upstream_request(
    route: &Routed,
    parts: &mut http::request::Parts,
    target: PathAndQuery,
    client: &mut Client,
    origin: &Origin,
    looked_up: Option<Arc<PeerIdentity>>,
    granted: Vec<(HeaderName, HeaderValue)>,
    upgrade: Option<&str>,
) -> Result<(), Early> {
    let tls = client.trusted || matches!(origin, Origin::Https(..));
    let who = Requester {
        asked: &client.asked,
        peer: client.peer.as_ref(),
        trusted: client.trusted,
        tls,
        funnel: client.via == Via::Funnel,
        http2: parts.version == http::Version::HTTP_2,
    };
    let mut headers = outgoing_headers(
        std::mem::take(&mut parts.headers),
        route,
        &route.dest_authority,
        &who,
        client.identity.take(),
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
    if let Some(proto) = upgrade {
        // Hop-by-hop, but an upgrade must reach the upstream (Go's ReverseProxy keeps them too).
        set(&mut headers, name!("connection"), "upgrade");
        set(&mut headers, name!("upgrade"), proto);
    }
    parts.headers = headers;
    let mut uri = http::uri::Parts::default();
    uri.path_and_query = Some(target);
    parts.uri = Uri::from_parts(uri).map_err(|_| HttpError::BadGateway)?;
    parts.version = http::Version::HTTP_11;
    Ok(())
}

/// The identity the upstream gets from the LocalAPI: what [`admit`] looked up, else a lookup
/// for a tailnet request through tailscaled when the route asks for whois.
async fn identity_of(
    shared: &Shared,
    route: &Routed,
    client: &Client,
    origin: &Origin,
    admitted: Option<Arc<PeerIdentity>>,
) -> Option<Arc<PeerIdentity>> {
    let tailnet_whois = client.trusted && client.via == Via::Tailnet && route.whois.enabled;
    match (&shared.whois, tailnet_whois, client.peer()) {
        _ if admitted.is_some() && route.whois.enabled => admitted,
        (Some(w), true, Some(addr)) => {
            let limit = Duration::from_millis(route.whois.timeout_ms);
            Box::pin(w.lookup(addr, service_of(origin).as_deref(), limit)).await
        }
        _ => None,
    }
}

/// Counts the upstream's answer and makes it the client's: hop-by-hop fields removed, an
/// accepted upgrade spliced to the client's side of the connection.
fn answer_from_upstream(
    shared: &Shared,
    route: &Routed,
    result: Result<Response<super::pool::ForwardBody>, SendError>,
    forwarded_at: Instant,
    upgrade: Option<Upgrade>,
    asked: &str,
) -> Response<Body> {
    let m = route.metrics.get_or_init(|| shared.metrics.service(&route.service));
    m.request(route.canonical_name(asked));
    let mut resp = match result {
        Ok(resp) => resp,
        Err(SendError::ClientBody(e)) => {
            eprintln!("WARN bad request body service={} error={e}", route.service);
            return HttpError::MalformedBody.into();
        }
        Err(e) => {
            m.error();
            eprintln!("WARN proxy error service={} error={e}", route.service);
            return HttpError::BadGateway.into();
        }
    };
    m.observe(resp.status().as_u16(), forwarded_at.elapsed().as_nanos() as u64);
    strip_hop_by_hop(resp.headers_mut());
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
        set(resp.headers_mut(), name!("connection"), "upgrade");
        set(resp.headers_mut(), name!("upgrade"), &proto);
    }
    resp.map(|b| b.boxed())
}

/// Serves one request; `body_clock` times the reads of its body, when it has one. The future
/// is boxed here, once: it is large (auth, whois, forwarding), and moving it by value into the
/// connection's service and then into hyper's slot would copy all of it per request. Every
/// early answer (a refusal, a redirect, the auth service's answer) is its [`Early`].
pub fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    origin: Origin,
    body_clock: Option<super::watchdog::BodyClock>,
) -> std::pin::Pin<Box<impl std::future::Future<Output = Result<Response<Body>, Early>> + Send>> {
    Box::pin(serve(shared, req, origin, body_clock))
}

/// The request path, top to bottom. The rare steps are awaited only when the route needs them
/// (each awaited step's future is copied into this one's).
async fn serve(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    origin: Origin,
    body_clock: Option<super::watchdog::BodyClock>,
) -> Result<Response<Body>, Early> {
    let (shared, origin) = (&*shared, &origin);
    let started = Instant::now();
    refuse_unusual(&req)?;
    let upgrade = take_upgrade(&mut req);
    let mut client = client_of(&req, origin)?;
    // The request's target, kept whole: the path and query are borrowed from it below.
    let target = req.uri().clone();
    let (path, query) = (target.path(), target.query());
    // A path the upstream would resolve elsewhere is never routed: redirected to its clean form
    // (as Go's ServeMux did under tsnsrv), or refused on Funnel (the first half of path::decide).
    let checked =
        super::path::check(path, query, client.via).map_err(|d| Early::from(path_answer(d)))?;
    let route = route_for(&shared.routes.load(), origin, &client, path)?;
    let whois = match needs_admission(shared, &route, origin) {
        Some(tcp_peer) => admit(shared, &route, origin, &client, tcp_peer).await?,
        None => None,
    };
    answer_without_upstream(origin, &route, client.asked(), path, query)?;
    let granted = match &route.auth {
        Some(_) => forward_auth(shared, &route, &req, &client, whois.as_deref(), started).await?,
        None => Vec::new(),
    };
    let to_upstream = upstream_target(&route, checked, &target, client.via)?;
    // Kept for the access log only when it is written.
    let logged_target = shared.access_log.then(|| to_upstream.clone());
    let proto = upgrade.as_ref().map(|(proto, _)| proto.as_str());
    let looked_up = if whois.is_some() || (route.whois.enabled && shared.whois.is_some()) {
        identity_of(shared, &route, &client, origin, whois).await
    } else {
        None
    };
    // The request is rebuilt in place (its parts are large: moved whole, they cost a copy).
    let (mut parts, body) = req.into_parts();
    upstream_request(
        &route,
        &mut parts,
        to_upstream,
        &mut client,
        origin,
        looked_up,
        granted,
        proto,
    )?;
    let out = Request::from_parts(parts, body);
    let login = logged_target.is_some().then(|| identity_login(out.headers())).flatten();
    let forwarded_at = Instant::now();
    let result = forward(shared, &route, out, body_clock).await;
    let response =
        answer_from_upstream(shared, &route, result, forwarded_at, upgrade, client.asked());
    if let Some(target) = logged_target {
        eprintln!(
            "INFO served service={} original={path} rewritten={}://{}{target} origin_login={:?} origin_node=\"\" duration={:?} http_status={}",
            route.service,
            route.upstream.url.scheme(),
            route.dest_authority,
            login.unwrap_or_default(),
            started.elapsed(),
            response.status().as_u16()
        );
    }
    Ok(response)
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
