//! What the demo measured: a large body and a WebSocket echo through a proxy, the client's
//! requests over the whole run, each proxy's own cost, the legacy nodes left listening.

use crate::procs;
use crate::setup::Env;
use crate::summary::{self, Measured, Summary};
use crate::waves::Checker;
use crate::world::{HOSTS, World, say};
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tailshift_checks::CheckConfig;
use tailshift_util::exit::Exit;

/// Measures through a service moved to the storage host's proxy (if waves up to `last` moved
/// one), stops the client, and settles the summary; returns the exit code (client requests
/// that failed make a healthy run unhealthy).
pub(crate) fn measure(
    env: &Env,
    world: &mut World,
    checker: &Checker,
    last: usize,
    listening: &AtomicUsize,
    mut exit: Exit,
    s: &mut Summary,
) -> anyhow::Result<Exit> {
    say("[5/5] measuring");
    let (svcs, counter) = (checker.svcs, checker.counter);
    if let Some(v) = svcs.iter().find(|v| v.host == "storage" && v.wave.is_some_and(|w| w <= last))
    {
        through_a_proxy(env, world.proxies[0].child.id(), &v.fqdn(), s)?;
    }
    world.stop_load();
    let r = summary::Requests {
        total: counter.total.load(Ordering::SeqCst),
        served: counter.served.load(Ordering::SeqCst),
        failed: counter.failed.load(Ordering::SeqCst),
        failures: counter.failures.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        during_shared_restart: counter.during_restart.load(Ordering::SeqCst),
        shared_restarts: counter.restarts.as_ref().map(|r| r.count()).unwrap_or(0),
    };
    if r.failed > 0 {
        exit = if exit == Exit::Ok { Exit::Unhealthy } else { exit };
        s.problems.push(format!("{} client requests failed", r.failed));
    }
    s.requests = Measured::new(r);
    let mut usage = Vec::new();
    for (i, (host, ip, _)) in HOSTS.iter().enumerate() {
        let u = procs::usage(world.proxies[i].child.id())?;
        let routes = std::fs::read_to_string(env.proxy_state(host).join("routes.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.as_array().map(|a| a.len()))
            .unwrap_or(0);
        usage.push(summary::ProxyUsage {
            host: host.to_string(),
            addr: SocketAddr::new((*ip).into(), env.port).to_string(),
            routes,
            rss_kib: u.rss_kib,
            cpu_ms: u.cpu_ms,
        });
    }
    s.proxies = Measured::new(summary::Proxies { proxies: usage });
    s.legacy_nodes.value.after = listening.load(Ordering::SeqCst);
    s.every_name_answered = s
        .waves
        .iter()
        .map(|w| &w.check)
        .chain(s.rollback.iter().flat_map(|r| [&r.after_rollback, &r.after_reapply]))
        .all(|r| r.answered == r.names);
    s.ok = exit == Exit::Ok && s.problems.is_empty();
    Ok(exit)
}

/// 64 MiB streamed through the proxy (process `pid`) by the moved name `name`, with the
/// proxy's memory before and after; and a WebSocket echo through the same name.
fn through_a_proxy(env: &Env, pid: u32, name: &str, s: &mut Summary) -> anyhow::Result<()> {
    let before = procs::usage(pid).map(|u| u.rss_kib).unwrap_or(0);
    let t = Instant::now();
    let bytes = env.handle.block_on(fetch_all(&env.checks, name, "/large?mb=64"))?;
    let seconds = t.elapsed().as_secs_f64();
    let after = procs::usage(pid).map(|u| u.rss_kib).unwrap_or(0);
    if bytes != 64 << 20 {
        s.problems.push(format!("the large body through {name} was {bytes} bytes, not 64 MiB"));
    }
    s.large_body = Some(Measured::new(summary::LargeBody {
        name: name.to_string(),
        bytes,
        seconds,
        proxy_rss_kib_before: before,
        proxy_rss_kib_after: after,
    }));
    let echoed = env.handle.block_on(websocket_echo(&env.checks, name)).unwrap_or_else(|e| {
        s.problems.push(format!("WebSocket echo through {name}: {e:#}"));
        false
    });
    s.websocket_echo = Some(Measured::new(summary::Echo { echoed }));
    Ok(())
}

/// A TLS connection to `name` the way a client reaches it: the checks' own resolution
/// (through the responder) and trust (the development CA), what `apply` and the check rounds
/// use.
async fn connect(
    checks: &CheckConfig,
    name: &str,
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let addr = *tailshift_checks::resolve(checks, name)?
        .first()
        .with_context(|| format!("{name}: no address"))?;
    let cfg = tailshift_checks::client_config(checks)?;
    let tcp = tokio::net::TcpStream::connect((addr, checks.port)).await?;
    let sni = rustls_pki_types::ServerName::try_from(name.to_string())?;
    Ok(tokio_rustls::TlsConnector::from(cfg).connect(sni, tcp).await?)
}

/// GETs `path` from `name` and counts the body's bytes (never holding it).
async fn fetch_all(checks: &CheckConfig, name: &str, path: &str) -> anyhow::Result<u64> {
    use http_body_util::BodyExt;
    let tls = connect(checks, name).await?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, name)
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let resp = send.send_request(req).await?;
    if !resp.status().is_success() {
        bail!("{name}{path}: {}", resp.status());
    }
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame?.into_data() {
            n += d.len() as u64;
        }
    }
    Ok(n)
}

/// Sends one WebSocket message to `wss://name/ws` and waits for the echo.
async fn websocket_echo(checks: &CheckConfig, name: &str) -> anyhow::Result<bool> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let tls = connect(checks, name).await?;
    let url = format!("wss://{name}:{}/ws", checks.port);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await?;
    let text = format!("echo via {name}");
    ws.send(Message::text(text.clone())).await?;
    let got = tokio::time::timeout(Duration::from_secs(5), ws.next()).await?;
    let _ = ws.close(None).await;
    Ok(matches!(got, Some(Ok(Message::Text(t))) if t.as_str() == text))
}
