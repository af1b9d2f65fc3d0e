//! tsnsrv's path rules (`reference/tsnsrv.md` 3.3): the prefix allowlist, `stripPrefix`, and
//! how the rest joins the destination URL (Go's `ProxyRequest.SetURL`).

use std::borrow::Cow;

/// Which listener a request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The tailnet.
    Tailnet,
    /// Tailscale Funnel (public).
    Funnel,
}

/// The prefix a request matched: the first allowed entry, in order. `None` means 404.
/// An empty list allows everything (matching the empty prefix). `tailnet:/x` matches only on
/// the tailnet, `funnel:/x` only on the funnel, a bare `/x` on both. A match is a plain string
/// prefix of the path (or of the raw, still-escaped path): `/api` also matches `/apifoo`.
pub fn allowed<'a>(
    prefixes: &'a [String],
    path: &str,
    raw_path: Option<&str>,
    via: Via,
) -> Option<&'a str> {
    if prefixes.is_empty() {
        return Some("");
    }
    for p in prefixes {
        let (scope, pfx) = if let Some(x) = p.strip_prefix("tailnet:") {
            (Some(Via::Tailnet), x)
        } else if let Some(x) = p.strip_prefix("funnel:") {
            (Some(Via::Funnel), x)
        } else {
            (None, p.as_str())
        };
        if scope.is_some_and(|s| s != via) {
            continue;
        }
        if path.starts_with(pfx) || raw_path.is_some_and(|r| r.starts_with(pfx)) {
            return Some(pfx);
        }
    }
    None
}

/// Go's `singleJoiningSlash`; borrowed when `a` adds nothing (the destination's path is the
/// root, the common case).
fn join<'a>(a: &str, b: &'a str) -> Cow<'a, str> {
    match (a.ends_with('/'), b.starts_with('/')) {
        (true, true) if a == "/" => Cow::Borrowed(b),
        (true, true) => Cow::Owned(format!("{a}{}", &b[1..])),
        (false, false) => Cow::Owned(format!("{a}/{b}")),
        _ if a.is_empty() => Cow::Borrowed(b),
        _ => Cow::Owned(format!("{a}{b}")),
    }
}

/// The upstream path: the matched prefix cut when `strip`, the rest joined onto the
/// destination's path with a single slash; when nothing is left, the destination path as is.
pub fn upstream_path<'a>(
    dest_path: &'a str,
    request_path: &'a str,
    matched: &str,
    strip: bool,
) -> Cow<'a, str> {
    let rest = if strip {
        request_path.strip_prefix(matched).unwrap_or(request_path)
    } else {
        request_path
    };
    if rest.is_empty() {
        return Cow::Borrowed(if dest_path.is_empty() { "/" } else { dest_path });
    }
    join(dest_path, rest)
}

/// The upstream query: the destination's and the request's, joined with `&` (as `SetURL`).
pub fn upstream_query<'a>(
    dest_query: Option<&'a str>,
    request_query: Option<&'a str>,
) -> Option<Cow<'a, str>> {
    match (dest_query.filter(|q| !q.is_empty()), request_query.filter(|q| !q.is_empty())) {
        (None, None) => None,
        (Some(a), None) => Some(Cow::Borrowed(a)),
        (None, Some(b)) => Some(Cow::Borrowed(b)),
        (Some(a), Some(b)) => Some(Cow::Owned(format!("{a}&{b}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_list_allows_everything() {
        assert_eq!(allowed(&[], "/anything", None, Via::Funnel), Some(""));
    }

    #[test]
    fn scoped_prefixes_match_only_on_their_listener() {
        let p = v(&["tailnet:/", "funnel:/share/"]);
        assert_eq!(allowed(&p, "/admin", None, Via::Tailnet), Some("/"));
        assert_eq!(allowed(&p, "/admin", None, Via::Funnel), None);
        assert_eq!(allowed(&p, "/share/x", None, Via::Funnel), Some("/share/"));
        let bare = v(&["/api"]);
        assert_eq!(allowed(&bare, "/api/x", None, Via::Funnel), Some("/api"));
        assert_eq!(allowed(&bare, "/api/x", None, Via::Tailnet), Some("/api"));
    }

    #[test]
    fn matching_is_plain_string_prefix_first_match_wins() {
        // Not segment-aware: /api also matches /apifoo (tsnsrv.md 3.3).
        assert_eq!(allowed(&v(&["/api"]), "/apifoo", None, Via::Tailnet), Some("/api"));
        assert_eq!(allowed(&v(&["/a", "/ab"]), "/abc", None, Via::Tailnet), Some("/a"));
        assert_eq!(allowed(&v(&["/x"]), "/y", None, Via::Tailnet), None);
        // The raw (escaped) path counts too.
        assert_eq!(allowed(&v(&["/a%2Fb"]), "/a/b", Some("/a%2Fb"), Via::Tailnet), Some("/a%2Fb"));
    }

    #[test]
    fn strip_and_join_as_tsnsrv_cli_tests() {
        // cli_test.go: prefix /api/push-github, dest http://h:3001/api/push-github.
        assert_eq!(
            upstream_path("/api/push-github", "/api/push-github", "/api/push-github", true),
            "/api/push-github"
        );
        assert_eq!(
            upstream_path("/api/push-github", "/api/push-github/x", "/api/push-github", true),
            "/api/push-github/x"
        );
        // prefix / + dest /api/push-github: / -> /api/push-github.
        assert_eq!(upstream_path("/api/push-github", "/", "/", true), "/api/push-github");
        // -stripPrefix=false keeps the path.
        assert_eq!(
            upstream_path("", "/_matrix/client/versions", "/_matrix", false),
            "/_matrix/client/versions"
        );
        // No prefixes: the path joins the destination's.
        assert_eq!(upstream_path("", "/web/index.html", "", true), "/web/index.html");
        assert_eq!(upstream_path("/base/", "/x", "", true), "/base/x");
        assert_eq!(upstream_path("/base", "/x", "", true), "/base/x");
        // A stripped prefix without a trailing slash leaves a bare segment: one slash joins it.
        assert_eq!(upstream_path("/app", "/pfxrest", "/pfx", true), "/app/rest");
        assert_eq!(upstream_path("", "", "", true), "/");
    }

    #[test]
    fn queries_merge_like_set_url() {
        assert_eq!(upstream_query(Some("a=1"), Some("b=2")).as_deref(), Some("a=1&b=2"));
        assert_eq!(upstream_query(None, Some("b=2")).as_deref(), Some("b=2"));
        assert_eq!(upstream_query(Some(""), None), None);
    }
}
