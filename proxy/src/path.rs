//! The request path's whole decision, as one pure function: [`decide`] says whether a request
//! for `path?query` through `via` on `route` is redirected to its clean form (301), refused
//! (400), not allowed by the route's prefixes (404), or forwarded, and with which upstream path
//! and query. It is composed of [`clean::check`](super::clean::check) (before any routing),
//! [`prefix::allowed`](super::prefix::allowed) and the join onto the upstream's base path
//! ([`prefix::upstream_path`](super::prefix::upstream_path),
//! [`prefix::upstream_query`](super::prefix::upstream_query)). Mounts choose the route and leave
//! the path as it is.
//!
//! The handler runs the two halves of `decide` apart, with the route lookup, the access rules
//! and forward auth between them (the 301 comes before any routing decision, as Go's
//! `ServeMux` answered in front of tsnsrv; forward auth runs before the prefix check, as in the
//! fork): [`check`] first, then [`forward`] on what `check` let through. [`Checked`] can only be
//! made by `check`, so `forward` never sees a path that was not checked, for the listener it
//! came through. The fuzz target `request_path` (`fuzz/`) tests `decide`, hence the handler's
//! own code.

use super::clean::{
    PathCheck, check as clean_check, funnel_segment_risk, is_dot_segment,
    is_dot_segment_with_params,
};
use super::prefix::{Via, allowed, upstream_path, upstream_query};
use std::borrow::Cow;
use tailshift_routes::Route;

/// What becomes of a request's path.
#[derive(Debug, PartialEq, Eq)]
pub enum PathDecision<'a> {
    /// Answer 301 with this `Location` (the clean path, the query kept).
    Redirect(String),
    /// Answer 400: why.
    Refuse(&'static str),
    /// Answer 404: no prefix of the route allows the path through this listener.
    NotAllowed,
    /// Forward, with this path and query toward the upstream.
    Forward {
        /// The upstream path: the request's (the matched prefix cut when the route strips it)
        /// joined onto the upstream URL's path.
        path: Cow<'a, str>,
        /// The upstream URL's query and the request's, joined with `&`.
        query: Option<Cow<'a, str>>,
    },
}

/// A request path that [`check`] let through, for the listener it came through.
#[derive(Clone, Copy, Debug)]
pub struct Checked<'a> {
    path: &'a str,
    via: Via,
}

impl<'a> Checked<'a> {
    /// The path (as the request wrote it: a clean path is forwarded byte for byte).
    pub fn path(&self) -> &'a str {
        self.path
    }
}

/// The first half of [`decide`], before any routing: a path with dot-segments or repeated
/// slashes is redirected to its clean form (the query kept), one an upstream could decode into
/// a separator is refused on Funnel.
pub fn check<'a>(
    path: &'a str,
    query: Option<&str>,
    via: Via,
) -> Result<Checked<'a>, PathDecision<'static>> {
    match clean_check(path, via == Via::Funnel) {
        PathCheck::Clean => Ok(Checked { path, via }),
        PathCheck::Redirect(mut to) => {
            if let Some(q) = query {
                to.push('?');
                to.push_str(q);
            }
            Err(PathDecision::Redirect(to))
        }
        PathCheck::Refuse(why) => Err(PathDecision::Refuse(why)),
    }
}

/// The second half of [`decide`], once the route is known: tsnsrv's prefix rules, then the path
/// and query the upstream is asked for. A prefix that does not end in `/` may be cut in the
/// middle of a segment: what is left of `/pub..` once `/pub` is cut is `..`, which tsnsrv
/// joined onto the upstream's path (`/base/..`) for the upstream to resolve out of it. Such a
/// request is refused.
pub fn forward<'a>(
    route: &'a Route,
    checked: Checked<'a>,
    query: Option<&'a str>,
) -> PathDecision<'a> {
    let Checked { path, via } = checked;
    let Some(matched) = allowed(&route.prefixes, path, None, via) else {
        return PathDecision::NotAllowed;
    };
    // A clean path's whole segments are no dot-segments: only the first of the rest can be.
    // On Funnel, nor one an upstream reads as a dot-segment (`...`, `.%20`, `%ef%bc%8e.`).
    if route.strip_prefix
        && let Some(rest) = path.strip_prefix(matched)
        && rest.split('/').next().is_some_and(|first| {
            is_dot_segment(first)
                || is_dot_segment_with_params(first)
                || (via == Via::Funnel && funnel_segment_risk(first, &mut Vec::new()).is_some())
        })
    {
        return PathDecision::Refuse(
            "what is left of the path once the route's prefix is cut is a dot-segment\n",
        );
    }
    let dest = &route.upstream.url;
    // The url crate writes an empty path as "/"; joining gives the same result as Go's "".
    PathDecision::Forward {
        path: upstream_path(dest.path(), path, matched, route.strip_prefix),
        query: upstream_query(dest.query(), query),
    }
}

/// The whole decision for a request's path and query through `via` on `route`.
pub fn decide<'a>(
    route: &'a Route,
    path: &'a str,
    query: Option<&'a str>,
    via: Via,
) -> PathDecision<'a> {
    match check(path, query, via) {
        Ok(checked) => forward(route, checked, query),
        Err(answer) => answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefixes: &[&str], strip_prefix: bool, upstream: &str) -> Route {
        serde_json::from_value(serde_json::json!({
            "service": "box/app",
            "hosts": [{"name": "app.tailnet.test", "mount": "/"}],
            "listen": {"kind": "https", "port": 443},
            "upstream": {"url": upstream},
            "prefixes": prefixes,
            "strip_prefix": strip_prefix,
            "host_header": "keep",
            "proxy_headers": false,
            "funnel": true,
            "tailnet": true,
            "whois": {"enabled": false, "timeout_ms": 0},
        }))
        .unwrap()
    }

    fn forwarded(d: PathDecision) -> String {
        match d {
            PathDecision::Forward { path, query: Some(q) } => format!("{path}?{q}"),
            PathDecision::Forward { path, query: None } => path.into_owned(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn decide_is_check_then_forward() {
        let r = route(&["funnel:/pub/", "tailnet:/"], false, "http://up.test/base?k=v");
        assert_eq!(
            decide(&r, "/pub/../secret", Some("x=1"), Via::Funnel),
            PathDecision::Redirect("/secret?x=1".into())
        );
        assert!(matches!(decide(&r, "/pub/..%2Fs", None, Via::Funnel), PathDecision::Refuse(_)));
        assert_eq!(decide(&r, "/secret", None, Via::Funnel), PathDecision::NotAllowed);
        let pub_path = decide(&r, "/pub/a%20b", Some("s=1"), Via::Funnel);
        assert_eq!(forwarded(pub_path), "/base/pub/a%20b?k=v&s=1");
        assert_eq!(forwarded(decide(&r, "/secret", None, Via::Tailnet)), "/base/secret?k=v");
    }

    /// Found by the request_path fuzz target: `/pub..` passes `funnel:/pub`, and what is left
    /// once the prefix is cut, `..`, took the upstream out of its base path (`/base/..`).
    #[test]
    fn a_cut_prefix_never_leaves_a_dot_segment() {
        let r = route(&["funnel:/pub", "tailnet:/pub"], true, "http://up.test/base");
        for p in ["/pub..", "/pub../secret", "/pub%2e%2E/secret", "/pub.", "/pub./x"] {
            for via in [Via::Funnel, Via::Tailnet] {
                assert!(matches!(decide(&r, p, None, via), PathDecision::Refuse(_)), "{p}");
            }
        }
        // A run of dots is a dot-segment to upstreams that trim trailing dots (Windows):
        // refused through Funnel; on the tailnet it is a name, forwarded as before.
        for p in ["/pub...", "/pub.%20", "/pub%ef%bc%8e.", "/pub..%00"] {
            assert!(matches!(decide(&r, p, None, Via::Funnel), PathDecision::Refuse(_)), "{p}");
        }
        assert_eq!(forwarded(decide(&r, "/pub...", None, Via::Tailnet)), "/base/...");
        assert_eq!(forwarded(decide(&r, "/pub..x/y", None, Via::Funnel)), "/base/..x/y");
        assert_eq!(forwarded(decide(&r, "/pub/x", None, Via::Funnel)), "/base/x");
        assert_eq!(forwarded(decide(&r, "/pubx", None, Via::Funnel)), "/base/x");
        // Kept prefixes leave the path whole (and clean).
        let keep = route(&["funnel:/pub"], false, "http://up.test/base");
        assert_eq!(forwarded(decide(&keep, "/pub..", None, Via::Funnel)), "/base/pub..");
    }
}
