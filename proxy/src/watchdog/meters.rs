//! The per-connection and per-request meters the watchdog reads: a request in flight, a
//! response body's frames held for the client, a request body's reads, a connection's writes.
//! Each updates a few atomics of its connection's [`Watch`]; the ticker reads them.

use super::{EXEMPT, Watch};
use hyper::body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One request in flight; when it is dropped (its response body is done, or the request
/// failed), the connection waits for the next head.
pub struct InFlight {
    pub(super) watch: Arc<Watch>,
    /// The response body's last frame is counted in `held`.
    pub(super) held: bool,
}

impl InFlight {
    /// The request upgraded its connection (101): no more heads to wait for on it.
    pub fn exempt(&self) {
        self.watch.exempt();
    }

    fn release(&mut self) {
        if self.held {
            self.held = false;
            self.watch.held.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.release();
        let w = &self.watch;
        if w.waiting_since.load(Ordering::Relaxed) != EXEMPT {
            w.waiting_since.store(w.now(), Ordering::Relaxed);
        }
        w.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// A response body that keeps its request in flight until it is done, and tells the watchdog
/// when hyper holds a frame of it that the client has not taken yet.
pub struct Tracked<B> {
    body: B,
    in_flight: InFlight,
}

impl<B> Tracked<B> {
    /// Wraps `body`.
    pub fn new(body: B, in_flight: InFlight) -> Tracked<B> {
        Tracked { body, in_flight }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        // Asked again: the frame before is out of the body's hands.
        self.in_flight.release();
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && frame.is_data()
        {
            self.in_flight.held = true;
            self.in_flight.watch.held.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// One request body's reads, for the inactivity deadline: told when the body had nothing to
/// give (the proxy now waits on the client) and when bytes arrived.
pub struct BodyClock {
    pub(super) watch: Arc<Watch>,
    pub(super) waiting: bool,
}

impl BodyClock {
    /// The body had nothing to give: the proxy waits on the client from now (if it did not
    /// already).
    pub fn waiting(&mut self) {
        if !self.waiting {
            self.waiting = true;
            let w = &self.watch;
            w.read_progress.store(w.now(), Ordering::Relaxed);
            w.reading.fetch_add(1, Ordering::Release);
        }
    }

    /// Bytes (or the end, or an error) arrived.
    pub fn arrived(&mut self) {
        let w = &self.watch;
        w.read_progress.store(w.now(), Ordering::Relaxed);
        if self.waiting {
            self.waiting = false;
            w.reading.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for BodyClock {
    fn drop(&mut self) {
        if self.waiting {
            self.watch.reading.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A client connection whose writes the watchdog sees: whether the last one went through
/// (bytes wait for the client when it did not) and how many bytes were written (the socket's
/// descriptor tells how many of those it still holds).
pub struct Metered<I> {
    io: I,
    watch: Arc<Watch>,
    /// Mirrors of the watch's fields, so that a write stores only what changed.
    written: u64,
    blocked: bool,
}

impl<I: std::os::fd::AsRawFd> Metered<I> {
    /// Wraps a connection registered as `watch`.
    pub fn new(io: I, watch: Arc<Watch>) -> Metered<I> {
        watch.fd.store(io.as_raw_fd(), Ordering::Relaxed);
        Metered { io, watch, written: 0, blocked: false }
    }
}

impl<I> Drop for Metered<I> {
    fn drop(&mut self) {
        // Before the socket closes (its fields drop after this).
        self.watch.fd.store(-1, Ordering::Relaxed);
    }
}

impl<I> Metered<I> {
    fn note<T>(&mut self, polled: &Poll<io::Result<T>>, wrote: usize) {
        match polled {
            Poll::Pending => {
                if !self.blocked {
                    self.blocked = true;
                    self.watch.blocked.store(true, Ordering::Relaxed);
                }
            }
            Poll::Ready(_) => {
                if wrote > 0 {
                    self.written += wrote as u64;
                    self.watch.written.store(self.written, Ordering::Relaxed);
                }
                if self.blocked {
                    self.blocked = false;
                    self.watch.blocked.store(false, Ordering::Relaxed);
                }
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Metered<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Metered<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        let wrote = match &polled {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        };
        self.note(&polled, wrote);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        let wrote = match &polled {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        };
        self.note(&polled, wrote);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A TLS stream takes a write into its buffer and blocks only on the flush.
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.note(&polled, 0);
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
