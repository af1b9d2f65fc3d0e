//! Forward auth as the fork does it (`reference/tsnsrv.md` 3.7), with its bugs fixed: a 3xx
//! from the auth service is passed back to the client, never followed.

use super::answer::Body;
use super::upstream::Connector;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use std::time::Duration;
use tailshift_routes::ForwardAuth;

/// What the auth service decided.
pub enum Decision {
    /// Go on; set these headers (from `copy_headers`) on the upstream request.
    Allow(Vec<(HeaderName, HeaderValue)>),
    /// Answer the client with this (the auth service's own answer, or a 502).
    Respond(Response<Body>),
}

impl Decision {
    /// The auth service's status, `None` when it could not be asked.
    pub fn status(&self) -> Option<u16> {
        match self {
            Decision::Allow(_) => Some(200),
            Decision::Respond(r)
                if r.status() == StatusCode::BAD_GATEWAY && r.headers().is_empty() =>
            {
                None
            }
            Decision::Respond(r) => Some(r.status().as_u16()),
        }
    }
}

fn unavailable() -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(b"Authorization service unavailable"))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r
}

/// Asks the auth service about a request.
pub async fn check(
    client: &Client<Connector, Empty<Bytes>>,
    auth: &ForwardAuth,
    dial_key: &str,
    req: &Request<Incoming>,
    asked_host: &str,
    tls: bool,
) -> Decision {
    let base = &auth.url;
    if dial_key.is_empty() {
        eprintln!("WARN auth request failed url={} error=not an http(s) URL", auth.url);
        return Decision::Respond(unavailable());
    }
    let authority = super::routes::authority(base);
    // The authURL's own path is ignored; the original raw query is kept (as the fork does).
    let q = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let uri = format!("{}://{authority}{}{q}", base.scheme(), auth.path);
    let mut out = Request::get(format!("http://{dial_key}{}{q}", auth.path));
    let h = out.headers_mut().expect("builder");
    if let Ok(v) = HeaderValue::from_str(&authority) {
        h.insert(http::header::HOST, v);
    }
    for (k, v) in req.headers() {
        let name = k.as_str();
        // Authorization, Cookie, User-Agent and every X-* header the client sent; never
        // identity or forwarding headers a client could forge.
        let wanted = matches!(name, "authorization" | "cookie" | "user-agent")
            || (name.starts_with("x-")
                && !name.starts_with("x-tailscale-")
                && !name.starts_with("x-forwarded-"));
        if wanted {
            h.append(k.clone(), v.clone());
        }
    }
    let original = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let set = |h: &mut http::HeaderMap, k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set(h, "x-forwarded-method", req.method().as_str());
    set(h, "x-forwarded-uri", original);
    set(h, "x-forwarded-host", asked_host);
    set(h, "x-forwarded-proto", if tls { "https" } else { "http" });
    let Ok(out) = out.body(Empty::new()) else { return Decision::Respond(unavailable()) };
    let timeout = Duration::from_millis(auth.timeout_ms.max(1));
    let resp = match tokio::time::timeout(timeout, client.request(out)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            eprintln!("WARN auth request failed url={uri} error={e:?}");
            return Decision::Respond(unavailable());
        }
        Err(_) => {
            eprintln!("WARN auth request failed url={uri} error=timeout after {timeout:?}");
            return Decision::Respond(unavailable());
        }
    };
    if resp.status().is_success() {
        let mut copied = Vec::new();
        for name in &auth.copy_headers {
            if let (Ok(n), Some(v)) =
                (HeaderName::from_bytes(name.as_bytes()), resp.headers().get(name.as_str()))
            {
                copied.push((n, v.clone()));
            }
        }
        return Decision::Allow(copied);
    }
    // Denied or redirected: the client gets the auth service's status, headers and body.
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(http::header::CONNECTION);
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    Decision::Respond(Response::from_parts(parts, body.map_err(Into::into).boxed()))
}
