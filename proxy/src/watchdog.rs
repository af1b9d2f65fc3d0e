//! The header-read deadline of client connections, kept by one coarse timer for all of them.
//!
//! A client that opens a connection (or keeps one alive after a response) must send a complete
//! request head within `header_read_timeout_ms`, or the connection is closed: slow-loris
//! clients would otherwise hold sockets forever. hyper can do this itself, but it arms a timer
//! for every request, and on a busy proxy that registration costs more than a tenth of the CPU
//! per request (BENCHMARKS.md). Here a request costs two atomic updates: each connection says
//! when it started waiting for a head and how many requests it has in flight, and one ticker
//! task, which runs only while connections exist (an idle proxy has no timer at all), closes
//! those that waited too long. Upgraded connections (WebSocket) are no longer HTTP and are left
//! alone.

use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Not waiting for a head (upgraded, or the deadline is off).
const EXEMPT: u64 = u64::MAX;

/// The deadline keeper shared by every listener.
#[derive(Clone)]
pub struct Watchdog {
    inner: Arc<Inner>,
}

struct Inner {
    timeout_ms: u64,
    tick: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch`, refreshed by the ticker (and when a connection arrives).
    now_ms: AtomicU64,
    conns: Mutex<Registry>,
    /// The ticker task is alive (changed only with `conns` locked).
    running: AtomicBool,
}

#[derive(Default)]
struct Registry {
    next: u64,
    watches: rustc_hash::FxHashMap<u64, Arc<Watch>>,
}

/// One connection's state.
pub struct Watch {
    in_flight: AtomicU32,
    waiting_since: AtomicU64,
    expired: tokio::sync::Notify,
    inner: Arc<Inner>,
}

impl Watchdog {
    /// A watchdog closing connections that take longer than `timeout` for a request head.
    pub fn new(timeout: Duration) -> Watchdog {
        let timeout_ms = timeout.as_millis().max(1) as u64;
        Watchdog {
            inner: Arc::new(Inner {
                timeout_ms,
                tick: Duration::from_millis((timeout_ms / 4).clamp(10, 250)),
                epoch: Instant::now(),
                now_ms: AtomicU64::new(0),
                conns: Mutex::new(Registry::default()),
                running: AtomicBool::new(false),
            }),
        }
    }

    /// Registers a new connection, waiting for its first head from now on.
    pub fn register(&self) -> Registration {
        let inner = &self.inner;
        let now = inner.epoch.elapsed().as_millis() as u64;
        inner.now_ms.fetch_max(now, Ordering::Relaxed);
        let watch = Arc::new(Watch {
            in_flight: AtomicU32::new(0),
            waiting_since: AtomicU64::new(now),
            expired: tokio::sync::Notify::new(),
            inner: inner.clone(),
        });
        let mut reg = inner.conns.lock().unwrap_or_else(|p| p.into_inner());
        let key = reg.next;
        reg.next += 1;
        reg.watches.insert(key, watch.clone());
        if !inner.running.swap(true, Ordering::SeqCst) {
            tokio::spawn(ticker(inner.clone()));
        }
        Registration { key, watch }
    }
}

/// The ticker: refreshes the clock and expires connections; ends when none is left.
async fn ticker(inner: Arc<Inner>) {
    let mut expired = Vec::new();
    loop {
        tokio::time::sleep(inner.tick).await;
        let now = inner.epoch.elapsed().as_millis() as u64;
        inner.now_ms.fetch_max(now, Ordering::Relaxed);
        {
            let reg = inner.conns.lock().unwrap_or_else(|p| p.into_inner());
            if reg.watches.is_empty() {
                inner.running.store(false, Ordering::SeqCst);
                return;
            }
            for w in reg.watches.values() {
                // Acquire pairs with the Release of a finished request: its new waiting time
                // is seen along with its zero.
                if w.in_flight.load(Ordering::Acquire) != 0 {
                    continue;
                }
                let since = w.waiting_since.load(Ordering::Relaxed);
                if since != EXEMPT && now.saturating_sub(since) > inner.timeout_ms {
                    expired.push(w.clone());
                }
            }
        }
        for w in expired.drain(..) {
            w.expired.notify_one();
        }
    }
}

/// A connection's place in the watchdog; leaving it (drop) unregisters the connection.
pub struct Registration {
    key: u64,
    watch: Arc<Watch>,
}

impl Registration {
    /// The connection's state, for its requests.
    pub fn watch(&self) -> &Arc<Watch> {
        &self.watch
    }

    /// Resolves when the connection waited too long for a request head.
    pub async fn expired(&self) {
        self.watch.expired.notified().await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut reg = self.watch.inner.conns.lock().unwrap_or_else(|p| p.into_inner());
        reg.watches.remove(&self.key);
    }
}

impl Watch {
    /// A request head arrived: the connection is busy until its response is done.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { watch: self.clone() }
    }

    /// The connection was upgraded: no more heads to wait for.
    pub fn exempt(&self) {
        self.waiting_since.store(EXEMPT, Ordering::Relaxed);
    }
}

impl InFlight {
    /// The request upgraded its connection (101): no more heads to wait for on it.
    pub fn exempt(&self) {
        self.watch.exempt();
    }
}

/// One request in flight; when it is dropped (its response body is done, or the request
/// failed), the connection waits for the next head.
pub struct InFlight {
    watch: Arc<Watch>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let w = &self.watch;
        if w.waiting_since.load(Ordering::Relaxed) != EXEMPT {
            w.waiting_since.store(w.inner.now_ms.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        w.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// A response body that keeps its request in flight until it is done.
pub struct Tracked<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    /// Wraps `body`.
    pub fn new(body: B, in_flight: InFlight) -> Tracked<B> {
        Tracked { body, _in_flight: in_flight }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
