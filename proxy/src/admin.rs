//! The admin socket (the protocol of `tailshift_routes`: health, metrics, upstream checks, the
//! route table read and replaced whole) and the metrics listener.

use super::handler::Shared;
use super::listen::{Serving, accept_loop, bind_unix};
use super::routes::{Fit, RouteTable};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tailshift_routes::Route;
use tailshift_routes::admin::{self, ErrorReply, Installed};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Serves the admin socket at `path` (0600: it replaces the route table).
pub(crate) fn serve_admin(
    s: &Serving,
    path: &Path,
    routes_file: Arc<PathBuf>,
    fit: Fit,
) -> crate::error::Result<JoinHandle<()>> {
    let listener = bind_unix(path, 0o600)?;
    let shared = s.shared.clone();
    Ok(accept_loop(listener, s.stop.clone(), move |io, _| {
        let (shared, routes_file) = (shared.clone(), routes_file.clone());
        let svc = service_fn(move |req| admin(shared.clone(), routes_file.clone(), fit, req));
        tokio::spawn(
            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), svc),
        );
    }))
}

/// Serves `/metrics` on `listener`. The metrics listener is rare and small: hyper's own
/// header-read deadline (the watchdog serves the proxied listeners) keeps an idle client from
/// holding it.
pub(crate) fn serve_metrics(
    s: &Serving,
    listener: TcpListener,
    head_deadline: Duration,
) -> JoinHandle<()> {
    let shared = s.shared.clone();
    accept_loop(listener, s.stop.clone(), move |io, _| {
        let shared = shared.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let shared = shared.clone();
            async move {
                Ok::<_, hyper::Error>(if req.uri().path() == admin::METRICS {
                    metrics_response(&shared)
                } else {
                    refusal(StatusCode::NOT_FOUND, "only /metrics here")
                })
            }
        });
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(head_deadline);
        tokio::spawn(b.serve_connection(TokioIo::new(io), svc));
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
