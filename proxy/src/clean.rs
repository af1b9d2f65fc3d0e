//! Request paths as Go's `ServeMux` treated them under tsnsrv: a path with `.` or `..` segments
//! (also percent-encoded, `%2e`) or repeated slashes is answered with a redirect to the cleaned
//! path before any routing decision, so no prefix rule is judged on a path the upstream would
//! resolve elsewhere (`/pub/../secret` passing a `funnel:/pub/` rule). Clean paths are forwarded
//! byte for byte. On Funnel, encodings an upstream might decode into a separator or an escape
//! (`%2F`, `%5C`, `\`, `%25`, and a `%` that starts no escape: `%%32e` is `%2e` once decoded,
//! `.` twice) are refused outright.

use tailshift_routes::segment::{SegmentRisk, decoded_segment_risk};

/// What to do with a request's path.
#[derive(Debug, PartialEq, Eq)]
pub enum PathCheck {
    /// Route it as it is.
    Clean,
    /// Answer 301 to this path (the query is appended by the caller).
    Redirect(String),
    /// Answer 400: why.
    Refuse(&'static str),
}

/// A segment's meaning once its percent-encoded dots are read: 1 for `.`, 2 for `..`, else 0.
fn dots(seg: &str) -> u8 {
    let b = seg.as_bytes();
    let mut n = 0u8;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'.' {
            i += 1;
        } else if b[i] == b'%'
            && b.get(i + 1) == Some(&b'2')
            && matches!(b.get(i + 2), Some(b'e' | b'E'))
        {
            i += 3;
        } else {
            return 0;
        }
        n += 1;
        if n > 2 {
            return 0;
        }
    }
    n
}

/// Whether a path segment is `.` or `..`, also percent-encoded (`%2e`, `.%2E`).
pub fn is_dot_segment(seg: &str) -> bool {
    dots(seg) > 0
}

/// Whether a segment is a dot-segment once its path parameters are cut (`..;x`, `.%3Bjs`):
/// servlet containers (Tomcat, Jetty, Spring) strip `;...` from each segment before they
/// resolve `..`, so `/pub/..;/secret` is `/secret` to them.
pub fn is_dot_segment_with_params(seg: &str) -> bool {
    let lower = seg.to_ascii_lowercase();
    let cut = [lower.find(';'), lower.find("%3b")].into_iter().flatten().min();
    match cut {
        Some(i) => dots(&seg[..i]) > 0,
        None => false,
    }
}

/// Whether a Funnel request's path carries an encoding an upstream may turn into a separator,
/// or into another escape when it decodes more than once: an encoded `%`, or a `%` that starts
/// no escape (`%%32e%%32e` decodes to `%2e%2e`, then to `..`). Every other `%XX` decodes, once,
/// to a byte that is not `%`, so no second decoding finds anything left to decode.
fn risky_on_funnel(path: &str) -> bool {
    let b = path.as_bytes();
    b.contains(&b'\\')
        || b.iter().enumerate().any(|(i, &c)| {
            c == b'%'
                && match (b.get(i + 1), b.get(i + 2)) {
                    (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                        matches!(
                            (*h, l.to_ascii_uppercase()),
                            (b'2', b'F') | (b'5', b'C') | (b'2', b'5')
                        )
                    }
                    _ => true,
                }
        })
}

/// A path segment percent-decoded into `buf` (one pass: on Funnel `%25` is refused, so
/// nothing is left to decode twice).
fn decode_into(seg: &str, buf: &mut Vec<u8>) {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    buf.clear();
    let b = seg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) =
                (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex))
        {
            buf.push(h << 4 | l);
            i += 3;
        } else {
            buf.push(b[i]);
            i += 1;
        }
    }
}

/// Why a Funnel request's segment may decode, at some upstream, into a traversal: a control
/// character (`..%00` is `..` to one that cuts at NUL; C1 too), bytes that are not UTF-8
/// (`%c0%ae` is an overlong `.`), or what [`decoded_segment_risk`] finds in its NFKC form: a
/// separator look-alike (`..%ef%bc%8f` is `../`), or dots, dot look-alikes and spaces only
/// before any `?`, `#` or `;` (`..%20`, `...`, `%ef%b8%b0` (U+FE30, `..`), `..%C2%A0`,
/// `..%3F`: an upstream that decodes before it splits off the query reads `..`). Ordinary
/// UTF-8 names pass (`caf%C3%A9.jpg`). `.` and `..` themselves (plain or `%2e`) are not asked
/// about: they are redirected to the clean path.
pub fn funnel_segment_risk(seg: &str, buf: &mut Vec<u8>) -> Option<&'static str> {
    // Plain ASCII without escapes, the common case: only a run of dots (before any `;`, which
    // servlet containers cut) can be read as one.
    if !seg.bytes().any(|b| b == b'%' || b >= 0x80) {
        let head = seg.split(';').next().unwrap_or(seg);
        return (!head.is_empty() && head.bytes().all(|b| b == b'.'))
            .then_some("a segment of dots only is not accepted through Funnel\n");
    }
    decode_into(seg, buf);
    let Ok(text) = std::str::from_utf8(buf) else {
        return Some("a path through Funnel is UTF-8 (no overlong or broken sequences)\n");
    };
    decoded_segment_risk(text).map(|risk| match risk {
        SegmentRisk::Control => "control characters are not accepted in a path through Funnel\n",
        SegmentRisk::Separator => {
            "slash, backslash and percent look-alikes are not accepted through Funnel\n"
        }
        SegmentRisk::Dots => {
            "a segment of dots, dot look-alikes and spaces only (before any ?, # or ;) is not accepted through Funnel\n"
        }
    })
}

/// A path as a `Location`: `\` percent-encoded (`%5C`). Browsers read `\` as `/`, so a
/// Location `/\evil.example/` (the clean form of `/\evil.example/x/..`, allowed on the
/// tailnet) would be `//evil.example/`: another host. Only redirects pay for it.
pub fn location_safe(location: String) -> String {
    if location.contains('\\') { location.replace('\\', "%5C") } else { location }
}

/// Checks a request path (origin form, starting with `/`; anything else is left alone).
pub fn check(path: &str, funnel: bool) -> PathCheck {
    if !path.starts_with('/') {
        return PathCheck::Clean;
    }
    if funnel && risky_on_funnel(path) {
        return PathCheck::Refuse(
            "encoded slashes, backslashes, encoded percent signs and malformed escapes are not accepted through Funnel\n",
        );
    }
    if funnel && path[1..].split('/').any(is_dot_segment_with_params) {
        return PathCheck::Refuse(
            "dot-segments with path parameters (`..;`) are not accepted through Funnel\n",
        );
    }
    if funnel {
        let mut buf = Vec::new();
        for seg in path[1..].split('/') {
            if dots(seg) == 0
                && let Some(why) = funnel_segment_risk(seg, &mut buf)
            {
                return PathCheck::Refuse(why);
            }
        }
    }
    // The common case allocates nothing: a scan for `//` and for segments made only of dots.
    let rest = &path[1..];
    let unclean = rest.contains("//")
        || (rest.starts_with('/'))
        || rest.split('/').any(|s| !s.is_empty() && dots(s) > 0);
    if !unclean {
        return PathCheck::Clean;
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let mut out: Vec<&str> = Vec::with_capacity(segs.len());
    for s in &segs {
        match dots(s) {
            1 => {}
            2 => {
                out.pop();
            }
            _ if s.is_empty() => {}
            _ => out.push(s),
        }
    }
    let mut cleaned = format!("/{}", out.join("/"));
    // As Go's cleanPath: a trailing slash is kept.
    if path.ends_with('/') && cleaned != "/" {
        cleaned.push('/');
    }
    PathCheck::Redirect(location_safe(cleaned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(p: &str) -> String {
        match check(p, false) {
            PathCheck::Redirect(to) => to,
            other => panic!("{p}: {other:?}"),
        }
    }

    #[test]
    fn clean_paths_pass_untouched() {
        for p in ["/", "/a", "/a/", "/a/b.c", "/a/.hidden", "/a/...", "/%41b", "/a?x", "*"] {
            assert_eq!(check(p, false), PathCheck::Clean, "{p}");
        }
    }

    #[test]
    fn dot_segments_and_repeated_slashes_redirect_to_the_clean_path() {
        assert_eq!(redirect("/pub/../secret/s.txt"), "/secret/s.txt");
        assert_eq!(redirect("/pub/%2e%2e/secret"), "/secret");
        assert_eq!(redirect("/pub/%2E./secret"), "/secret");
        assert_eq!(redirect("/a/./b"), "/a/b");
        assert_eq!(redirect("//a//b/"), "/a/b/");
        assert_eq!(redirect("/../../etc"), "/etc");
        assert_eq!(redirect("/a/.."), "/");
        assert_eq!(redirect("/a/b/.."), "/a");
        assert_eq!(redirect("/a/%2E"), "/a");
    }

    /// A Location never starts with `//` or `/\`, which browsers read as another host.
    #[test]
    fn redirects_never_lead_to_another_host() {
        assert_eq!(redirect("/\\evil.example/x/.."), "/%5Cevil.example");
        assert_eq!(redirect("//\\evil.example/"), "/%5Cevil.example/");
        assert_eq!(redirect("/a\\b/./c"), "/a%5Cb/c");
    }

    #[test]
    fn funnel_refuses_dot_segments_with_parameters() {
        for p in ["/pub/..;/secret", "/pub/%2e%2e;x/secret", "/pub/..%3B/secret", "/pub/.;a/x"] {
            assert!(matches!(check(p, true), PathCheck::Refuse(_)), "{p}");
        }
        // A parameter on an ordinary segment is the app's business.
        assert_eq!(check("/pub/a;jsessionid=1/x", true), PathCheck::Clean);
        assert!(is_dot_segment_with_params("..;"));
        assert!(!is_dot_segment_with_params(".."));
        assert!(!is_dot_segment_with_params("a;b"));
    }

    /// Issue 15, second pass: what some upstreams decode or normalise into a traversal.
    #[test]
    fn funnel_refuses_control_bytes_overlong_utf8_look_alikes_and_dot_runs() {
        for p in [
            "/pub/..%00/secret",
            "/pub/%00",
            "/pub/a%0d%0ab",
            "/pub/..%7f",
            "/pub/%c0%ae%c0%ae/secret",
            "/pub/%e0%80%ae",
            "/pub/%ff",
            "/pub/%ef%bc%8e%ef%bc%8e/secret",
            "/pub/%e2%80%a4%e2%80%a4/secret",
            "/pub/%e2%80%a5/secret",
            "/pub/%ef%b9%92.",
            "/pub/%ef%bd%a1%ef%bd%a1",
            "/pub/%e3%80%82%e3%80%82/secret",
            "/pub/..%ef%bc%8fsecret",
            "/pub/..%ef%bc%bcsecret",
            "/pub/..%e2%88%95secret",
            "/pub/..%e2%81%84secret",
            "/pub/..%ef%b9%a8secret",
            "/pub/..%e2%a7%b5secret",
            "/pub/%ef%bc%852e%ef%bc%852e/secret",
            "/pub/..%20/secret",
            "/pub/.%20",
            "/pub/%2e%2e%20/secret",
            "/pub/.../secret",
            "/pub/....",
        ] {
            assert!(matches!(check(p, true), PathCheck::Refuse(_)), "{p}");
            assert!(!matches!(check(p, false), PathCheck::Refuse(_)), "{p} on the tailnet");
        }
        for p in [
            "/pub/caf%C3%A9.jpg",
            "/pub/%E3%81%93%E3%82%93%E3%81%AB%E3%81%A1%E3%81%AF%E3%80%82.txt",
            "/pub/a%20b",
            "/pub/..x",
            "/pub/x..",
            "/pub/.hidden",
            "/pub/%ef%bc%8ejpg",
        ] {
            assert_eq!(check(p, true), PathCheck::Clean, "{p}");
        }
        // `.` and `..` themselves are still redirected to the clean path, Funnel or not.
        assert_eq!(check("/pub/../x", true), PathCheck::Redirect("/x".into()));
    }

    /// The attacker pass: NFKC dots and spaces (U+FE30 is `..`, U+FE19 `...`, NBSP and the
    /// other Unicode spaces a space), raw or encoded, and `..` before an encoded `?` or `#`.
    #[test]
    fn funnel_refuses_nfkc_dots_and_dot_segments_before_a_query_or_fragment() {
        for p in [
            "/pub/%EF%B8%B0/%EF%B8%B0/etc/passwd",
            "/pub/\u{FE30}/\u{FE30}/etc/passwd",
            "/pub/%ef%b8%99/secret",
            "/pub/..%C2%A0/secret",
            "/pub/..\u{A0}/secret",
            "/pub/..%E2%80%80/secret",
            "/pub/..%E2%80%8A/secret",
            "/pub/..%E2%80%AF/secret",
            "/pub/..%E2%81%9F/secret",
            "/pub/..%E3%80%80/secret",
            "/pub/..%C2%85/secret",
            "/pub/..%3F/secret",
            "/pub/..%3f",
            "/pub/..%23/x",
            "/pub/%2e%2e%3fx",
            "/pub/..%20%3F",
            "/pub/.%3F",
            "/pub/%EF%BC%8E%EF%BC%8E%EF%BC%9Fx",
            "/pub/...;x",
        ] {
            assert!(matches!(check(p, true), PathCheck::Refuse(_)), "{p}");
            assert!(!matches!(check(p, false), PathCheck::Refuse(_)), "{p} on the tailnet");
        }
        for p in ["/pub/caf%C3%A9.jpg", "/pub/a%3F..", "/pub/x%3Fy", "/pub/%C2%A0x"] {
            assert_eq!(check(p, true), PathCheck::Clean, "{p}");
        }
    }

    #[test]
    fn funnel_refuses_what_an_upstream_could_decode_into_a_separator() {
        for p in [
            "/pub/..%2Fsecret",
            "/pub/%2f..",
            "/pub/..%5csecret",
            "/pub\\..\\x",
            "/pub/%252e%252e/",
            // Found by the request_path fuzz target: escapes nested in malformed ones.
            "/pub/%%32e%%32e/secret",
            "/.%2%65/",
            "/pub/%",
            "/pub/%4",
            "/pub/%zz",
        ] {
            assert!(matches!(check(p, true), PathCheck::Refuse(_)), "{p}");
            assert!(!matches!(check(p, false), PathCheck::Refuse(_)), "{p} on the tailnet");
        }
    }
}
