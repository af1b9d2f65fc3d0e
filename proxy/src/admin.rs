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
                Ok::<_, hyper::Error>(if req.uri().path() == "/metrics" {
                    metrics_response(&shared)
                } else {
                    json_response(
                        StatusCode::NOT_FOUND,
                        "{\"error\":\"only /metrics here\"}\n".into(),
                    )
                })
            }
        });
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(head_deadline);
        tokio::spawn(b.serve_connection(TokioIo::new(io), svc));
    })
}

/// Largest route table the admin socket accepts.
const MAX_ADMIN_BODY_BYTES: usize = 32 * 1024 * 1024;

/// A JSON answer.
fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
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

/// One request on the admin socket (`tailshift_routes::admin` is the protocol).
async fn admin(
    shared: Arc<Shared>,
    routes_file: Arc<PathBuf>,
    fit: Fit,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => json_response(StatusCode::OK, "{\"status\":\"ok\"}\n".into()),
        (&Method::GET, "/metrics") => metrics_response(&shared),
        (&Method::GET, "/upstreams") => {
            // Checked now: the caller (apply's pre-flight) wants the present, not the last round.
            let health = super::health::check_all(&shared).await;
            json_response(
                StatusCode::OK,
                serde_json::to_string_pretty(&health).unwrap_or_default() + "\n",
            )
        }
        (&Method::GET, "/routes") => {
            let t = shared.routes.load();
            let list: Vec<&Route> = t.routes.iter().map(|r| &r.route).collect();
            json_response(
                StatusCode::OK,
                serde_json::to_string_pretty(&list).unwrap_or_default() + "\n",
            )
        }
        (&Method::PUT, "/routes") => {
            let body =
                http_body_util::Limited::new(req.into_body(), MAX_ADMIN_BODY_BYTES).collect().await;
            let Ok(body) = body else {
                return Ok(json_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "{\"error\":\"table too large\"}\n".into(),
                ));
            };
            let parsed: Result<Vec<Route>, _> = serde_json::from_slice(&body.to_bytes());
            // Validate the whole table beside the old one; only then write and swap.
            match parsed
                .map_err(|e| e.to_string())
                .and_then(|r| RouteTable::new(r).map_err(|e| e.to_string()))
                .and_then(|t| fit.check(&t).map(|()| t))
            {
                Err(e) => json_response(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": e}).to_string() + "\n",
                ),
                Ok(table) => match table.save(&routes_file) {
                    Err(e) => json_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        serde_json::json!({"error": e.to_string()}).to_string() + "\n",
                    ),
                    Ok(()) => {
                        let n = table.routes.len();
                        shared.install(table);
                        json_response(StatusCode::OK, format!("{{\"routes\":{n}}}\n"))
                    }
                },
            }
        }
        _ => json_response(StatusCode::NOT_FOUND, "{\"error\":\"no such endpoint\"}\n".into()),
    })
}
