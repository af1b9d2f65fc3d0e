//! Validation of a whole route table, as far as it needs no listener configuration: what the
//! router could not serve is refused before it is installed. What depends on the proxy's
//! listeners (first-label collisions under a `services` listener) the proxy checks itself.

use crate::route::Route;
use std::collections::{BTreeMap, BTreeSet};

/// Why a route table is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// A value of one route cannot be served.
    #[error("{service}: {option} = {value:?}: {message}")]
    Invalid {
        /// The service.
        service: String,
        /// The field.
        option: String,
        /// The value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// Two routes claim one name and mount.
    #[error("{first} and {second} both claim {name}{mount}")]
    Conflict {
        /// The first route.
        first: String,
        /// The second route.
        second: String,
        /// The name.
        name: String,
        /// The mount.
        mount: String,
    },
}

/// Whether `name` is a DNS name a route can answer for: lower-case labels of letters, digits
/// and inner hyphens (1 to 63 characters each), at most 253 characters, one trailing dot
/// allowed. Anything else (a `/`, whitespace, an empty label) could not be asked for, and would
/// reach the file system where a name becomes a socket's name.
pub fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Validates a whole table: every service once, names lower-case DNS names, mounts starting
/// with `/`, upstream URLs `http` or `https`, and no two routes claiming one name and mount,
/// whatever their listeners (the router picks by name and path; `x` and `x.` are one name).
pub fn validate_table(routes: &[Route]) -> Result<(), RouteError> {
    let mut seen: BTreeMap<(String, String), &str> = BTreeMap::new();
    let mut services = BTreeSet::new();
    for r in routes {
        let invalid = |option: &str, value: String, message: &str| RouteError::Invalid {
            service: r.service.clone(),
            option: option.into(),
            value,
            message: message.into(),
        };
        if !services.insert(&r.service) {
            return Err(invalid("service", r.service.clone(), "appears twice in the table"));
        }
        if !matches!(r.upstream.url.scheme(), "http" | "https") {
            return Err(invalid(
                "upstream.url",
                r.upstream.url.to_string(),
                "only http:// and https:// upstreams are proxied",
            ));
        }
        for h in &r.hosts {
            if !is_dns_name(&h.name) || !h.mount.starts_with('/') {
                return Err(invalid(
                    "hosts",
                    format!("{}{}", h.name, h.mount),
                    "names are lower-case DNS names; mounts start with /",
                ));
            }
            let name = h.name.strip_suffix('.').unwrap_or(&h.name).to_string();
            if let Some(first) = seen.insert((name, h.mount.clone()), &r.service) {
                return Err(RouteError::Conflict {
                    first: first.to_string(),
                    second: r.service.clone(),
                    name: h.name.clone(),
                    mount: h.mount.clone(),
                });
            }
        }
    }
    Ok(())
}
