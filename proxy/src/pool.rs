//! The request path's upstream connections: HTTP/1.1 connections kept per way of dialing (the
//! route's dial key), checked out and returned without a task per request. A connection goes
//! back when its response body has been read to the end (or had none); one whose response was
//! abandoned midway is dropped, as its stream has unread bytes. A request that could not even
//! be written on a reused connection (the upstream closed it meanwhile) is sent once more on a
//! fresh one.

use super::h1::{self, InlineBody, SendError};
use super::upstream::{Connector, Dial};
use super::watchdog::BodyClock;
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustc_hash::FxHashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Idle connections of one dial, newest last, with when each went idle.
type IdleList = Vec<(h1::Conn, Instant)>;

/// The error type of response bodies on the request path.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The idle connections of one dial key, shared by every route (of every installed table)
/// that dials the same way. A route keeps its slot once found, so a request neither hashes
/// nor compares the key (with hundreds of routes, that lookup was a cache miss per request).
pub struct Slot {
    idle: Mutex<IdleList>,
    idle_timeout: Duration,
    max_idle: usize,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.idle.lock().map_or(0, |l| l.len());
        write!(f, "Slot({idle} idle)")
    }
}

impl Slot {
    /// Whether an idle connection may still be reused: not idle too long, not closed by the
    /// upstream.
    fn reusable(&self, c: &mut h1::Conn, since: Instant) -> bool {
        since.elapsed() < self.idle_timeout && c.is_usable()
    }

    fn checkout(&self) -> Option<h1::Conn> {
        let mut list = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((mut c, since)) = list.pop() {
            if self.reusable(&mut c, since) {
                return Some(c);
            }
        }
        None
    }
}

impl h1::ConnHome for Slot {
    fn put_back(&self, c: h1::Conn) {
        let mut list = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if list.len() < self.max_idle {
            list.push((c, Instant::now()));
        }
    }
}

/// Idle connections by dial key.
pub struct Pool {
    connector: Connector,
    slots: Mutex<FxHashMap<Arc<str>, Arc<Slot>>>,
    idle_timeout: Duration,
    max_idle: usize,
}

impl Pool {
    /// A pool over a connector.
    pub fn new(connector: Connector, idle_timeout: Duration, max_idle: usize) -> Pool {
        Pool { connector, slots: Mutex::new(FxHashMap::default()), idle_timeout, max_idle }
    }

    /// Forgets the slots of upstreams no route dials any more. Their idle connections close
    /// once the last table that used them is gone (requests still in flight keep theirs), so
    /// a proxy whose routes change for months holds no sockets to upstreams it left.
    pub fn retain<'a>(&self, live: impl IntoIterator<Item = &'a Arc<str>>) {
        let live: rustc_hash::FxHashSet<&str> = live.into_iter().map(|k| &**k).collect();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|k, _| live.contains(&**k));
    }

    /// Drops the idle connections that are past the idle timeout or that the upstream closed.
    pub fn prune(&self) {
        let slots: Vec<Arc<Slot>> =
            self.slots.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for slot in slots {
            let mut list = slot.idle.lock().unwrap_or_else(|p| p.into_inner());
            list.retain_mut(|(c, since)| slot.reusable(c, *since));
        }
    }

    /// The slot of a dial key, made on first use.
    pub fn slot(&self, key: &Arc<str>) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Slot {
                    idle: Mutex::new(Vec::new()),
                    idle_timeout: self.idle_timeout,
                    max_idle: self.max_idle,
                })
            })
            .clone()
    }

    async fn connect(&self, dial: &Dial) -> Result<h1::Conn, SendError> {
        let io = Box::pin(self.connector.open(dial))
            .await
            .map_err(|e| SendError::Other(e.to_string()))?;
        Ok(h1::Conn::new(io))
    }

    /// Sends an origin-form request over a pooled (or new) connection (a client body that cannot
    /// be read is [`SendError::ClientBody`], the rest the upstream's); `body_clock` learns
    /// when its body keeps the proxy waiting on the client. An upgrade request (WebSocket)
    /// gets a connection of its own through hyper's client, which hands the connection over
    /// after the 101.
    pub async fn send(
        &self,
        slot: &Arc<Slot>,
        dial: &Dial,
        req: Request<Incoming>,
        body_clock: Option<BodyClock>,
    ) -> Result<Response<ForwardBody>, SendError> {
        if req.headers().contains_key(http::header::UPGRADE) {
            // Boxed: rare, and its hyper handshake would enlarge every request's future.
            return Box::pin(self.send_upgrade(dial, req)).await.map_err(SendError::Other);
        }
        let has_body = !req.body().is_end_stream();
        let head = h1::Head::new(&req, has_body);
        let body = has_body.then(|| (req.into_body(), body_clock));
        let (conn, reused) = match slot.checkout() {
            Some(c) => (c, true),
            None => (self.connect(dial).await?, false),
        };
        let (resp, framing, keep_alive, conn) = match conn.send(&head, body).await {
            Ok(r) => r,
            // The upstream closed the idle connection as we reused it: the request never
            // reached it. Once more on a fresh connection, when there is no body to replay.
            Err(SendError::ClosedBeforeResponse(_)) if reused && !head.has_body() => {
                self.connect(dial).await?.send(&head, None).await?
            }
            Err(e) => return Err(e),
        };
        let body = InlineBody::new(conn, framing, keep_alive, slot.clone());
        Ok(resp.map(|()| ForwardBody::Inline(body)))
    }

    async fn send_upgrade(
        &self,
        dial: &Dial,
        req: Request<Incoming>,
    ) -> Result<Response<ForwardBody>, String> {
        let io = self.connector.open(dial).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            http1::handshake(TokioIo::new(io)).await.map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let resp = sender.send_request(req).await.map_err(|e| error_chain(&e))?;
        Ok(resp.map(ForwardBody::Hyper))
    }
}

fn error_chain(e: &hyper::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// An upstream response body: read inline from a pooled connection, or (upgrades) hyper's.
pub enum ForwardBody {
    /// From a pooled connection; the connection goes back at the body's end.
    Inline(InlineBody),
    /// From hyper's client (a 101 and what precedes the hand-over).
    Hyper(Incoming),
}

impl Body for ForwardBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ForwardBody::Inline(b) => Pin::new(b).poll_frame(cx),
            ForwardBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ForwardBody::Inline(b) => b.is_end_stream(),
            ForwardBody::Hyper(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ForwardBody::Inline(b) => b.size_hint(),
            ForwardBody::Hyper(b) => b.size_hint(),
        }
    }
}
