//! tsnsrv's metric families with their exact names and types, labelled with `service_name` as
//! the fork does (`reference/tsnsrv.md` 3.8), plus the proxy's own requests-by-host counter.
//! The text exposition is written directly: a Summary and counters without `_total` are what
//! existing dashboards query.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Recent durations kept per service for the Summary's quantiles.
const WINDOW: usize = 256;

/// One service's counters; updated with atomics on the request path.
pub struct ServiceMetrics {
    classes: [AtomicU64; 5],
    errors: AtomicU64,
    count: AtomicU64,
    sum_ns: AtomicU64,
    window: Box<[AtomicU64]>,
    next: AtomicUsize,
    auth: [AtomicU64; 6],
    auth_count: AtomicU64,
    auth_sum_ns: AtomicU64,
    /// Last health check: 0 down, 1 up, 2 never checked.
    up: std::sync::atomic::AtomicU8,
    /// Requests by the name they came through (a new name is added by copy; counting is an
    /// atomic add, no lock on the request path).
    by_host: arc_swap::ArcSwap<rustc_hash::FxHashMap<String, Arc<AtomicU64>>>,
}

impl std::fmt::Debug for ServiceMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceMetrics({} requests)", self.count.load(Ordering::Relaxed))
    }
}

impl ServiceMetrics {
    fn new() -> Self {
        ServiceMetrics {
            classes: Default::default(),
            errors: AtomicU64::new(0),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            window: (0..WINDOW).map(|_| AtomicU64::new(u64::MAX)).collect(),
            next: AtomicUsize::new(0),
            auth: Default::default(),
            auth_count: AtomicU64::new(0),
            auth_sum_ns: AtomicU64::new(0),
            up: std::sync::atomic::AtomicU8::new(2),
            by_host: Default::default(),
        }
    }

    /// A response arrived (tsnsrv measures to the response headers).
    pub fn observe(&self, status: u16, ns: u64) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.classes[class].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        let i = self.next.fetch_add(1, Ordering::Relaxed) % WINDOW;
        self.window[i].store(ns, Ordering::Relaxed);
    }

    /// One request through a name (legacy or new).
    pub fn request(&self, host: &str) {
        if let Some(n) = self.by_host.load().get(host) {
            n.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.by_host.rcu(|old| {
            let mut m = (**old).clone();
            m.entry(host.to_string()).or_insert_with(|| Arc::new(AtomicU64::new(0)));
            m
        });
        if let Some(n) = self.by_host.load().get(host) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The result of a health check.
    pub fn set_up(&self, up: bool) {
        self.up.store(u8::from(up), Ordering::Relaxed);
    }

    /// The upstream failed (502).
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A forward-auth answer (`None`: the auth service could not be reached).
    pub fn auth(&self, status: Option<u16>, ns: u64) {
        let i = status.map_or(5, |s| (s / 100).clamp(1, 5) as usize - 1);
        self.auth[i].fetch_add(1, Ordering::Relaxed);
        self.auth_count.fetch_add(1, Ordering::Relaxed);
        self.auth_sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    fn quantiles(&self) -> [f64; 3] {
        let mut v: Vec<u64> = self
            .window
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .filter(|x| *x != u64::MAX)
            .collect();
        if v.is_empty() {
            return [f64::NAN; 3];
        }
        v.sort_unstable();
        let q = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1] as f64;
        [q(0.5), q(0.9), q(0.99)]
    }
}

/// All counters, by service; the map is replaced whole when routes change.
#[derive(Default)]
pub struct Metrics {
    services: arc_swap::ArcSwap<BTreeMap<String, Arc<ServiceMetrics>>>,
}

impl Metrics {
    /// Forgets the series of services no installed route serves any more (their counters and
    /// health would otherwise stay forever, a false "down" among them).
    pub fn retain(&self, keep: &std::collections::BTreeSet<&str>) {
        self.services.rcu(|old| {
            old.iter()
                .filter(|(k, _)| keep.contains(k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>()
        });
    }

    /// The counters of a service (created on first use, kept across route swaps).
    pub fn service(&self, name: &str) -> Arc<ServiceMetrics> {
        if let Some(m) = self.services.load().get(name) {
            return m.clone();
        }
        let mut created = None;
        self.services.rcu(|old| {
            let mut new = (**old).clone();
            let m = new
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(ServiceMetrics::new()))
                .clone();
            created = Some(m);
            new
        });
        created.expect("rcu ran")
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let services = self.services.load();
        let mut out = String::new();
        let esc = escape_label;
        out.push_str("# HELP tsnsrv_request_duration_ns Time to the upstream's response headers.\n# TYPE tsnsrv_request_duration_ns summary\n");
        for (name, m) in services.iter() {
            let [p50, p90, p99] = m.quantiles();
            for (q, v) in [("0.5", p50), ("0.9", p90), ("0.99", p99)] {
                let _ = writeln!(
                    out,
                    "tsnsrv_request_duration_ns{{service_name=\"{}\",quantile=\"{q}\"}} {v}",
                    esc(name)
                );
            }
            service_sample(
                &mut out,
                "tsnsrv_request_duration_ns_sum",
                name,
                m.sum_ns.load(Ordering::Relaxed),
            );
            service_sample(
                &mut out,
                "tsnsrv_request_duration_ns_count",
                name,
                m.count.load(Ordering::Relaxed),
            );
        }
        out.push_str("# HELP tsnsrv_response_status_classes Responses by status class.\n# TYPE tsnsrv_response_status_classes counter\n");
        for (name, m) in services.iter() {
            for (i, c) in m.classes.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "tsnsrv_response_status_classes{{service_name=\"{}\",status_code_class=\"{}xx\"}} {}",
                    esc(name),
                    i + 1,
                    c.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP tsnsrv_proxy_errors Upstream failures (answered 502).\n# TYPE tsnsrv_proxy_errors counter\n");
        for (name, m) in services.iter() {
            service_sample(&mut out, "tsnsrv_proxy_errors", name, m.errors.load(Ordering::Relaxed));
        }
        out.push_str("# HELP tsnsrv_auth_requests_total Forward-auth requests by outcome.\n# TYPE tsnsrv_auth_requests_total counter\n");
        for (name, m) in services.iter() {
            for (i, label) in ["1xx", "2xx", "3xx", "4xx", "5xx", "error"].iter().enumerate() {
                let _ = writeln!(
                    out,
                    "tsnsrv_auth_requests_total{{service_name=\"{}\",status=\"{label}\"}} {}",
                    esc(name),
                    m.auth[i].load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP tsnsrv_auth_duration_ns Forward-auth request time.\n# TYPE tsnsrv_auth_duration_ns summary\n");
        for (name, m) in services.iter() {
            service_sample(
                &mut out,
                "tsnsrv_auth_duration_ns_sum",
                name,
                m.auth_sum_ns.load(Ordering::Relaxed),
            );
            service_sample(
                &mut out,
                "tsnsrv_auth_duration_ns_count",
                name,
                m.auth_count.load(Ordering::Relaxed),
            );
        }
        out.push_str("# HELP tailshift_upstream_up Whether the last health check reached the upstream.\n# TYPE tailshift_upstream_up gauge\n");
        for (name, m) in services.iter() {
            let up = m.up.load(Ordering::Relaxed);
            if up < 2 {
                service_sample(&mut out, "tailshift_upstream_up", name, up);
            }
        }
        out.push_str("# HELP tailshift_requests_total Requests by service and by the name they came through.\n# TYPE tailshift_requests_total counter\n");
        for (s, m) in services.iter() {
            for (h, n) in m.by_host.load().iter() {
                let _ = writeln!(
                    out,
                    "tailshift_requests_total{{service_name=\"{}\",host=\"{}\"}} {}",
                    esc(s),
                    esc(h),
                    n.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP tailshift_accept_backoffs_total Pauses in accepting connections because file descriptors ran out.\n# TYPE tailshift_accept_backoffs_total counter\n");
        let _ = writeln!(
            out,
            "tailshift_accept_backoffs_total {}",
            ACCEPT_BACKOFFS.load(Ordering::Relaxed)
        );
        out.push_str("# HELP tailshift_connections_cut_total Client connections the proxy closed, by reason: head_timeout (no request head in time, idle keep-alive connections included), body_timeout (a request body gave nothing for body_read_timeout_ms), slow_reader (took less than min_send_rate while bytes waited), evicted_idle (closed idle for a new connection at max_connections, or when descriptors ran out), shed_stalled (closed while keeping the proxy waiting, when descriptors ran out).\n# TYPE tailshift_connections_cut_total counter\n");
        for (reason, n) in super::watchdog::Cut::ALL.iter().map(|c| (c.label(), c.count())) {
            let _ = writeln!(out, "tailshift_connections_cut_total{{reason=\"{reason}\"}} {n}");
        }
        out
    }
}

/// One sample of a series labelled by its service only: `metric{service_name="..."} value`.
fn service_sample(out: &mut String, metric: &str, service: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{metric}{{service_name=\"{}\"}} {value}", escape_label(service));
}

/// A label value as the text exposition format writes it: `\`, `"` and a line feed escaped
/// (`\\`, `\"`, `\n`), so no value can end its label or its line. Validated service
/// ids and route names hold none of them; this keeps the text well-formed whatever a value
/// holds.
fn escape_label(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Times accepting paused because the process (or the system) was out of file descriptors.
pub static ACCEPT_BACKOFFS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_per_the_text_format() {
        assert_eq!(escape_label("box/app"), "box/app");
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        let m = Metrics::default();
        m.service("x\"} 1\ninjected 2\n").error();
        let text = m.render();
        assert!(!text.lines().any(|l| l.starts_with("injected")), "{text}");
    }

    #[test]
    fn quantiles_come_from_recent_durations() {
        let m = Metrics::default();
        let s = m.service("a");
        for ns in 1..=100u64 {
            s.observe(200, ns);
        }
        s.observe(502, 1000);
        s.error();
        let [p50, p90, p99] = s.quantiles();
        assert_eq!((p50, p90), (51.0, 91.0));
        assert!(p99 >= 100.0);
        let text = m.render();
        assert!(text.contains(
            "tsnsrv_response_status_classes{service_name=\"a\",status_code_class=\"2xx\"} 100"
        ));
        assert!(text.contains(
            "tsnsrv_response_status_classes{service_name=\"a\",status_code_class=\"5xx\"} 1"
        ));
        assert!(text.contains("tsnsrv_proxy_errors{service_name=\"a\"} 1"));
        assert!(text.contains("# TYPE tsnsrv_request_duration_ns summary"));
    }
}
