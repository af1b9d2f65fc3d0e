//! The immutable route table the request path reads: built beside the old one, validated,
//! swapped whole (`arc-swap`), never locked on the hot path.

use super::upstream::Dial;
use crate::error::ProxyError;
use rustc_hash::FxHashMap as HashMap;
use std::path::Path;
use std::sync::Arc;
use tailshift_routes::{AccessRule, Route, RouteError, validate_table};

/// A route with what the request path derives from it once, when the table is built: how its
/// upstream and auth service are dialed, and the authorities the client pools them under.
#[derive(Debug)]
pub struct Routed {
    /// The route as given.
    pub route: Route,
    /// How the upstream is dialed (`None`: its URL is not http(s); requests get 502).
    pub dial: Option<Arc<Dial>>,
    /// The pool key of `dial` (also its registry key).
    pub dial_key: Arc<str>,
    /// How the forward-auth service is dialed.
    pub auth_dial: Option<Arc<Dial>>,
    /// The pool authority of `auth_dial`.
    pub auth_key: String,
    /// Its `host[:port]` (the Host the upstream sees when it is not kept).
    pub dest_authority: String,
    /// The service's counters, looked up on the first request through this table.
    pub metrics: std::sync::OnceLock<Arc<super::metrics::ServiceMetrics>>,
    /// The pool's idle connections for `dial_key`, looked up on the first request through
    /// this table.
    pub pool_slot: std::sync::OnceLock<Arc<super::pool::Slot>>,
}

impl std::ops::Deref for Routed {
    type Target = Route;
    fn deref(&self) -> &Route {
        &self.route
    }
}

impl Routed {
    /// The route's own name the client asked for (its spelling, case and port aside; a short name
    /// is its full name), so a metrics label can take only as many values as the route has names:
    /// a client must not grow the proxy's memory by spelling one name many ways.
    pub fn canonical_name(&self, asked: &str) -> &str {
        let host = bare_host(asked);
        let route = &self.route;
        route
            .hosts
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(host))
            .or_else(|| {
                route.hosts.iter().find(|h| {
                    h.name.split('.').next().is_some_and(|first| first.eq_ignore_ascii_case(host))
                })
            })
            .or(route.hosts.first())
            .map(|h| h.name.as_str())
            .unwrap_or("")
    }

    fn new(route: Route) -> Routed {
        let dest = &route.upstream.url;
        let dest_authority = authority(dest);
        let dial = Dial::for_url(
            dest,
            route.upstream.unix.as_deref(),
            route.upstream.tcp_addr.as_deref(),
            route.insecure_https,
            route.timeouts.connect_ms,
        );
        let auth_dial = route
            .auth
            .as_ref()
            .and_then(|a| Dial::for_url(&a.url, None, None, a.insecure_https, None));
        let key = |d: &Option<Dial>| d.as_ref().map(Dial::key).unwrap_or_default();
        let dial_key: Arc<str> = Arc::from(key(&dial));
        Routed {
            metrics: std::sync::OnceLock::new(),
            pool_slot: std::sync::OnceLock::new(),
            dest_authority,
            dial_key,
            auth_key: key(&auth_dial),
            dial: dial.map(Arc::new),
            auth_dial: auth_dial.map(Arc::new),
            route,
        }
    }
}

/// An index of routes by name, mounts longest first.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// The routes as given.
    pub routes: Vec<Arc<Routed>>,
    by_host: HashMap<String, Vec<(String, Arc<Routed>)>>,
    /// Short names (`jellyfin` for `jellyfin.tailnet.ts.net`) to full names.
    short: HashMap<String, String>,
    /// The first label of each route's legacy (first) name: the Tailscale Service it may be
    /// served as (`svc:jellyfin`), and the name of its socket.
    by_service: HashMap<String, Arc<Routed>>,
}

impl RouteTable {
    /// Validates and indexes a whole table.
    pub fn new(routes: Vec<Route>) -> Result<RouteTable, RouteError> {
        validate_table(&routes)?;
        let routes: Vec<Arc<Routed>> =
            routes.into_iter().map(|r| Arc::new(Routed::new(r))).collect();
        let mut by_host: HashMap<String, Vec<(String, Arc<Routed>)>> = HashMap::default();
        let mut short = HashMap::default();
        for r in &routes {
            for h in &r.hosts {
                by_host.entry(h.name.clone()).or_default().push((h.mount.clone(), r.clone()));
                if let Some((label, _)) = h.name.split_once('.') {
                    short.entry(label.to_string()).or_insert_with(|| h.name.clone());
                }
            }
        }
        for v in by_host.values_mut() {
            v.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        }
        let mut by_service = HashMap::default();
        for r in &routes {
            if let Some(label) = r.hosts.first().map(|h| service_label(&h.name)) {
                by_service.entry(label.to_string()).or_insert_with(|| r.clone());
            }
        }
        Ok(RouteTable { routes, by_host, short, by_service })
    }

    /// The route served as the Tailscale Service `svc:<label>`.
    pub fn service(&self, label: &str) -> Option<Arc<Routed>> {
        self.by_service.get(label).cloned()
    }

    /// The Service labels of every route (sorted).
    pub fn service_labels(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_service.keys().cloned().collect();
        v.sort();
        v
    }

    /// Every dial the table's routes use (to register before the table is installed).
    pub fn dials(&self) -> impl Iterator<Item = &Arc<Dial>> {
        self.routes.iter().flat_map(|r| r.dial.iter().chain(r.auth_dial.iter()))
    }

    /// The pool keys of the upstreams the routes dial.
    pub fn dial_keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.routes.iter().filter(|r| r.dial.is_some()).map(|r| &r.dial_key)
    }

    /// The route for a host (port stripped, short names accepted) and path: longest mount wins.
    pub fn lookup(&self, host: &str, path: &str) -> Option<(Arc<Routed>, String)> {
        let host = bare_host(host);
        let lowered;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = host.to_ascii_lowercase();
            lowered.as_str()
        } else {
            host
        };
        let mounts = match self.by_host.get(host) {
            Some(m) => m,
            None => self.by_host.get(self.short.get(host)?)?,
        };
        mounts
            .iter()
            .find(|(mount, _)| mount_matches(mount, path))
            .map(|(m, r)| (r.clone(), m.clone()))
    }

    /// Whether some route answers for `host` (under any mount): such a name gets a
    /// certificate even when it is mounted only under sub-paths.
    pub fn serves_name(&self, host: &str) -> bool {
        let host = bare_host(host).to_ascii_lowercase();
        self.by_host.contains_key(host.as_str())
            || self.short.get(host.as_str()).is_some_and(|full| self.by_host.contains_key(full))
    }

    /// Reads `routes.json` (an absent file is an empty table), checked as [`RouteTable::new`]
    /// does and against what this proxy's configuration can serve (`fit`).
    pub fn load(path: &Path, fit: &Fit) -> crate::error::Result<RouteTable> {
        if !path.exists() {
            return Ok(RouteTable::default());
        }
        let text = std::fs::read_to_string(path).map_err(|e| ProxyError::file(path, e))?;
        let routes: Vec<Route> =
            serde_json::from_str(&text).map_err(|e| ProxyError::file(path, e))?;
        let table = RouteTable::new(routes).map_err(|e| ProxyError::file(path, e))?;
        fit.check(&table).map_err(|e| ProxyError::file(path, e))?;
        Ok(table)
    }

    /// Writes the table atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> crate::error::Result<()> {
        let list: Vec<&Route> = self.routes.iter().map(|r| &r.route).collect();
        let text =
            serde_json::to_string_pretty(&list).map_err(|e| ProxyError::file(path, e))? + "\n";
        // Routes carry upstream header values, which can be credentials.
        tailshift_util::write_atomic(path, text.as_bytes(), tailshift_util::FileMode::Private)
            .map_err(|e| ProxyError::file(path, e))?;
        Ok(())
    }
}

/// What a proxy's configuration can serve, beyond what [`validate_table`] checks of every
/// table: the same table may suit one proxy and not another. Checked by `PUT /routes`, when
/// `routes.json` is read (at start and on SIGHUP), and by `--check-config`, so all three refuse
/// the same tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fit {
    /// A `services` listener exists: each route's Service label gets a socket of its own.
    pub services_listener: bool,
    /// `localapi_socket` is set: whois can say which groups and tags a peer has.
    pub localapi: bool,
}

impl Fit {
    /// What `cfg` can serve.
    pub fn of(cfg: &super::config::ProxyConfig) -> Fit {
        Fit {
            services_listener: cfg
                .listeners
                .iter()
                .any(|l| matches!(l, super::config::ListenerConfig::Services { .. })),
            localapi: cfg.localapi_socket.is_some(),
        }
    }

    /// Why this proxy cannot serve a (valid) table, naming the routes concerned.
    pub fn check(&self, table: &RouteTable) -> Result<(), String> {
        let routes = || table.routes.iter().map(|r| &r.route);
        if !self.localapi {
            // Group and tag rules match what the LocalAPI's whois says (serve's headers carry
            // neither): without it they could admit no one, and the route would lock everyone
            // out instead of failing here.
            if let Some(r) = routes().find(|r| {
                r.access.iter().any(|a| matches!(a, AccessRule::Group(_) | AccessRule::Tag(_)))
            }) {
                return Err(format!(
                    "{}: group and tag access rules need the proxy's localapi_socket (they match the LocalAPI's whois answer)",
                    r.service
                ));
            }
        }
        if self.services_listener {
            // One socket per Service label (`<dir>/<label>.sock` for `svc:<label>`): a second
            // route with the same label would get none and be unreachable as a Service.
            let mut by_label: HashMap<&str, (&str, &str)> = HashMap::default();
            for r in routes() {
                let Some(name) = r.hosts.first().map(|h| h.name.as_str()) else { continue };
                let label = service_label(name);
                if let Some((first, first_name)) = by_label.insert(label, (&r.service, name)) {
                    return Err(format!(
                        "{first} ({first_name}) and {} ({name}) share the first label `{label}`: with a `services` listener each route is the Tailscale Service svc:<first label of its first name> on the socket <label>.sock, so only one of them could be served; rename one",
                        r.service
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The Tailscale Service label of a route's first name (`jellyfin` for
/// `jellyfin.tailnet.ts.net`): `svc:<label>`, and the name of its socket.
pub fn service_label(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// A host as asked (`App.tailnet.test.:8443`) without its port and trailing dot.
pub fn bare_host(asked: &str) -> &str {
    asked
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(asked, |(h, _)| h)
        .trim_end_matches('.')
}

/// Whether a mount serves a path: on segment boundaries (`/app` serves `/app` and `/app/x`, not
/// `/application`); `/app/` also serves `/app`.
fn mount_matches(mount: &str, path: &str) -> bool {
    if mount == "/" || mount.strip_suffix('/') == Some(path) {
        return true;
    }
    match path.strip_prefix(mount) {
        Some(rest) => mount.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// `host[:port]` of a URL, the port only when it is not the scheme's default.
pub fn authority(u: &url::Url) -> String {
    let host = u.host_str().unwrap_or("localhost");
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

#[cfg(test)]
mod mount_tests {
    use super::mount_matches;

    #[test]
    fn mounts_match_on_segment_boundaries() {
        assert!(mount_matches("/app", "/app"));
        assert!(mount_matches("/app", "/app/x"));
        assert!(!mount_matches("/app", "/application"));
        assert!(!mount_matches("/app", "/apple.png"));
        assert!(mount_matches("/app/", "/app"));
        assert!(mount_matches("/app/", "/app/x"));
        assert!(!mount_matches("/app/", "/apps"));
        assert!(mount_matches("/", "/anything"));
    }
}
