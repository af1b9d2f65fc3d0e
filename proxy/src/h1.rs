//! HTTP/1.1 toward upstreams, driven inside the request's own task: the request head is
//! written, the response head parsed, and the body read from the socket as the client's side
//! asks for it. A hyper client connection instead runs in a task of its own and hands every
//! request, response and body chunk across channels: two more task wake-ups per request, which
//! on a saturated proxy cost more than the parsing (BENCHMARKS.md). Upgrades (WebSocket) still go
//! through hyper's client, which owns the hand-over of the connection.
//!
//! Framing follows RFC 9112 section 6: no body after HEAD, 1xx, 204 and 304; chunked when the
//! last transfer coding is chunked; else Content-Length; else until the upstream closes (and
//! then the connection is not reused). A connection is reusable when the response was HTTP/1.1
//! without `Connection: close` and its body was read to the end.

use super::upstream::UpstreamStream;
use super::watchdog::BodyClock;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

/// Response heads larger than this are refused (as hyper's default buffer limit does).
const MAX_HEAD: usize = 64 * 1024;
/// At most this many response header fields.
const MAX_HEADERS: usize = 128;
/// Read size for bodies.
const READ_CHUNK: usize = 16 * 1024;
/// Read size while a response head is incomplete: most heads and small bodies fit, and a pool
/// of hundreds of idle connections (one set per route) keeps 4 KiB each, not 16.
const READ_HEAD: usize = 4 * 1024;

/// One upstream connection and the bytes read from it but not yet used.
pub struct Conn {
    io: UpstreamStream,
    buf: BytesMut,
}

/// Why a request failed.
#[derive(Debug)]
pub enum SendError {
    /// The connection ended (or failed) before a single byte of the response: on a reused
    /// connection this is the upstream having closed it while idle, and a request without a
    /// body may be sent again on a fresh one.
    ClosedBeforeResponse(String),
    /// The client's request body could not be read (malformed chunked framing, a length it
    /// did not keep, a connection it closed): the client's fault, answered 400, not 502.
    ClientBody(String),
    /// Anything else.
    Other(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::ClosedBeforeResponse(e) | SendError::ClientBody(e) | SendError::Other(e) => {
                f.write_str(e)
            }
        }
    }
}

/// The request head, serialized once (kept for a retry).
pub struct Head {
    bytes: Vec<u8>,
    /// HEAD: the response has no body whatever it says.
    head_method: bool,
    /// How the request body is framed toward the upstream.
    body: RequestBody,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RequestBody {
    None,
    /// The client's Content-Length is kept: bytes go as they are.
    Length,
    /// No length known: chunked.
    Chunked,
}

impl Head {
    /// Serializes `req`'s head in origin form (the handler has set Host and removed hop-by-hop
    /// fields); `has_body` says whether a body follows.
    pub fn new<B>(req: &Request<B>, has_body: bool) -> Head {
        let h = req.headers();
        let body = if !has_body {
            RequestBody::None
        } else if h.contains_key(http::header::CONTENT_LENGTH) {
            RequestBody::Length
        } else {
            RequestBody::Chunked
        };
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let mut bytes = Vec::with_capacity(256 + h.len() * 32);
        bytes.extend_from_slice(req.method().as_str().as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(path.as_bytes());
        bytes.extend_from_slice(b" HTTP/1.1\r\n");
        for (k, v) in h {
            if k == http::header::TRANSFER_ENCODING {
                continue;
            }
            bytes.extend_from_slice(k.as_str().as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(v.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        if body == RequestBody::Chunked {
            bytes.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        Head { bytes, head_method: req.method() == Method::HEAD, body }
    }

    /// Whether a body follows the head.
    pub fn has_body(&self) -> bool {
        self.body != RequestBody::None
    }
}

/// The request body's next frame. The clock learns whether the body had one ready: when it
/// had not, the proxy is waiting on the client (this is polled only when the upstream can
/// take more, so a slow upstream never counts against the client).
fn next_frame<'a>(
    body: &'a mut Incoming,
    mut clock: Option<&'a mut BodyClock>,
) -> impl std::future::Future<Output = Option<Result<Frame<Bytes>, hyper::Error>>> + 'a {
    std::future::poll_fn(move |cx| {
        let polled = Pin::new(&mut *body).poll_frame(cx);
        if let Some(c) = clock.as_deref_mut() {
            if polled.is_pending() { c.waiting() } else { c.arrived() }
        }
        polled
    })
}

impl Conn {
    /// A fresh connection.
    pub fn new(io: UpstreamStream) -> Conn {
        Conn { io, buf: BytesMut::new() }
    }

    /// Whether an idle connection can still be used: the upstream has neither closed it nor
    /// sent anything unasked (checked without waiting).
    pub fn is_usable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut scratch = [0u8; 1];
        let mut rb = ReadBuf::new(&mut scratch);
        matches!(Pin::new(&mut self.io).poll_read(&mut cx, &mut rb), Poll::Pending)
    }

    /// Sends the head and the body (with the clock of its reads, if it is timed), then reads
    /// the response head.
    pub async fn send(
        mut self,
        head: &Head,
        body: Option<(Incoming, Option<BodyClock>)>,
    ) -> Result<(Response<()>, Framing, bool, Conn), SendError> {
        let early = |e: io::Error| SendError::ClosedBeforeResponse(format!("writing: {e}"));
        self.io.write_all(&head.bytes).await.map_err(early)?;
        if let Some((body, clock)) = body {
            // Boxed: most requests have no body, and this future would enlarge them all.
            Box::pin(self.write_body(body, clock, head.body)).await?;
        }
        self.io.flush().await.map_err(early)?;
        self.read_head(head.head_method).await
    }

    async fn write_body(
        &mut self,
        mut body: Incoming,
        mut clock: Option<BodyClock>,
        framing: RequestBody,
    ) -> Result<(), SendError> {
        let other = |e: io::Error| SendError::Other(format!("writing the request body: {e}"));
        while let Some(frame) = next_frame(&mut body, clock.as_mut()).await {
            let frame = frame
                .map_err(|e| SendError::ClientBody(format!("reading the request body: {e}")))?;
            let Ok(data) = frame.into_data() else { continue };
            if data.is_empty() {
                continue;
            }
            if framing == RequestBody::Chunked {
                let size = format!("{:x}\r\n", data.len());
                self.io.write_all(size.as_bytes()).await.map_err(other)?;
                self.io.write_all(&data).await.map_err(other)?;
                self.io.write_all(b"\r\n").await.map_err(other)?;
            } else {
                self.io.write_all(&data).await.map_err(other)?;
            }
        }
        if framing == RequestBody::Chunked {
            self.io.write_all(b"0\r\n\r\n").await.map_err(other)?;
        }
        Ok(())
    }

    /// Reads (more of) a response head into the buffer; 0 at the end of the stream.
    async fn fill(&mut self) -> io::Result<usize> {
        use tokio::io::AsyncReadExt;
        self.buf.reserve(READ_HEAD);
        self.io.read_buf(&mut self.buf).await
    }

    async fn read_head(
        mut self,
        head_method: bool,
    ) -> Result<(Response<()>, Framing, bool, Conn), SendError> {
        let mut got_any = false;
        loop {
            if let Some((resp, framing, keep_alive)) =
                parse_response_head(&mut self.buf, head_method)?
            {
                return Ok((resp, framing, keep_alive, self));
            }
            match self.fill().await {
                Ok(0) if !got_any && self.buf.is_empty() => {
                    return Err(SendError::ClosedBeforeResponse(
                        "connection closed before the response".into(),
                    ));
                }
                Ok(0) => {
                    return Err(SendError::Other("connection closed in the response head".into()));
                }
                Ok(_) => got_any = true,
                Err(e) if !got_any => {
                    return Err(SendError::ClosedBeforeResponse(format!("reading: {e}")));
                }
                Err(e) => return Err(SendError::Other(format!("reading: {e}"))),
            }
        }
    }
}

/// Takes the final response head off `buf` (interim ones, 100 Continue and 103 Early Hints,
/// are read past and not forwarded), with how its body is framed and whether the connection
/// stays usable after it; `None` while the head is incomplete. What is left in `buf` is the
/// body's start. `head_method`: the request was HEAD (no body, whatever the head says). Pure
/// over the bytes read so far, so the fuzz target `response_head` (`fuzz/`) tests the code a
/// connection runs.
pub fn parse_response_head(
    buf: &mut BytesMut,
    head_method: bool,
) -> Result<Option<(Response<()>, Framing, bool)>, SendError> {
    loop {
        let Some((mut resp, keep_alive)) = parse_head(buf)? else {
            if buf.len() > MAX_HEAD {
                return Err(SendError::Other("response head too large".into()));
            }
            return Ok(None);
        };
        let status = resp.status();
        // Interim answers (100 Continue, 103 Early Hints) are not forwarded.
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(SendError::Other("an upgrade nobody asked for".into()));
        }
        let (framing, transfer_encoded) = framing(resp.headers(), status, head_method)?;
        // RFC 9112 6.3: with Transfer-Encoding, Content-Length is ignored; the body is
        // decoded, so a length left beside it would cut the client's copy short.
        if transfer_encoded {
            resp.headers_mut().remove(http::header::CONTENT_LENGTH);
        }
        return Ok(Some((resp, framing, keep_alive)));
    }
}

/// Takes one complete response head off `buf`, or `None` while it is incomplete. The fields
/// are noted as offsets first, so that the values can then share the head's bytes instead of
/// each being copied into an allocation of its own. (A function of its own, not a block of the
/// reading loop, so that its arrays never live across an await and cannot become part of the
/// request's future.)
fn parse_head(buf: &mut BytesMut) -> Result<Option<(Response<()>, bool)>, SendError> {
    use std::mem::MaybeUninit;
    // Left uninitialised: filling 128 slots per response costs more than parsing it.
    let mut fields = [const { MaybeUninit::<Field>::uninit() }; MAX_HEADERS];
    let (code, http11, count, len) = {
        let mut raw = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut r = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut r, buf, &mut raw);
        match parsed {
            Ok(httparse::Status::Complete(len)) => {
                let base = buf.as_ptr() as usize;
                for (slot, f) in fields.iter_mut().zip(r.headers.iter()) {
                    let name = f.name.as_ptr() as usize - base;
                    let value = f.value.as_ptr() as usize - base;
                    slot.write(Field {
                        name: (name as u32, (name + f.name.len()) as u32),
                        value: (value as u32, (value + f.value.len()) as u32),
                    });
                }
                (r.code.unwrap_or(502), r.version == Some(1), r.headers.len(), len)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(SendError::Other(format!("bad response head: {e}"))),
        }
    };
    // SAFETY: the first `count` slots were written just above (`zip` stops at the shorter
    // side, and httparse never reports more headers than the slots it was given).
    let fields = unsafe { std::slice::from_raw_parts(fields.as_ptr().cast::<Field>(), count) };
    let head = buf.split_to(len).freeze();
    build(&head, code, http11, fields).map(Some)
}

/// Hop-by-hop fields of a response that are never forwarded (RFC 9110 7.6.1), left out as the
/// head is read. Transfer-Encoding stays for the framing, and is removed by the handler.
const NOT_FORWARDED: [HeaderName; 5] = [
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::TE,
    http::header::TRAILER,
    http::header::UPGRADE,
];

/// Where one header field of a response head lies in it: byte ranges (start, end) of the
/// name and the value (a head is at most `MAX_HEAD` bytes).
#[derive(Clone, Copy)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
}

/// The response head as `http` types, and whether the connection may stay open. The values
/// are slices of `head` (no copy each).
fn build(
    head: &Bytes,
    code: u16,
    http11: bool,
    fields: &[Field],
) -> Result<(Response<()>, bool), SendError> {
    let status =
        StatusCode::from_u16(code).map_err(|_| SendError::Other(format!("bad status {code}")))?;
    // hyper keeps this map, emptied, for the client's next request head on the connection, to
    // which the handler adds tsnsrv's forwarding headers: room for them avoids a regrowth.
    let mut headers = HeaderMap::with_capacity(fields.len().max(24));
    let mut close = !http11;
    for f in fields {
        let raw_name = &head[f.name.0 as usize..f.name.1 as usize];
        let name = HeaderName::from_bytes(raw_name).map_err(|_| {
            SendError::Other(format!("bad header name {:?}", String::from_utf8_lossy(raw_name)))
        })?;
        let raw_value = &head[f.value.0 as usize..f.value.1 as usize];
        if name == http::header::CONNECTION {
            let mut options = raw_value.split(|b| *b == b',').map(<[u8]>::trim_ascii);
            close |= options.clone().any(|t| t.eq_ignore_ascii_case(b"close"));
            // Only `close` and `keep-alive`: the field is hop-by-hop and goes no further.
            // Naming other fields, it stays for the handler to remove those too.
            if options.all(|t| {
                t.is_empty()
                    || t.eq_ignore_ascii_case(b"close")
                    || t.eq_ignore_ascii_case(b"keep-alive")
            }) {
                continue;
            }
        } else if NOT_FORWARDED.contains(&name) {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(head.slice_ref(raw_value))
            .map_err(|_| SendError::Other(format!("bad value of {name}")))?;
        headers.append(name, value);
    }
    let mut resp = Response::new(());
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Ok((resp, !close))
}

/// How the response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// This many bytes left (0: none, done).
    Length(u64),
    /// Chunked, in the given state.
    Chunked(Chunk),
    /// Until the upstream closes (the connection is then not reused).
    Close,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Expecting a size line.
    Size,
    /// This many data bytes left in the chunk.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, until an empty line.
    Trailers,
    /// Read to the end.
    Done,
}

/// How a response's body is delimited, and whether it carries `Transfer-Encoding` (found while
/// deciding, so the caller need not look it up again).
fn framing(
    h: &HeaderMap,
    status: StatusCode,
    head_method: bool,
) -> Result<(Framing, bool), SendError> {
    if head_method || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        let te = h.contains_key(http::header::TRANSFER_ENCODING);
        return Ok((Framing::Length(0), te));
    }
    if let Some(te) = h.get_all(http::header::TRANSFER_ENCODING).iter().next_back() {
        let last = te.as_bytes().rsplit(|b| *b == b',').next().unwrap_or_default();
        return Ok((
            if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                Framing::Chunked(Chunk::Size)
            } else {
                Framing::Close
            },
            true,
        ));
    }
    let mut length: Option<u64> = None;
    for v in h.get_all(http::header::CONTENT_LENGTH) {
        for part in v.as_bytes().split(|b| *b == b',') {
            let n: u64 = std::str::from_utf8(part.trim_ascii())
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| SendError::Other("bad Content-Length".into()))?;
            if length.is_some_and(|l| l != n) {
                return Err(SendError::Other("conflicting Content-Length".into()));
            }
            length = Some(n);
        }
    }
    Ok((length.map_or(Framing::Close, Framing::Length), false))
}

/// Where a finished body hands its connection back (the pool's slot for its dial key): the
/// wire format knows only that such a place exists, not the pool behind it.
pub trait ConnHome: Send + Sync {
    /// Takes back a connection whose last response was read to the end.
    fn put_back(&self, c: Conn);
}

/// Where a body hands its connection back.
pub type Release = std::sync::Arc<dyn ConnHome>;

/// A response body read from the upstream connection as the client side polls it.
pub struct InlineBody {
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
    release: Option<Release>,
}

impl InlineBody {
    /// The body of a response; `release` gets the connection back once the body is complete
    /// (at once when there is none).
    pub fn new(conn: Conn, framing: Framing, keep_alive: bool, release: Release) -> InlineBody {
        let mut b = InlineBody { conn: Some(conn), framing, keep_alive, release: Some(release) };
        if b.is_complete() {
            b.finish();
        }
        b
    }

    fn is_complete(&self) -> bool {
        matches!(self.framing, Framing::Length(0) | Framing::Chunked(Chunk::Done))
    }

    fn finish(&mut self) {
        let conn = self.conn.take();
        let release = self.release.take();
        // Only called once the body is complete, which a close-delimited body never is.
        if let (Some(c), Some(slot)) = (conn, release)
            && self.keep_alive
        {
            slot.put_back(c);
        }
    }
}

fn closed_early() -> Box<dyn std::error::Error + Send + Sync> {
    "the upstream closed the connection before the body's end".into()
}

impl Body for InlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if this.is_complete() {
                this.finish();
                return Poll::Ready(None);
            }
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            // Use buffered bytes first.
            match this.framing {
                Framing::Length(left) if !conn.buf.is_empty() => {
                    let n = (conn.buf.len() as u64).min(left) as usize;
                    this.framing = Framing::Length(left - n as u64);
                    let data = conn.buf.split_to(n).freeze();
                    if this.is_complete() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Close if !conn.buf.is_empty() => {
                    let data = conn.buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Chunked(state) => match chunk_step(&mut conn.buf, state) {
                    Err(e) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    Ok(Some((next, Some(data)))) => {
                        this.framing = Framing::Chunked(next);
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(Some((next, None))) => {
                        this.framing = Framing::Chunked(next);
                        continue;
                    }
                    Ok(None) => {} // needs more bytes
                },
                _ => {}
            }
            // Read more.
            let want = match this.framing {
                Framing::Length(left) => (left as usize).clamp(1, 4 * READ_CHUNK),
                _ => READ_CHUNK,
            };
            conn.buf.reserve(want);
            let n = {
                let spare = conn.buf.spare_capacity_mut();
                let mut rb = ReadBuf::uninit(spare);
                match Pin::new(&mut conn.io).poll_read(cx, &mut rb) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    Poll::Ready(Ok(())) => rb.filled().len(),
                }
            };
            // SAFETY: poll_read initialized and filled exactly `n` bytes of the spare capacity.
            unsafe { conn.buf.set_len(conn.buf.len() + n) };
            if n == 0 {
                if this.framing == Framing::Close {
                    this.conn = None;
                    return Poll::Ready(None);
                }
                this.conn = None;
                return Poll::Ready(Some(Err(closed_early())));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.is_complete()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

/// One step of the chunked decoder over the buffered bytes: the next state, and data if a
/// piece of a chunk was available; `None` when it needs more bytes first.
pub type Step = Option<(Chunk, Option<Bytes>)>;

pub fn chunk_step(buf: &mut BytesMut, state: Chunk) -> Result<Step, String> {
    let line = |buf: &BytesMut| buf.windows(2).position(|w| w == b"\r\n");
    Ok(match state {
        Chunk::Size => {
            let Some(end) = line(buf) else {
                if buf.len() > 4096 {
                    return Err("chunk size line too long".into());
                }
                return Ok(None);
            };
            let text = std::str::from_utf8(&buf[..end]).map_err(|_| "bad chunk size")?;
            let hex = text.split(';').next().unwrap_or("").trim();
            let size =
                u64::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size {hex:?}"))?;
            buf.advance(end + 2);
            Some((if size == 0 { Chunk::Trailers } else { Chunk::Data(size) }, None))
        }
        Chunk::Data(_) if buf.is_empty() => None,
        Chunk::Data(left) => {
            let n = (buf.len() as u64).min(left) as usize;
            let data = buf.split_to(n).freeze();
            let next = if left == n as u64 { Chunk::DataEnd } else { Chunk::Data(left - n as u64) };
            Some((next, Some(data)))
        }
        Chunk::DataEnd if buf.len() < 2 => None,
        Chunk::DataEnd => {
            if &buf[..2] != b"\r\n" {
                return Err("missing CRLF after chunk data".into());
            }
            buf.advance(2);
            Some((Chunk::Size, None))
        }
        Chunk::Trailers => {
            let Some(end) = line(buf) else {
                if buf.len() > 16 * 1024 {
                    return Err("trailers too long".into());
                }
                return Ok(None);
            };
            buf.advance(end + 2);
            Some((if end == 0 { Chunk::Done } else { Chunk::Trailers }, None))
        }
        Chunk::Done => Some((Chunk::Done, None)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8], split: usize) -> (Vec<u8>, Chunk) {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut state = Chunk::Size;
        for piece in input.chunks(split) {
            buf.extend_from_slice(piece);
            while state != Chunk::Done {
                let Some((next, data)) = chunk_step(&mut buf, state).unwrap() else { break };
                if let Some(d) = data {
                    out.extend_from_slice(&d);
                }
                state = next;
            }
        }
        (out, state)
    }

    /// Parses one head off `wire`; what is left is the body's start.
    fn head_of(wire: &[u8]) -> Option<(Response<()>, bool, BytesMut)> {
        let mut buf = BytesMut::from(wire);
        let parsed = parse_head(&mut buf).unwrap();
        parsed.map(|(r, k)| (r, k, buf))
    }

    #[test]
    fn response_heads_leave_hop_by_hop_fields_out_and_note_close() {
        let wire = b"HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: x\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\n\r\nokNEXT";
        let (r, keep_alive, rest) = head_of(wire).unwrap();
        assert!(keep_alive);
        let mut names: Vec<&str> = r.headers().keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "server", "x-a"]);
        let xa: Vec<&[u8]> = r.headers().get_all("x-a").iter().map(HeaderValue::as_bytes).collect();
        assert_eq!(xa, [b"1", b"2"]);
        // The body's bytes stay buffered after the head.
        assert_eq!(&rest[..], b"okNEXT");

        let wire = b"HTTP/1.1 200 OK\r\nConnection: close, X-Private\r\nX-Private: 1\r\n\r\n";
        let (r, keep_alive, _) = head_of(wire).unwrap();
        assert!(!keep_alive);
        // Naming another field, Connection stays for the handler, which removes both.
        assert!(r.headers().contains_key("connection"));

        let (_, keep_alive, _) = head_of(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(!keep_alive, "HTTP/1.0 without keep-alive closes");
        assert!(head_of(b"HTTP/1.1 200 OK\r\nServer: up\r\n").is_none(), "incomplete head");
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_boundaries() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for split in 1..wire.len() {
            let (out, state) = decode(wire, split);
            assert_eq!(out, b"hello, world", "split {split}");
            assert_eq!(state, Chunk::Done, "split {split}");
        }
    }

    #[test]
    fn bad_chunks_are_errors() {
        let mut b = BytesMut::from(&b"zz\r\n"[..]);
        assert!(chunk_step(&mut b, Chunk::Size).is_err());
        let mut b = BytesMut::from(&b"ab"[..]);
        assert!(chunk_step(&mut b, Chunk::DataEnd).is_err());
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let mut h = HeaderMap::new();
        assert_eq!(framing(&h, StatusCode::OK, false).unwrap().0, Framing::Close);
        h.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        assert_eq!(framing(&h, StatusCode::OK, false).unwrap().0, Framing::Length(12));
        assert_eq!(framing(&h, StatusCode::OK, true).unwrap().0, Framing::Length(0));
        assert_eq!(framing(&h, StatusCode::NO_CONTENT, false).unwrap().0, Framing::Length(0));
        h.insert(http::header::TRANSFER_ENCODING, HeaderValue::from_static("gzip, chunked"));
        assert_eq!(framing(&h, StatusCode::OK, false).unwrap().0, Framing::Chunked(Chunk::Size));
        h.insert(http::header::TRANSFER_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(framing(&h, StatusCode::OK, false).unwrap().0, Framing::Close);
        let mut h = HeaderMap::new();
        h.append(http::header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        h.append(http::header::CONTENT_LENGTH, HeaderValue::from_static("4"));
        assert!(framing(&h, StatusCode::OK, false).is_err());
    }
}
