//! The request path's upstream connections: HTTP/1.1 connections kept per way of dialing (the
//! route's dial key), checked out and returned without a task per request. A connection goes
//! back when its response body has been read to the end (or had none); one whose response was
//! abandoned midway is dropped, as its stream has unread bytes. A request that could not even
//! be written on a reused connection (the upstream closed it meanwhile) is sent once more on a
//! fresh one.

use super::upstream::{Connector, Dial};
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustc_hash::FxHashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

type Sender = SendRequest<Incoming>;

/// Idle connections of one dial, newest last, with when each went idle.
type IdleList = Vec<(Sender, Instant)>;

/// Idle connections by dial key.
pub struct Pool {
    connector: Connector,
    idle: Mutex<FxHashMap<Arc<str>, IdleList>>,
    idle_timeout: Duration,
    max_idle: usize,
}

impl Pool {
    /// A pool over a connector.
    pub fn new(connector: Connector, idle_timeout: Duration, max_idle: usize) -> Pool {
        Pool { connector, idle: Mutex::new(FxHashMap::default()), idle_timeout, max_idle }
    }

    fn checkout(&self, key: &str) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(key)?;
        while let Some((s, since)) = list.pop() {
            if !s.is_closed() && since.elapsed() < self.idle_timeout {
                return Some(s);
            }
        }
        None
    }

    fn put_back(&self, key: Arc<str>, s: Sender) {
        if s.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(key).or_default();
        if list.len() < self.max_idle {
            list.push((s, Instant::now()));
        }
    }

    async fn connect(&self, dial: &Dial) -> Result<Sender, String> {
        let io = self.connector.open(dial).await.map_err(|e| e.to_string())?;
        let (sender, conn) =
            http1::handshake(TokioIo::new(io)).await.map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    /// Sends an origin-form request over a pooled (or new) connection.
    pub async fn send(
        self: &Arc<Self>,
        key: &Arc<str>,
        dial: &Dial,
        req: Request<Incoming>,
    ) -> Result<Response<PooledBody>, String> {
        let (mut sender, reused) = match self.checkout(key) {
            Some(s) => (s, true),
            None => (self.connect(dial).await?, false),
        };
        if sender.ready().await.is_err() {
            sender = self.connect(dial).await?;
        }
        let resp = match sender.try_send_request(req).await {
            Ok(r) => r,
            Err(mut e) => match e.take_message() {
                // Never written: the reused connection was closed under us. Once more, fresh.
                Some(req) if reused => {
                    sender = self.connect(dial).await?;
                    sender.send_request(req).await.map_err(|e| e.to_string())?
                }
                _ => return Err(error_chain(e.error())),
            },
        };
        let upgraded = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        let back = (!upgraded).then(|| (sender, self.clone(), key.clone()));
        Ok(resp.map(|inner| PooledBody { inner, back }))
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

/// An upstream response body that returns its connection to the pool when read to the end.
pub struct PooledBody {
    inner: Incoming,
    back: Option<(Sender, Arc<Pool>, Arc<str>)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((s, pool, key)) = self.back.take() {
            pool.put_back(key, s);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = r {
            self.release();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body with nothing (left) to read leaves the connection clean.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}
