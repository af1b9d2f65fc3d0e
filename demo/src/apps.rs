//! The homelab's apps: one small real HTTP/1.1 server per app on loopback. Each answers a page
//! naming itself and saying who reached it (a legacy node or the proxy, told apart by the
//! connection's source address), echoes WebSocket messages on `/ws`, and streams a large body
//! on `/large` without holding it in memory.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, header};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use tokio_tungstenite::tungstenite::protocol::Role;

/// What every app shares: which source addresses are legacy nodes (for the page).
#[derive(Default)]
pub struct Shared {
    /// Source address of a legacy node -> the service it stands for.
    pub nodes: RwLock<HashMap<IpAddr, String>>,
}

/// A chunk of the large body (64 KiB of a repeating pattern).
const CHUNK: usize = 64 * 1024;

/// `/large?mb=N`: N MiB (default 32, at most 4096) in 64 KiB chunks, produced as read.
pub struct LargeBody {
    left: u64,
    chunk: Bytes,
}

impl LargeBody {
    fn new(bytes: u64) -> LargeBody {
        let pattern: Vec<u8> = (0..CHUNK).map(|i| b"tailshift demo\n"[i % 15]).collect();
        LargeBody { left: bytes, chunk: Bytes::from(pattern) }
    }
}

impl Body for LargeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK as u64) as usize;
        self.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.left)
    }
}

type AppBody = http_body_util::Either<http_body_util::Full<Bytes>, LargeBody>;

fn full(status: StatusCode, ctype: &str, body: String) -> Response<AppBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, ctype)
        .body(http_body_util::Either::Left(http_body_util::Full::new(Bytes::from(body))))
        .expect("static response parts")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Serves one app on a TCP listener until the task is dropped.
pub async fn serve_tcp(app: Arc<str>, listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let via = via(&shared, Some(peer.ip()));
        tokio::spawn(serve_conn(TokioIo::new(stream), app.clone(), via));
    }
}

/// Serves one app on a unix socket until the task is dropped.
pub async fn serve_unix(app: Arc<str>, listener: tokio::net::UnixListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let via = via(&shared, None);
        tokio::spawn(serve_conn(TokioIo::new(stream), app.clone(), via));
    }
}

/// Who connected, in words for the page.
fn via(shared: &Shared, peer: Option<IpAddr>) -> Arc<str> {
    let Some(ip) = peer else {
        return "reached over its unix socket (a legacy node or the proxy: a socket does not say)"
            .into();
    };
    match shared.nodes.read().unwrap_or_else(|p| p.into_inner()).get(&ip) {
        Some(svc) => format!("served through the legacy tsnsrv node of {svc} ({ip})").into(),
        None => "served through the tailshift proxy".into(),
    }
}

async fn serve_conn<I>(io: TokioIo<I>, app: Arc<str>, via: Arc<str>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let (app, via) = (app.clone(), via.clone());
        async move { Ok::<_, Infallible>(handle(req, &app, &via)) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades()
        .await;
}

fn handle(mut req: Request<Incoming>, app: &str, via: &str) -> Response<AppBody> {
    let path = req.uri().path().to_string();
    if path == "/ws" {
        return websocket(&mut req);
    }
    if path == "/large" {
        let mb: u64 = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("mb=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(32)
            .min(4096);
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(http_body_util::Either::Right(LargeBody::new(mb << 20)))
            .expect("static response parts");
    }
    full(StatusCode::OK, "text/html; charset=utf-8", page(&req, app, via))
}

/// The 101 answer, and the echo once hyper hands the connection over.
fn websocket(req: &mut Request<Incoming>) -> Response<AppBody> {
    let key = req.headers().get("sec-websocket-key").map(|k| k.as_bytes().to_vec());
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let Some(key) = key.filter(|_| upgrade) else {
        return full(StatusCode::BAD_REQUEST, "text/plain", "a WebSocket upgrade, please\n".into());
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(
            "sec-websocket-accept",
            tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key),
        )
        .body(http_body_util::Either::Left(http_body_util::Full::new(Bytes::new())))
        .expect("static response parts")
}

/// The page: the app, the name it was opened by, who carried the request, the headers a
/// tsnsrv user's app relies on, and a WebSocket echo run by the browser.
fn page(req: &Request<Incoming>, app: &str, via: &str) -> String {
    let h = |n: &str| {
        req.headers().get(n).and_then(|v| v.to_str().ok()).map(escape).unwrap_or_else(|| "-".into())
    };
    let colour = if via.contains("proxy") { "#1f7a4d" } else { "#8a5a00" };
    let rows: String = ["host", "x-forwarded-host", "x-forwarded-for", "x-forwarded-proto"]
        .iter()
        .map(|n| format!("<tr><td><code>{n}</code></td><td><code>{}</code></td></tr>", h(n)))
        .collect();
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{app} · tailshift demo</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 44em; color: #222 }}
.via {{ padding: .7em 1em; border-radius: 6px; color: #fff; background: {colour} }}
code {{ background: #f0f0f0; padding: 0 .3em }}
td {{ padding: .2em .8em .2em 0 }}
</style></head>
<body>
<h1 id="app">{app}</h1>
<p class="via" id="via">{via}</p>
<table>{rows}</table>
<p>WebSocket echo: <strong id="echo">waiting</strong></p>
<script>
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
ws.onopen = () => ws.send("echo from {app} via " + location.host);
ws.onmessage = (e) => {{ document.getElementById("echo").textContent = e.data; ws.close(); }};
ws.onerror = () => {{ document.getElementById("echo").textContent = "failed"; }};
</script>
</body></html>
"#,
        app = escape(app),
        via = escape(via),
    )
}
