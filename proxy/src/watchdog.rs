//! Client connections' deadlines and limits, kept by one coarse timer for all of a listener's
//! connections.
//!
//! A client that opens a connection (or keeps one alive after a response) must send a complete
//! request head within `header_read_timeout_ms`, or the connection is closed: slow-loris
//! clients would otherwise hold sockets forever. hyper can do this itself, but it arms a timer
//! for every request, and on a busy proxy that registration costs more than a tenth of the CPU
//! per request (BENCHMARKS.md). Here a request costs a few atomic updates: each connection says
//! when it started waiting for a head and how many requests it has in flight, and one ticker
//! task per listener, which runs only while connections exist (an idle proxy has no timer at
//! all), closes those that waited too long. Upgraded connections (WebSocket) are no longer HTTP
//! and are left alone.
//!
//! The same ticker keeps the rules against clients that hold a connection by being slow
//! (issue 15 F2), each measured so that a slow but working client is never the one cut:
//! - a request body that gives nothing for `body_read_timeout_ms` while the proxy waits for it
//!   (inactivity: a long upload that keeps sending is never cut, and time spent waiting for the
//!   upstream to take the body does not count);
//! - a client that takes less than `min_send_rate` bytes per second over a window while the
//!   proxy has bytes waiting for it (a write the socket would not take, or a response frame
//!   hyper has not yet written out): between server-sent events nothing waits, so no rate
//!   applies;
//! - at most `max_connections` per listener: at the cap, the connection idle longest is closed
//!   for a new one; when none is idle, accepting waits (new connections queue in the kernel).
//!   When descriptors run out, the listener's connections idle longest are closed too, and
//!   while requests wait for a descriptor to dial, the connections that have kept the proxy
//!   waiting longest.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

/// Not waiting for a head (upgraded, or the deadline is off).
mod meters;
pub use meters::{BodyClock, InFlight, Metered, Tracked};

const EXEMPT: u64 = u64::MAX;

/// No rate window open.
const NO_WINDOW: u64 = u64::MAX;

/// A connection that has not sent its first request is spared by eviction this long (or half
/// the head deadline, if shorter): a client sends its head as soon as it connects.
const FRESH_GRACE_MS: u64 = 1000;

/// A listener's limits (from the proxy's TOML).
#[derive(Clone, Debug)]
pub struct Limits {
    /// How long a connection may take to send a request head.
    pub head_timeout: Duration,
    /// How long a request body may give nothing while the proxy waits for it (zero: off).
    pub body_timeout: Duration,
    /// Bytes per second a client must take while bytes wait for it (0: off).
    pub min_send_rate: u64,
    /// The window `min_send_rate` is measured over.
    pub send_window: Duration,
    /// Connections the listener holds at most.
    pub max_connections: usize,
}

/// Why the proxy closed a client connection (the `reason` label of
/// `tailshift_connections_cut_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// No complete request head in time (idle keep-alive connections included).
    HeadTimeout = 0,
    /// A request body gave nothing for `body_read_timeout_ms`.
    BodyTimeout = 1,
    /// The client took less than `min_send_rate` while bytes waited for it.
    SlowReader = 2,
    /// Closed, idle, to make room for a new connection at `max_connections`, or when
    /// descriptors ran out.
    EvictedIdle = 3,
    /// Closed before its deadline, having kept the proxy waiting (for a request body, or for
    /// the client to read) for a while, because requests already accepted wait for a
    /// descriptor.
    ShedStalled = 4,
}

/// Client connections the proxy closed, indexed by [`Cut`].
static CONNECTIONS_CUT: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

impl Cut {
    /// Every reason, in the order of their counters.
    pub const ALL: [Cut; 5] =
        [Cut::HeadTimeout, Cut::BodyTimeout, Cut::SlowReader, Cut::EvictedIdle, Cut::ShedStalled];

    /// The metric's `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Cut::HeadTimeout => "head_timeout",
            Cut::BodyTimeout => "body_timeout",
            Cut::SlowReader => "slow_reader",
            Cut::EvictedIdle => "evicted_idle",
            Cut::ShedStalled => "shed_stalled",
        }
    }

    /// Connections closed for this reason since the proxy started.
    pub fn count(self) -> u64 {
        CONNECTIONS_CUT[self as usize].load(Ordering::Relaxed)
    }
}

/// One listener's deadline keeper.
#[derive(Clone)]
pub struct Watchdog {
    inner: Arc<Inner>,
}

struct Inner {
    head_ms: u64,
    body_ms: u64,
    min_rate: u64,
    window_ms: u64,
    max_conns: usize,
    /// How long a connection that has sent no request yet is spared by eviction.
    grace_ms: u64,
    tick: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch`, refreshed by the ticker (and when a connection arrives).
    now_ms: AtomicU64,
    conns: Mutex<Registry>,
    /// The ticker task is alive (changed only with `conns` locked).
    running: AtomicBool,
    /// A connection went away while the listener was at its cap.
    freed: tokio::sync::Notify,
}

#[derive(Default)]
struct Registry {
    next: u64,
    watches: rustc_hash::FxHashMap<u64, Arc<Watch>>,
}

/// One connection's state. The connection's own task writes it with relaxed atomic stores
/// (no lock, no timer); the ticker reads it.
pub struct Watch {
    in_flight: AtomicU32,
    waiting_since: AtomicU64,
    /// No request has begun on the connection yet.
    fresh: AtomicBool,
    /// The last write (or flush) toward the client did not go through: bytes wait for it.
    blocked: AtomicBool,
    /// Bytes written toward the client so far.
    written: AtomicU64,
    /// The client socket's descriptor (-1 once it is closed), for the bytes it still holds.
    fd: AtomicI32,
    /// Response bodies whose last frame hyper took but has not asked past yet (an HTTP/2
    /// stream waiting for the client's flow-control window shows only here).
    held: AtomicU32,
    /// Request bodies the proxy is waiting on for bytes from the client.
    reading: AtomicU32,
    /// When a request body last gave bytes or started to be waited on.
    read_progress: AtomicU64,
    /// The ticker's rate window: when it opened, and [`Watch::taken`] then.
    window_start: AtomicU64,
    window_taken: AtomicU64,
    expired: tokio::sync::Notify,
    inner: Arc<Inner>,
}

impl Watchdog {
    /// A watchdog keeping `limits` for one listener's connections.
    pub fn new(limits: &Limits) -> Watchdog {
        Watchdog::with_grace(limits, FRESH_GRACE_MS)
    }

    /// A watchdog for the metrics listener and the admin socket: at the cap, the connection
    /// idle longest is closed for a new one at once, a connection that has sent no head yet
    /// included (no grace). Their clients (Prometheus, `migrate apply`, curl) send their head
    /// as soon as they connect, and with a grace of a second a flood of idle sockets queued
    /// ahead of a scrape would each hold a slot for that second: 16 slots let 16 through a
    /// second, and a scrape behind 200 waited more than 12.
    pub fn side(limits: &Limits) -> Watchdog {
        Watchdog::with_grace(limits, 0)
    }

    /// A watchdog sparing a connection that has sent no head for `grace_ms` at most (or half
    /// the head deadline, if shorter).
    fn with_grace(limits: &Limits, grace_ms: u64) -> Watchdog {
        let ms = |d: Duration| d.as_millis().min(u64::MAX as u128 - 1) as u64;
        let head_ms = ms(limits.head_timeout).max(1);
        let body_ms = ms(limits.body_timeout);
        let window_ms = ms(limits.send_window).max(1);
        // A quarter of the shortest deadline: a cut comes at most a quarter late.
        let mut shortest = head_ms;
        if body_ms > 0 {
            shortest = shortest.min(body_ms);
        }
        if limits.min_send_rate > 0 {
            shortest = shortest.min(window_ms);
        }
        Watchdog {
            inner: Arc::new(Inner {
                head_ms,
                body_ms,
                min_rate: limits.min_send_rate,
                window_ms,
                max_conns: limits.max_connections.max(1),
                grace_ms: (head_ms / 2).min(grace_ms),
                tick: Duration::from_millis((shortest / 4).clamp(10, 250)),
                epoch: Instant::now(),
                now_ms: AtomicU64::new(0),
                conns: Mutex::new(Registry::default()),
                running: AtomicBool::new(false),
                freed: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Waits until the listener may take one more connection: below its cap, or at it with
    /// an idle connection that [`Watchdog::register`] will close for the new one. While every
    /// connection is busy, the caller holds the new connection unserved (and accepts no more:
    /// later ones queue in the kernel) rather than going over the cap or dropping it.
    pub async fn admit(&self) {
        let inner = &self.inner;
        loop {
            {
                let reg = inner.conns.lock().unwrap_or_else(|p| p.into_inner());
                let now = inner.now_ms.load(Ordering::Relaxed);
                if reg.watches.len() < inner.max_conns
                    || reg.watches.values().any(|w| w.evictable(now, inner.grace_ms))
                {
                    return;
                }
            }
            // A connection that goes idle does not signal (that would cost every request):
            // looked at again each tick.
            tokio::select! {
                _ = inner.freed.notified() => {}
                _ = tokio::time::sleep(inner.tick) => {}
            }
        }
    }

    /// Registers a new connection, waiting for its first head from now on. Over the cap, the
    /// connection idle longest is closed for it.
    pub fn register(&self) -> Registration {
        let inner = &self.inner;
        let now = inner.epoch.elapsed().as_millis() as u64;
        inner.now_ms.fetch_max(now, Ordering::Relaxed);
        let watch = Arc::new(Watch {
            in_flight: AtomicU32::new(0),
            waiting_since: AtomicU64::new(now),
            fresh: AtomicBool::new(true),
            blocked: AtomicBool::new(false),
            written: AtomicU64::new(0),
            fd: AtomicI32::new(-1),
            held: AtomicU32::new(0),
            reading: AtomicU32::new(0),
            read_progress: AtomicU64::new(now),
            window_start: AtomicU64::new(NO_WINDOW),
            window_taken: AtomicU64::new(0),
            expired: tokio::sync::Notify::new(),
            inner: inner.clone(),
        });
        let mut reg = inner.conns.lock().unwrap_or_else(|p| p.into_inner());
        let key = reg.next;
        reg.next += 1;
        let evicted = if reg.watches.len() >= inner.max_conns {
            let oldest = reg
                .watches
                .iter()
                .filter(|(_, w)| w.evictable(now, inner.grace_ms))
                .min_by_key(|(_, w)| w.waiting_since.load(Ordering::Relaxed))
                .map(|(k, _)| *k);
            oldest.and_then(|k| reg.watches.remove(&k))
        } else {
            None
        };
        reg.watches.insert(key, watch.clone());
        if !inner.running.swap(true, Ordering::SeqCst) {
            tokio::spawn(ticker(inner.clone()));
        }
        drop(reg);
        if let Some(w) = evicted {
            cut(&w, Cut::EvictedIdle);
        }
        Registration { key, watch }
    }
}

impl Watchdog {
    /// Closes up to `most` of the connections idle longest (when descriptors run out: an idle
    /// connection's descriptor serves the next client better). How many it closed.
    pub fn evict_idle(&self, most: usize) -> usize {
        let inner = &self.inner;
        let now = inner.now_ms.load(Ordering::Relaxed);
        let mut reg = inner.conns.lock().unwrap_or_else(|p| p.into_inner());
        let mut idle: Vec<(u64, u64)> = reg
            .watches
            .iter()
            .filter(|(_, w)| w.evictable(now, inner.grace_ms))
            .map(|(k, w)| (w.waiting_since.load(Ordering::Relaxed), *k))
            .collect();
        if idle.len() > most {
            idle.select_nth_unstable(most);
            idle.truncate(most);
        }
        let evicted: Vec<Arc<Watch>> =
            idle.iter().filter_map(|(_, k)| reg.watches.remove(k)).collect();
        drop(reg);
        for w in &evicted {
            cut(w, Cut::EvictedIdle);
        }
        evicted.len()
    }
}

impl Watchdog {
    /// Closes up to `most` of the connections that have kept the proxy waiting longest, at least
    /// `stalled_ms`: a request body that gives nothing, or a client that does not take what
    /// waits for it (its rate window open that long). For when requests already accepted wait
    /// for a descriptor that such connections hold: they would be cut at their deadline anyway,
    /// and a flood of them would otherwise hold every descriptor until then. How many it closed.
    pub fn shed_stalled(&self, most: usize, stalled_ms: u64) -> usize {
        let inner = &self.inner;
        let now = inner.now_ms.load(Ordering::Relaxed);
        let mut reg = inner.conns.lock().unwrap_or_else(|p| p.into_inner());
        let mut stalled: Vec<(u64, u64)> = reg
            .watches
            .iter()
            .filter_map(|(k, w)| {
                if w.waiting_since.load(Ordering::Relaxed) == EXEMPT {
                    return None;
                }
                let since = if w.reading.load(Ordering::Acquire) > 0 {
                    w.read_progress.load(Ordering::Relaxed)
                } else if w.unsent() {
                    w.window_start.load(Ordering::Relaxed)
                } else {
                    return None;
                };
                (since != NO_WINDOW && now.saturating_sub(since) >= stalled_ms)
                    .then_some((since, *k))
            })
            .collect();
        if stalled.len() > most {
            stalled.select_nth_unstable(most);
            stalled.truncate(most);
        }
        let shed: Vec<Arc<Watch>> =
            stalled.iter().filter_map(|(_, k)| reg.watches.remove(k)).collect();
        drop(reg);
        for w in &shed {
            cut(w, Cut::ShedStalled);
        }
        shed.len()
    }
}

/// Closes a connection (its task drops it) and counts why.
fn cut(w: &Watch, why: Cut) {
    CONNECTIONS_CUT[why as usize].fetch_add(1, Ordering::Relaxed);
    w.expired.notify_one();
}

/// Connections a listener must have held before a fall to a quarter of them returns the
/// allocator's free memory to the system.
const TRIM_AFTER: usize = 256;

unsafe extern "C" {
    /// mimalloc's collection (the C library the global allocator is built on; its Rust binding
    /// declares it only under a feature this project does not enable).
    fn mi_collect(force: bool);
}

/// Gives the memory freed after a crowd of connections back to the system. mimalloc returns
/// freed pages lazily, on later allocations: a proxy that goes quiet after a flood of slow
/// clients (hundreds of kilobytes of buffers each) would keep the flood's footprint.
fn trim_memory() {
    // SAFETY: mi_collect takes no pointers; it only walks the allocator's own structures.
    unsafe { mi_collect(true) }
}

/// The ticker: refreshes the clock and closes connections past a limit; ends when none is
/// left.
async fn ticker(inner: Arc<Inner>) {
    let mut expired = Vec::new();
    // The most connections held since the memory was last trimmed, and whether there ever
    // was a crowd (the last of it gone, the memory is trimmed once more).
    let mut peak = 0;
    let mut crowd = false;
    loop {
        tokio::time::sleep(inner.tick).await;
        let now = inner.epoch.elapsed().as_millis() as u64;
        inner.now_ms.fetch_max(now, Ordering::Relaxed);
        let mut trim = false;
        {
            let mut reg = inner.conns.lock().unwrap_or_else(|p| p.into_inner());
            let held = reg.watches.len();
            peak = peak.max(held);
            crowd |= peak >= TRIM_AFTER;
            if (peak >= TRIM_AFTER && held * 4 <= peak) || (crowd && held == 0) {
                trim = true;
                peak = held;
            }
            if reg.watches.is_empty() {
                inner.running.store(false, Ordering::SeqCst);
                drop(reg);
                if trim {
                    trim_memory();
                }
                return;
            }
            // Taken out of the registry at once: counted once, and the slot is free for the
            // next connection even before the closing task has run.
            reg.watches.retain(|_, w| match inner.verdict(w, now) {
                Some(why) => {
                    expired.push((w.clone(), why));
                    false
                }
                None => true,
            });
        }
        if !expired.is_empty() {
            inner.freed.notify_one();
        }
        for (w, why) in expired.drain(..) {
            cut(&w, why);
        }
        if trim {
            trim_memory();
        }
    }
}

impl Inner {
    /// Whether (and why) a connection is to be closed now. Keeps its rate window.
    fn verdict(&self, w: &Watch, now: u64) -> Option<Cut> {
        let since = w.waiting_since.load(Ordering::Relaxed);
        if since == EXEMPT {
            return None;
        }
        // Acquire pairs with the Release of a body that started waiting: its start is seen
        // along with the count.
        if self.body_ms > 0
            && w.reading.load(Ordering::Acquire) > 0
            && now.saturating_sub(w.read_progress.load(Ordering::Relaxed)) > self.body_ms
        {
            return Some(Cut::BodyTimeout);
        }
        // Acquire pairs with the Release of a finished request: its new waiting time is seen
        // along with its zero.
        let in_flight = w.in_flight.load(Ordering::Acquire);
        if w.unsent() {
            if self.min_rate > 0 {
                let start = w.window_start.load(Ordering::Relaxed);
                if start == NO_WINDOW {
                    w.window_start.store(now, Ordering::Relaxed);
                    w.window_taken.store(w.taken(), Ordering::Relaxed);
                } else if now.saturating_sub(start) >= self.window_ms {
                    let taken = w.taken();
                    let owed = self.min_rate.saturating_mul(now - start) / 1000;
                    if taken.saturating_sub(w.window_taken.load(Ordering::Relaxed)) < owed {
                        return Some(Cut::SlowReader);
                    }
                    w.window_start.store(now, Ordering::Relaxed);
                    w.window_taken.store(taken, Ordering::Relaxed);
                }
            }
            // The last response is still going out (its body done, its tail in hyper's or the
            // socket's buffer): the wait for the next head starts when it is out, so a slow but
            // reading client is never cut as if it were idle.
            if in_flight == 0 {
                let _ = w.waiting_since.compare_exchange(
                    since,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            return None;
        }
        // Nothing waits for the client: a rate window, if any, is over.
        w.window_start.store(NO_WINDOW, Ordering::Relaxed);
        if in_flight == 0 && now.saturating_sub(since) > self.head_ms {
            return Some(Cut::HeadTimeout);
        }
        None
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

    /// Resolves when the connection is to be closed: it waited too long for a request head or
    /// body, it reads too slowly, or it was idle when the listener needed its slot.
    pub async fn expired(&self) {
        self.watch.expired.notified().await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let inner = &self.watch.inner;
        let mut reg = inner.conns.lock().unwrap_or_else(|p| p.into_inner());
        if reg.watches.remove(&self.key).is_some() && reg.watches.len() + 1 >= inner.max_conns {
            inner.freed.notify_one();
        }
    }
}

impl Watch {
    /// A request head arrived: the connection is busy until its response is done.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.fresh.store(false, Ordering::Relaxed);
        InFlight { watch: self.clone(), held: false }
    }

    /// The connection was upgraded: no more heads to wait for.
    pub fn exempt(&self) {
        self.waiting_since.store(EXEMPT, Ordering::Relaxed);
    }

    /// A clock for one request body's reads (the inactivity deadline).
    pub fn body_clock(self: &Arc<Self>) -> BodyClock {
        BodyClock { watch: self.clone(), waiting: false }
    }

    /// Bytes the client has taken: written, less what its socket still holds unacknowledged
    /// (TCP) or unread (unix). Bytes the socket accepted are not taken yet: a socket buffer of
    /// megabytes accepts writes in bursts, long apart when the client is slow, and would make
    /// a steady reader look stalled between them.
    fn taken(&self) -> u64 {
        let written = self.written.load(Ordering::Relaxed);
        let fd = self.fd.load(Ordering::Relaxed);
        if fd < 0 {
            return written;
        }
        let mut queued: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ for sockets) writes one int. A descriptor closed (or even
        // reused) since it was loaded gives an error or another socket's figure: one reading
        // of a connection that is going away.
        let ok = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) } == 0;
        if ok { written.saturating_sub(queued.max(0) as u64) } else { written }
    }

    /// Bytes wait for the client.
    fn unsent(&self) -> bool {
        self.blocked.load(Ordering::Relaxed) || self.held.load(Ordering::Relaxed) != 0
    }

    /// Waiting for a request head with nothing in flight and nothing unsent.
    fn idle(&self) -> bool {
        self.waiting_since.load(Ordering::Relaxed) != EXEMPT
            && self.in_flight.load(Ordering::Relaxed) == 0
            && !self.unsent()
    }

    /// Idle, and closing it loses no request: it has served one (a client reusing a kept-alive
    /// connection is ready for it to close, as at the idle deadline), or it has waited for its
    /// first head past `grace_ms`. A connection just accepted is idle only until its head is
    /// read, and its client has most likely sent one already.
    fn evictable(&self, now: u64, grace_ms: u64) -> bool {
        self.idle()
            && (!self.fresh.load(Ordering::Relaxed)
                || now.saturating_sub(self.waiting_since.load(Ordering::Relaxed)) >= grace_ms)
    }

    fn now(&self) -> u64 {
        self.inner.now_ms.load(Ordering::Relaxed)
    }
}
