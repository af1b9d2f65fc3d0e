//! Active health checks: one task, one timer for every upstream (never a timer per route, so an
//! idle proxy stays asleep between rounds), off when the interval is 0. A check opens a
//! connection the way requests do (TCP or unix, TLS included) and closes it; the result is a
//! metric (`tailshift_upstream_up`) and the admin socket's `GET /upstreams`, which also checks
//! on demand (for operators and monitoring). Each round also prunes the upstream pool.

use super::handler::Shared;
use super::upstream::{Dial, describe};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
pub use tailshift_routes::admin::UpstreamHealth;

/// How long one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks every upstream of the current table once, concurrently; the routes' own services
/// in table order. Upstreams shared by several routes are dialed once.
pub async fn check_all(shared: &Shared) -> Vec<UpstreamHealth> {
    let table = shared.routes.load_full();
    let mut by_key: BTreeMap<Arc<str>, Arc<Dial>> = BTreeMap::new();
    for r in &table.routes {
        if let Some(d) = &r.dial {
            by_key.entry(r.dial_key.clone()).or_insert_with(|| d.clone());
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (key, dial) in by_key {
        let connector = shared.connector.clone();
        tasks.spawn(async move {
            let started = std::time::Instant::now();
            let r = tokio::time::timeout(CHECK_TIMEOUT, connector.open(&dial)).await;
            let result = match r {
                Ok(Ok(_conn)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no connection within {CHECK_TIMEOUT:?}")),
            };
            (key, describe(&dial), result, started.elapsed())
        });
    }
    let mut results = BTreeMap::new();
    while let Some(Ok((key, what, result, took))) = tasks.join_next().await {
        results.insert(key, (what, result, took));
    }
    let now =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    let out: Vec<UpstreamHealth> = table
        .routes
        .iter()
        .map(|r| match results.get(&r.dial_key) {
            Some((what, result, took)) => UpstreamHealth {
                service: r.service.clone(),
                upstream: what.clone(),
                healthy: result.is_ok(),
                error: result.clone().err(),
                checked_at: now,
                connect_ms: took.as_millis() as u64,
            },
            None => UpstreamHealth {
                service: r.service.clone(),
                upstream: r.upstream.url.to_string(),
                healthy: false,
                error: Some("the upstream URL is not http(s)".into()),
                checked_at: now,
                connect_ms: 0,
            },
        })
        .collect();
    for h in &out {
        shared.metrics.service(&h.service).set_up(h.healthy);
    }
    out
}

/// Checks every `interval` until the process ends.
pub async fn run(shared: Arc<Shared>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // The same round drops pooled connections idle past their time or closed by the
        // upstream: a route without traffic would otherwise keep them until its next request,
        // and a timer of their own would wake an idle proxy.
        shared.pool.prune();
        for h in check_all(&shared).await {
            if !h.healthy {
                eprintln!(
                    "WARN health check failed service={} upstream={} error={}",
                    h.service,
                    h.upstream,
                    h.error.as_deref().unwrap_or("")
                );
            }
        }
    }
}
