//! What the proxy answers itself: the body type of every response, and the table of request
//! errors ([`HttpError`]) with their status codes and texts, so that a refusal reads the same
//! wherever the request path decides it.

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};

/// Response bodies: streamed from the upstream, or small synthetic ones.
pub type Body = BoxBody<Bytes, super::pool::BodyError>;

/// Why the proxy answers a request itself instead of forwarding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// `CONNECT`: the proxy is no tunnel.
    ConnectNotServed,
    /// A request transfer coding other than `chunked` (RFC 9112 6.1): hyper decodes only
    /// `chunked`, and a `gzip, chunked` body forwarded as chunked would lose its gzip.
    TransferCoding,
    /// Userinfo in the request target (`http://user@host/`, or an HTTP/2 `:authority` with
    /// one): no meaning for a server (RFC 9110 4.2.4, RFC 9113 8.3.1).
    UserinfoInTarget,
    /// A request body that could not be read (malformed chunked framing, cut short): the
    /// client's fault, not the upstream's.
    MalformedBody,
    /// Two `Host` headers: which one the upstream would read is unknowable.
    TwoHosts,
    /// An HTTP/2 `host` that differs from `:authority` (RFC 9113 8.3.1).
    HostNotAuthority,
    /// No name to route by.
    MissingHost,
    /// A name the connection's certificate does not cover (RFC 9110 15.5.20).
    Misdirected,
    /// A path that must not be forwarded (Funnel's stricter rules); the reason is the body.
    BadPath(&'static str),
    /// No route for the name, a route not served on this listener, or a path outside its
    /// prefixes: as Go's ServeMux answered under tsnsrv.
    NotFound,
    /// A Funnel request for a route that is not public.
    NotViaFunnel,
    /// A tailnet peer no access rule admits.
    ForbiddenByAccess,
    /// The upstream failed, or the request could not be rewritten for it.
    BadGateway,
}

impl HttpError {
    /// The status code and the text body of each refusal (empty: no body).
    pub fn status_and_text(self) -> (StatusCode, &'static str) {
        match self {
            HttpError::ConnectNotServed => {
                (StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not served\n")
            }
            HttpError::TransferCoding => {
                (StatusCode::NOT_IMPLEMENTED, "only the chunked transfer coding is accepted\n")
            }
            HttpError::UserinfoInTarget => {
                (StatusCode::BAD_REQUEST, "userinfo in the request target\n")
            }
            HttpError::MalformedBody => (StatusCode::BAD_REQUEST, "malformed request body\n"),
            HttpError::TwoHosts => (StatusCode::BAD_REQUEST, "more than one Host header\n"),
            HttpError::HostNotAuthority => {
                (StatusCode::BAD_REQUEST, "host differs from :authority\n")
            }
            HttpError::MissingHost => (StatusCode::BAD_REQUEST, "missing Host\n"),
            HttpError::Misdirected => (StatusCode::MISDIRECTED_REQUEST, "misdirected request\n"),
            HttpError::BadPath(why) => (StatusCode::BAD_REQUEST, why),
            HttpError::NotFound => (StatusCode::NOT_FOUND, "404 page not found\n"),
            HttpError::NotViaFunnel => (StatusCode::FORBIDDEN, "not available through Funnel\n"),
            HttpError::ForbiddenByAccess => {
                (StatusCode::FORBIDDEN, "forbidden by the route's access rules\n")
            }
            HttpError::BadGateway => (StatusCode::BAD_GATEWAY, ""),
        }
    }
}

/// An answer the request path gives itself, at whichever step decided it.
pub enum Early {
    /// A refusal from the table.
    Refused(HttpError),
    /// A whole answer (a redirect, the forward-auth service's own answer): boxed, as it is
    /// rare and a step's result stays small.
    Answered(Box<Response<Body>>),
}

impl Early {
    /// The response the client gets.
    pub fn into_response(self) -> Response<Body> {
        match self {
            Early::Refused(e) => e.into(),
            Early::Answered(r) => *r,
        }
    }
}

impl From<HttpError> for Early {
    fn from(e: HttpError) -> Early {
        Early::Refused(e)
    }
}

impl From<Response<Body>> for Early {
    fn from(r: Response<Body>) -> Early {
        Early::Answered(Box::new(r))
    }
}

impl From<HttpError> for Response<Body> {
    fn from(e: HttpError) -> Response<Body> {
        let (status, text) = e.status_and_text();
        if text.is_empty() { empty(status) } else { synthetic(status, text) }
    }
}

/// A response with a short text body.
pub fn synthetic(status: StatusCode, body: &'static str) -> Response<Body> {
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

/// A response without a body.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    r
}

/// A redirect: `status` (301 for a clean path, as Go's ServeMux answered; 308, which keeps the
/// method, for the proxy's own redirects) to `location`.
pub fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut r = empty(status);
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}
