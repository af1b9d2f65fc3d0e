//! The properties of issue 15's fuzz targets, written once: the targets `request_path` and
//! `response_head` (`fuzz/fuzz_targets/`) run them on what libFuzzer makes, and the replay test
//! (`proxy/tests/fuzz_replay.rs`, in CI) on every file of the committed corpora
//! (`fuzz/corpus/<target>/`). A property that does not hold panics.
//!
//! `request_path` input, text, one item a line (a file that is not UTF-8, or has fewer than
//! three lines, is skipped):
//!
//! ```text
//! fs                  flags: `f` the request comes through Funnel (else the tailnet),
//!                     `s` the route strips the matched prefix
//! /base?k=v           the upstream URL's path (and query): http://up.test/base?k=v
//! /pub/../secret?x=1  the request target, as a client sends it
//! funnel:/pub/        the route's prefixes, one a line (none: everything is allowed)
//! tailnet:/
//! ```
//!
//! `response_head` input, bytes: the first says whether the request was HEAD (its low bit),
//! the second how many bytes each read from the upstream gives (0: all at once; at least a
//! 64th of the input), the rest is what the upstream sends.

use bytes::BytesMut;
use http::{HeaderMap, Response, StatusCode};
use tailshift_proxy::h1::{Chunk, Framing, chunk_step, parse_response_head};
use tailshift_proxy::path::{PathDecision, check, decide};
use tailshift_proxy::prefix::Via;
use tailshift_routes::{HostHeader, Listen, Route, RouteHost, Timeouts, Upstream, Whois};
use unicode_normalization::UnicodeNormalization;

// ---------------------------------------------------------------------------------------------
// request_path

/// The route a `request_path` input describes.
fn route(prefixes: Vec<String>, strip_prefix: bool, upstream: url::Url) -> Route {
    Route {
        service: "fuzz/app".into(),
        hosts: vec![RouteHost { name: "app.tailnet.test".into(), mount: "/".into() }],
        listen: Listen::Https { port: 443 },
        upstream: Upstream { url: upstream, unix: None, tcp_addr: None },
        prefixes,
        strip_prefix,
        host_header: HostHeader::Keep,
        proxy_headers: false,
        upstream_headers: Default::default(),
        insecure_https: false,
        insecure_ciphers: false,
        auth: None,
        funnel: true,
        tailnet: true,
        access: Vec::new(),
        whois: Whois { enabled: false, timeout_ms: 0 },
        timeouts: Timeouts::default(),
        redirect_to: None,
        wave: None,
    }
}

/// One pass of percent-decoding: every `%` followed by two hex digits becomes that byte.
fn percent_decode_once(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && let (Some(h), Some(l)) =
                (s.get(i + 1).copied().and_then(hex), s.get(i + 2).copied().and_then(hex))
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// RFC 3986 5.2.4, `remove_dot_segments`, step by step as the RFC writes it.
fn remove_dot_segments(path: &[u8]) -> Vec<u8> {
    let mut input = path.to_vec();
    let mut output: Vec<u8> = Vec::with_capacity(input.len());
    while !input.is_empty() {
        if input.starts_with(b"../") {
            input.drain(..3);
        } else if input.starts_with(b"./") || input.starts_with(b"/./") {
            // A: `./` goes; B: `/./` becomes `/`.
            input.drain(..2);
        } else if input == b"/." {
            input = b"/".to_vec();
        } else if input.starts_with(b"/../") || input == b"/.." {
            input = [b"/".as_slice(), &input[if input == b"/.." { 3 } else { 4 }..]].concat();
            let cut = output.iter().rposition(|b| *b == b'/').unwrap_or(0);
            output.truncate(cut);
        } else if input == b"." || input == b".." {
            input.clear();
        } else {
            let start = usize::from(input[0] == b'/');
            let end =
                input[start..].iter().position(|b| *b == b'/').map_or(input.len(), |e| e + start);
            output.extend(input.drain(..end));
        }
    }
    output
}

/// Repeated slashes become one.
fn collapse_slashes(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        if !(b == b'/' && out.last() == Some(&b'/')) {
            out.push(b);
        }
    }
    out
}

/// What Unicode-normalising upstreams (NFKC, IDNA, Windows' best-fit mappings) read a code
/// point as: its NFKC form (`．` U+FF0E is `.`, `︰` U+FE30 is `..`, NBSP and the other Unicode
/// spaces are ` `, `／` is `/`, `％` is `%`), and for the few look-alikes NFKC leaves alone,
/// what IDNA and best-fit mappings make of them (`｡` and `。` are `.`; `∕`, `⁄` are `/`; `⧵`
/// is `\`). `None` when the code point stays itself.
fn fold_look_alike(c: char) -> Option<String> {
    let hand = match c {
        '\u{FF61}' | '\u{3002}' => Some("."),
        '\u{2215}' | '\u{2044}' => Some("/"),
        '\u{29F5}' => Some("\\"),
        _ => None,
    };
    if let Some(h) = hand {
        return Some(h.to_string());
    }
    let normal: String = std::iter::once(c).nfkc().collect();
    (normal.chars().ne(std::iter::once(c))).then_some(normal)
}

/// Bytes as a lenient decoder reads them: overlong UTF-8 forms of ASCII (`C0 AE` and
/// `E0 80 AE` are `.`) decoded, look-alikes folded ([`fold_look_alike`]); anything else kept.
fn fold(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let cont = |k: usize| bytes.get(i + k).is_some_and(|b| b & 0xC0 == 0x80);
        let b = bytes[i];
        if matches!(b, 0xC0 | 0xC1) && cont(1) {
            out.push(((b & 0x1F) << 6) | (bytes[i + 1] & 0x3F));
            i += 2;
            continue;
        }
        if b == 0xE0 && cont(1) && cont(2) && bytes[i + 1] < 0x82 {
            out.push(((bytes[i + 1] & 0x3F) << 6) | (bytes[i + 2] & 0x3F));
            i += 3;
            continue;
        }
        let len = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 1,
        };
        if len > 1
            && let Some(ch) = bytes.get(i..i + len).and_then(|s| std::str::from_utf8(s).ok())
            && let Some(folded) = ch.chars().next().and_then(fold_look_alike)
        {
            out.extend_from_slice(folded.as_bytes());
            i += len;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Control bytes as two kinds of upstream treat them: dropped (`.%00.` is `..`), or ending the
/// path, as C strings end at NUL (`/pub/..%00x` is `/pub/..`).
fn controls(path: &[u8], truncate: bool) -> Vec<u8> {
    let control = |b: &u8| *b < 0x20 || *b == 0x7f;
    if truncate {
        path[..path.iter().position(control).unwrap_or(path.len())].to_vec()
    } else {
        path.iter().copied().filter(|b| !control(b)).collect()
    }
}

/// Each segment as Windows reads it: trailing dots and spaces trimmed (`a. ` is `a`), and a
/// segment of dots and spaces only is `.` or `..` (one dot, or more: `...` and `.. ` are
/// `..` to the worst upstream).
fn trim_segments(path: &[u8]) -> Vec<u8> {
    let segs: Vec<Vec<u8>> = path
        .split(|b| *b == b'/')
        .map(|seg| {
            let dots = seg.iter().filter(|b| **b == b'.').count();
            if dots > 0 && seg.iter().all(|b| matches!(b, b'.' | b' ')) {
                return if dots == 1 { b".".to_vec() } else { b"..".to_vec() };
            }
            let end = seg.iter().rposition(|b| !matches!(b, b'.' | b' ')).map_or(0, |e| e + 1);
            seg[..end].to_vec()
        })
        .collect();
    segs.join(&b'/')
}

/// Where the worst-case upstream takes a path: decoded until nothing changes (overlong UTF-8
/// and NFKC forms and look-alikes folded at each round, [`fold`]), cut at a decoded `?` or
/// `#` (as by an upstream that decodes before it splits off the query), `\` read as `/`,
/// control bytes
/// dropped or ending the path, each segment trimmed of trailing dots and spaces
/// ([`trim_segments`]), then dot-segments resolved and repeated slashes collapsed, in either
/// order (upstreams differ: `/a//../x` is `/a/x` to RFC 3986 and `/x` to one that collapses
/// first). Four readings: each control-byte rule with each order.
fn worst_case_resolutions(path: &[u8]) -> [Vec<u8>; 4] {
    let mut decoded = path.to_vec();
    loop {
        let next = fold(&percent_decode_once(&decoded));
        if next == decoded {
            break;
        }
        decoded = next;
    }
    for b in &mut decoded {
        if *b == b'\\' {
            *b = b'/';
        }
    }
    // An upstream that decodes before it splits off the query and the fragment reads a
    // decoded `?` or `#` as their start (`/pub/..%3F/secret` is `/pub/..`).
    if let Some(cut) = decoded.iter().position(|b| matches!(b, b'?' | b'#')) {
        decoded.truncate(cut);
    }
    let [dropped, cut] = [false, true].map(|t| trim_segments(&controls(&decoded, t)));
    [
        collapse_slashes(&remove_dot_segments(&dropped)),
        remove_dot_segments(&collapse_slashes(&dropped)),
        collapse_slashes(&remove_dot_segments(&cut)),
        remove_dot_segments(&collapse_slashes(&cut)),
    ]
}

/// The oracle against known answers (RFC 3986 5.2.4 and 5.4's examples; decoding until
/// stable; both orders of collapsing), for the replay test: a wrong oracle passes everything.
pub fn oracle_answers() {
    for (path, want) in [
        ("/a/b/c/./../../g", "/a/g"),
        ("mid/content=5/../6", "mid/6"),
        ("/b/c/d;p/../../../../g", "/g"),
        ("/b/c/./g/.", "/b/c/g/"),
        ("/..", "/"),
        ("/a/..", "/"),
        ("/a/b/..", "/a/"),
        ("/a/.b/..c/...", "/a/.b/..c/..."),
    ] {
        assert_eq!(remove_dot_segments(path.as_bytes()), want.as_bytes(), "{path}");
    }
    for (path, rfc, collapsing_first) in [
        ("/pub/%252e%252e/secret", "/secret", "/secret"),
        ("/pub/%%32e%%32e/secret", "/secret", "/secret"),
        ("/pub\\..\\secret", "/secret", "/secret"),
        ("/pub/..%2Fsecret", "/secret", "/secret"),
        ("/a//../x", "/a/x", "/x"),
        ("/pub/%41%zz", "/pub/A%zz", "/pub/A%zz"),
    ] {
        let [a, b, c, d] = worst_case_resolutions(path.as_bytes());
        assert_eq!((a.as_slice(), b.as_slice()), (rfc.as_bytes(), collapsing_first.as_bytes()));
        assert_eq!((c, d), (a, b), "{path}: no control bytes, one reading");
    }
    // Issue 15, second pass: what lenient decoders and normalising upstreams make of the
    // attacker's spellings (some reading resolves each out of `/pub/`).
    for path in [
        "/pub/..%00/secret",
        "/pub/.%00./secret",
        "/pub/%c0%ae%c0%ae/secret",
        "/pub/%e0%80%ae%e0%80%ae/secret",
        "/pub/%ef%bc%8e%ef%bc%8e/secret",
        "/pub/%e2%80%a4%e2%80%a4/secret",
        "/pub/%e2%80%a5/secret",
        "/pub/%ef%b9%92%ef%b9%92/secret",
        "/pub/%ef%bd%a1%ef%bd%a1/secret",
        "/pub/%e3%80%82%e3%80%82/secret",
        "/pub/..%ef%bc%8fsecret",
        "/pub/..%ef%bc%bcsecret",
        "/pub/..%e2%88%95secret",
        "/pub/..%e2%81%84secret",
        "/pub/..%ef%b9%a8secret",
        "/pub/..%e2%a7%b5secret",
        "/pub/%ef%bc%852e%ef%bc%852e/secret",
        "/pub/..%20/secret",
        "/pub/.. /secret",
        "/pub/.../secret",
        "/pub/. ./secret",
        // The attacker pass: NFKC dots and spaces, raw and encoded, and `..` before a decoded
        // `?` or `#`.
        "/pub/%EF%B8%B0/%EF%B8%B0/etc/passwd",
        "/pub/\u{FE30}/\u{FE30}/etc/passwd",
        "/pub/%ef%b8%99/secret",
        "/pub/..%C2%A0/secret",
        "/pub/..%E2%80%80/secret",
        "/pub/..%E2%80%8A/secret",
        "/pub/..%E2%80%AF/secret",
        "/pub/..%E2%81%9F/secret",
        "/pub/..%E3%80%80/secret",
        "/pub/..%3F/secret",
        "/pub/..%23/x",
        "/pub/%2e%2e%3fx",
        "/pub/..%20%3F",
    ] {
        let readings = worst_case_resolutions(path.as_bytes());
        assert!(readings.iter().any(|r| !r.starts_with(b"/pub")), "{path}: {readings:?}");
    }
    // A NUL ends the path for the C-string reading.
    let r = worst_case_resolutions(b"/pub/..%00secret");
    assert_eq!((r[0].as_slice(), r[2].as_slice()), (b"/pub/..secret".as_slice(), b"/".as_slice()));
    // Ordinary names stay what they are.
    for path in ["/pub/caf%C3%A9.jpg", "/pub/a%20b", "/pub/..x"] {
        for r in worst_case_resolutions(path.as_bytes()) {
            assert!(r.starts_with(b"/pub/") && r.len() > 5, "{path}: {r:?}");
        }
    }
}

/// `base` and `tail` joined with exactly one slash between them (the oracle's own join).
fn joined(base: &str, tail: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), tail.trim_start_matches('/'))
}

/// Whether `resolved` is inside what a Funnel prefix lets through at the upstream. A prefix
/// the route strips leaves the upstream's base path: the base itself or below it (tsnsrv joins
/// the rest with a slash). A prefix it keeps is matched as the plain string it is, below the
/// base (tsnsrv's `/pub` allows `/public`, by design).
fn inside(resolved: &[u8], base: &str, prefix: &str, strip: bool, variant: usize) -> bool {
    let region = |text: &str| worst_case_resolutions(text.as_bytes())[variant].clone();
    // Cutting the empty prefix (an empty list allows everything) keeps the path whole.
    if strip || prefix.is_empty() {
        let base = region(base);
        let base = base.strip_suffix(b"/").unwrap_or(&base);
        resolved == base || resolved.starts_with(&[base, b"/"].concat())
    } else {
        // A prefix that ends inside an escape (`/%3`) matches requests that complete it
        // (`/%32`): the region is what precedes the escape.
        let b = prefix.as_bytes();
        let cut = match b {
            [.., b'%'] => 1,
            [.., b'%', h] if h.is_ascii_hexdigit() => 2,
            _ => 0,
        };
        resolved.starts_with(&region(&joined(base, &prefix[..prefix.len() - cut])))
    }
}

/// The Funnel prefixes of a prefix list (`funnel:` and unscoped ones), as matched; an empty
/// list allows everything (the empty prefix).
fn funnel_prefixes(prefixes: &[String]) -> Vec<&str> {
    if prefixes.is_empty() {
        return vec![""];
    }
    prefixes
        .iter()
        .filter(|p| !p.starts_with("tailnet:"))
        .map(|p| p.strip_prefix("funnel:").unwrap_or(p))
        .collect()
}

/// The request path's decision (`tailshift_proxy::path::decide`): a request admitted as
/// Funnel never resolves, at the worst-case upstream, outside the route's Funnel prefixes; a
/// redirect's target is itself clean and never starts with `//` or `/\` (another host to a
/// browser); clean paths go to an upstream without a base path byte
/// for byte; nothing panics.
pub fn request_path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let (Some(flags), Some(base), Some(target)) = (lines.next(), lines.next(), lines.next()) else {
        return;
    };
    let prefixes: Vec<String> = lines.map(str::to_string).collect();
    let via = if flags.contains('f') { Via::Funnel } else { Via::Tailnet };
    let strip = flags.contains('s');
    let Ok(upstream) = url::Url::parse(&format!("http://up.test{base}")) else { return };
    let route = route(prefixes, strip, upstream);
    // A route the proxy refuses (a prefix ending inside a percent-escape, say) is never served.
    if tailshift_routes::validate_route(&route).is_err() {
        return;
    }
    request_target(&route, target, via);
    // The target again as the continuation of each prefix (`/..` after `/pub` is `/pub..`):
    // what a path does right after a prefix it matches, which mutations rarely hit alone.
    if let Some(rest) = target.strip_prefix('/') {
        for p in &route.prefixes {
            let p = p.strip_prefix("funnel:").or_else(|| p.strip_prefix("tailnet:")).unwrap_or(p);
            request_target(&route, &format!("{p}{rest}"), via);
        }
    }
}

/// [`request_path`]'s properties for one request target.
fn request_target(route: &Route, target: &str, via: Via) {
    let strip = route.strip_prefix;
    // What the handler reads: the request's URI as hyper parsed it.
    let Ok(uri) = target.parse::<http::Uri>() else { return };
    let (path, query) = (uri.path(), uri.query());
    let decision = decide(route, path, query, via);
    match &decision {
        PathDecision::Redirect(location) => {
            let Ok(to) = location.parse::<http::Uri>() else {
                panic!("{target:?} redirects to {location:?}, which is no request target");
            };
            assert!(
                check(to.path(), to.query(), via).is_ok(),
                "{target:?} redirects to {location:?}, which is not clean either"
            );
            assert_eq!(to.query(), query, "{target:?}: the redirect keeps the query");
            assert!(
                !location.starts_with("//") && !location.starts_with("/\\"),
                "{target:?} redirects to {location:?}, another host to a browser"
            );
        }
        PathDecision::Forward { path: forwarded, .. } => {
            let base_path = route.upstream.url.path();
            if base_path == "/" && !strip && path.starts_with('/') {
                assert_eq!(forwarded, path, "{target:?}: a clean path goes byte for byte");
            }
            if via == Via::Funnel {
                let resolved = worst_case_resolutions(forwarded.as_bytes());
                for (variant, resolved) in resolved.iter().enumerate() {
                    let ok = funnel_prefixes(&route.prefixes)
                        .iter()
                        .any(|p| inside(resolved, base_path, p, strip, variant));
                    assert!(
                        ok,
                        "Funnel escape: {target:?} is forwarded as {forwarded:?}, which the \
                         worst-case upstream resolves to {:?}, outside the Funnel prefixes {:?} \
                         (upstream path {base_path:?}, strip_prefix {strip})",
                        String::from_utf8_lossy(resolved),
                        route.prefixes,
                    );
                }
            }
        }
        PathDecision::Refuse(_) | PathDecision::NotAllowed => {}
    }
}

// ---------------------------------------------------------------------------------------------
// response_head

/// Fields a forwarded response head never carries as the head is read (Connection only when
/// it names nothing but `close` and `keep-alive`; Transfer-Encoding stays for the framing).
const NOT_FORWARDED: [&str; 5] = ["keep-alive", "proxy-connection", "te", "trailer", "upgrade"];

/// What an independent reading of the whole input expects of the final head: its length (with
/// the interim heads before it), status, fields as forwarded (lower-case names), and whether
/// the connection stays usable; `None` while incomplete or when httparse refuses it.
struct Expected {
    consumed: usize,
    status: u16,
    fields: Vec<(String, Vec<u8>)>,
    keep_alive: bool,
}

/// The final head by httparse's safe interface (initialised header slots, no offsets).
fn expected_head(wire: &[u8]) -> Option<Expected> {
    let mut at = 0;
    loop {
        let mut slots = [httparse::EMPTY_HEADER; 128];
        let mut r = httparse::Response::new(&mut slots);
        let httparse::Status::Complete(len) = r.parse(&wire[at..]).ok()? else { return None };
        at += len;
        let code = r.code?;
        if (100..200).contains(&code) && code != 101 {
            continue;
        }
        let mut close = r.version != Some(1);
        let mut fields = Vec::new();
        for h in r.headers.iter() {
            let name = h.name.to_ascii_lowercase();
            if name == "connection" {
                let options: Vec<&[u8]> =
                    h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii).collect();
                close |= options.iter().any(|t| t.eq_ignore_ascii_case(b"close"));
                if options.iter().all(|t| {
                    t.is_empty()
                        || t.eq_ignore_ascii_case(b"close")
                        || t.eq_ignore_ascii_case(b"keep-alive")
                }) {
                    continue;
                }
            } else if NOT_FORWARDED.contains(&name.as_str()) {
                continue;
            }
            fields.push((name, h.value.to_vec()));
        }
        return Some(Expected { consumed: at, status: code, fields, keep_alive: !close });
    }
}

/// How the body is framed by RFC 9112 section 6, read from the fields as the upstream sent
/// them; `None` when the head is unusable (a bad or conflicting Content-Length).
fn expected_framing(fields: &[(String, Vec<u8>)], status: u16, head: bool) -> Option<Framing> {
    if head || status == 204 || status == 304 {
        return Some(Framing::Length(0));
    }
    if let Some((_, te)) = fields.iter().rev().find(|(n, _)| n == "transfer-encoding") {
        let last = te.rsplit(|b| *b == b',').next().unwrap_or_default().trim_ascii();
        return Some(if last.eq_ignore_ascii_case(b"chunked") {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::Close
        });
    }
    let mut length = None;
    for (_, v) in fields.iter().filter(|(n, _)| n == "content-length") {
        for part in v.split(|b| *b == b',') {
            let n: u64 = std::str::from_utf8(part.trim_ascii()).ok()?.parse().ok()?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        }
    }
    Some(length.map_or(Framing::Close, Framing::Length))
}

/// A head's fields as (lower-case name, value), sorted.
fn sorted_fields(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> =
        h.iter().map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec())).collect();
    v.sort();
    v
}

/// A chunked body decoded from `wire`, `step` bytes per read: the data, and the decoder's
/// state at the end (`None`: an error).
fn decode_chunked(wire: &[u8], step: usize) -> (Vec<u8>, Option<Chunk>) {
    let mut buf = BytesMut::new();
    let mut data = Vec::new();
    let mut state = Chunk::Size;
    for piece in wire.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        while state != Chunk::Done {
            match chunk_step(&mut buf, state) {
                Err(_) => return (data, None),
                Ok(None) => break,
                Ok(Some((next, piece))) => {
                    if let Some(d) = piece {
                        assert!(!d.is_empty(), "an empty data frame");
                        data.extend_from_slice(&d);
                    }
                    state = next;
                }
            }
        }
    }
    (data, Some(state))
}

/// The upstream response-head parser (`tailshift_proxy::h1::parse_response_head`, with the
/// `unsafe` field offsets) read as a connection reads, a few bytes at a time: it never panics;
/// what it takes off the buffer is the final head (and the interim ones before it) and no
/// more; the head matches httparse's safe reading of the same bytes: status (never 1xx),
/// fields (hop-by-hop ones left out), reusability; the framing is RFC 9112's, with no
/// Content-Length beside Transfer-Encoding; a chunked body decodes the same whatever the read
/// boundaries.
pub fn response_head(data: &[u8]) {
    let [flags, step, wire @ ..] = data else { return };
    let head_method = flags & 1 == 1;
    // At most 64 reads: each read parses the head again from its start, as a connection does,
    // and thousands of one-byte reads of a long input would spend the run on one input.
    let step = if *step == 0 { wire.len() } else { usize::from(*step) }
        .max(wire.len().div_ceil(64))
        .max(1);
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut parsed: Option<(Response<()>, Framing, bool)> = None;
    for piece in wire.chunks(step) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        match parse_response_head(&mut buf, head_method) {
            Ok(Some(p)) => {
                parsed = Some(p);
                break;
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
    let consumed = fed - buf.len();
    assert!(consumed <= wire.len());
    assert_eq!(&buf[..], &wire[consumed..fed], "the bytes after the head are left as they were");
    let expected = expected_head(wire);
    let Some((resp, framing, keep_alive)) = parsed else {
        // Incomplete: httparse's safe reading finds no final head either (or refuses it).
        assert!(
            expected.is_none() || fed < wire.len(),
            "a complete final head was not found: {:?}",
            String::from_utf8_lossy(wire)
        );
        return;
    };
    let status = resp.status();
    assert!(!status.is_informational(), "an interim head is forwarded: {status}");
    assert!(StatusCode::from_u16(status.as_u16()).is_ok());
    let Some(expected) = expected else {
        panic!(
            "parsed a head httparse's safe interface does not: {:?}",
            String::from_utf8_lossy(wire)
        );
    };
    assert_eq!(consumed, expected.consumed, "head length");
    assert_eq!(status.as_u16(), expected.status);
    assert_eq!(keep_alive, expected.keep_alive, "reusability");
    let h = resp.headers();
    for n in NOT_FORWARDED {
        assert!(!h.contains_key(n), "hop-by-hop {n} is left in");
    }
    // Framing, from the fields as sent; with Transfer-Encoding, Content-Length is gone.
    assert_eq!(
        Some(framing),
        expected_framing(&expected.fields, expected.status, head_method),
        "framing"
    );
    let mut want = expected.fields.clone();
    if want.iter().any(|(n, _)| n == "transfer-encoding") {
        want.retain(|(n, _)| n != "content-length");
        assert!(!h.contains_key("content-length"), "Content-Length beside Transfer-Encoding");
    }
    want.sort();
    assert_eq!(sorted_fields(h), want, "fields");
    if let Framing::Chunked(_) = framing {
        let body = &wire[consumed..];
        let (all, end) = decode_chunked(body, body.len());
        let (pieces, end_by_pieces) = decode_chunked(body, step);
        assert!(all.len() <= body.len() && pieces.len() <= body.len());
        if end.is_some() && end_by_pieces.is_some() {
            assert_eq!(all, pieces, "chunked data depends on the read boundaries");
            assert_eq!(end, end_by_pieces, "chunked state depends on the read boundaries");
        }
    }
}
