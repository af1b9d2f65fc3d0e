//! The admin socket (the protocol of `tailshift_routes`: health, metrics, upstream checks, the
//! route table read and replaced whole) and the metrics listener.

use super::handler::Shared;
use super::listen::{Serving, bind_unix, watched_accept_loop};
use super::routes::{Fit, RouteTable};
use super::watchdog::{Limits, Registration, Tracked, Watchdog};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tailshift_routes::Route;
use tailshift_routes::admin::{self, ErrorReply, Installed};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Connections the metrics listener holds at most (Prometheus keeps one or two).
const METRICS_MAX_CONNECTIONS: usize = 16;

/// Connections the admin socket holds at most (`migrate apply` opens one at a time).
const ADMIN_MAX_CONNECTIONS: usize = 16;

/// The limits of the metrics listener and the admin socket: the proxied listeners' (header
/// deadline, slow readers) with a small cap of their own, so that a few hundred idle sockets on
/// them cannot hold descriptors.
fn side_limits(limits: &Limits, max_connections: usize) -> Limits {
    Limits { max_connections, ..limits.clone() }
}

/// Serves one connection of the metrics listener or the admin socket (HTTP/1.1): each request
/// is in flight until its response is written; the head deadline and the send rate are the
/// watchdog's, as on the proxied listeners.
async fn serve_side_conn<I, F, Fut>(io: I, registration: Registration, respond: F)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, hyper::Error>> + Send + 'static,
{
    let watch = registration.watch().clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let in_flight = watch.begin();
        let response = respond(req);
        async move { Ok::<_, hyper::Error>(response.await?.map(|b| Tracked::new(b, in_flight))) }
    });
    let mut b = hyper::server::conn::http1::Builder::new();
    b.header_read_timeout(None);
    tokio::select! {
        _ = b.serve_connection(TokioIo::new(io), svc) => {}
        _ = registration.expired() => {}
    }
}

/// Serves the admin socket at `path` (0600: it replaces the route table).
pub(crate) fn serve_admin(
    s: &Serving,
    path: &Path,
    limits: &Limits,
    routes_file: Arc<PathBuf>,
    fit: Fit,
) -> crate::error::Result<JoinHandle<()>> {
    let listener = bind_unix(path, 0o600)?;
    let shared = s.shared.clone();
    let watchdog = Watchdog::side(&side_limits(limits, ADMIN_MAX_CONNECTIONS));
    Ok(watched_accept_loop(listener, s.stop.clone(), watchdog, move |io, _, registration| {
        let (shared, routes_file) = (shared.clone(), routes_file.clone());
        tokio::spawn(serve_side_conn(io, registration, move |req| {
            admin(shared.clone(), routes_file.clone(), fit, req)
        }));
    }))
}

/// Serves `/metrics` on `listener`.
pub(crate) fn serve_metrics(s: &Serving, listener: TcpListener, limits: &Limits) -> JoinHandle<()> {
    let shared = s.shared.clone();
    let watchdog = Watchdog::side(&side_limits(limits, METRICS_MAX_CONNECTIONS));
    watched_accept_loop(listener, s.stop.clone(), watchdog, move |io, _, registration| {
        let shared = shared.clone();
        tokio::spawn(serve_side_conn(io, registration, move |req: Request<Incoming>| {
            let shared = shared.clone();
            async move {
                Ok::<_, hyper::Error>(if req.uri().path() == admin::METRICS {
                    metrics_response(&shared)
                } else {
                    refusal(StatusCode::NOT_FOUND, "only /metrics here")
                })
            }
        }));
    })
}

/// A JSON answer.
fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let text = serde_json::to_string_pretty(body).unwrap_or_default() + "\n";
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

/// A refusal, in the protocol's one error body.
fn refusal(status: StatusCode, error: impl std::fmt::Display) -> Response<Full<Bytes>> {
    json_response(status, &ErrorReply { error: error.to_string() })
}

/// The metrics in Prometheus' text format.
fn metrics_response(shared: &Shared) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(shared.metrics.render())));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// One request on the admin socket, in the protocol of [`tailshift_routes::admin`].
async fn admin(
    shared: Arc<Shared>,
    routes_file: Arc<PathBuf>,
    fit: Fit,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let method = req.method().clone();
    Ok(match (method, req.uri().path()) {
        (Method::GET, admin::HEALTHZ) => {
            json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}))
        }
        (Method::GET, admin::METRICS) => metrics_response(&shared),
        (Method::GET, admin::UPSTREAMS) => {
            // Checked now: the caller (apply's pre-flight) wants the present, not the last round.
            json_response(StatusCode::OK, &super::health::check_all(&shared).await)
        }
        (Method::GET, admin::ROUTES) => {
            let t = shared.routes.load();
            let list: Vec<&Route> = t.routes.iter().map(|r| &r.route).collect();
            json_response(StatusCode::OK, &list)
        }
        (Method::PUT, admin::ROUTES) => replace_table(&shared, &routes_file, fit, req).await,
        _ => refusal(StatusCode::NOT_FOUND, "no such endpoint"),
    })
}

/// `PUT /routes`: the whole table, validated beside the old one (the route contract, then what
/// this proxy's listeners can serve); only then written and swapped in.
async fn replace_table(
    shared: &Shared,
    routes_file: &Path,
    fit: Fit,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let body =
        http_body_util::Limited::new(req.into_body(), admin::MAX_TABLE_BYTES).collect().await;
    let Ok(body) = body else {
        return refusal(StatusCode::PAYLOAD_TOO_LARGE, "table too large");
    };
    let parsed: Result<Vec<Route>, _> = serde_json::from_slice(&body.to_bytes());
    let table = parsed
        .map_err(|e| e.to_string())
        .and_then(|r| RouteTable::new(r).map_err(|e| e.to_string()))
        .and_then(|t| fit.check(&t).map(|()| t));
    match table {
        Err(e) => refusal(StatusCode::BAD_REQUEST, e),
        Ok(table) => match table.save(routes_file) {
            Err(e) => refusal(StatusCode::INTERNAL_SERVER_ERROR, e),
            Ok(()) => {
                let installed = Installed { routes: table.routes.len() };
                shared.install(table);
                json_response(StatusCode::OK, &installed)
            }
        },
    }
}
