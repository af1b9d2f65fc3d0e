//! Identity from tailscaled's LocalAPI (`whois`), cached briefly and bounded by the route's
//! timeout, turned into tsnsrv's `X-Tailscale-*` headers in its formats (`reference/tsnsrv.md`
//! 3.4 step 7): `userid:<hex>`, `nodeid:<hex>`, `", "` joins.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tailshift_tailscale::LocalApi;

/// How long an answer is reused (a peer's identity rarely changes within it).
const CACHE_TTL: Duration = Duration::from_secs(30);

/// tsnsrv's identity headers for one peer.
pub type IdentityHeaders = Vec<(&'static str, String)>;

/// What a whois answer says of a peer: tsnsrv's headers, and what access rules match on.
#[derive(Debug, Default)]
pub struct PeerIdentity {
    /// The `X-Tailscale-*` headers tsnsrv set.
    pub headers: IdentityHeaders,
    /// The source node's tags (`tag:admin`).
    pub tags: Vec<String>,
    /// The user's groups, as the LocalAPI gives them.
    pub groups: Vec<String>,
    /// The user's login (`tagged-devices` for a tagged node).
    pub login: Option<String>,
}

/// A whois answer read for headers and access rules.
pub fn identity_of(w: &Value) -> PeerIdentity {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    PeerIdentity {
        headers: headers_of(w),
        tags: strings(&w["Node"]["Tags"]),
        groups: strings(&w["UserProfile"]["Groups"]),
        login: w["UserProfile"]["LoginName"].as_str().map(str::to_string),
    }
}

/// When an answer was fetched, and the answer (`None`: not a tailnet peer).
type Cached = (Instant, Option<Arc<PeerIdentity>>);

/// Looks peers up through the LocalAPI.
pub struct Whois {
    api: LocalApi,
    cache: Mutex<HashMap<String, Cached>>,
}

fn keys_joined(v: Option<&Value>) -> Option<String> {
    let m = v?.as_object()?;
    if m.is_empty() {
        return None;
    }
    let mut k: Vec<&str> = m.keys().map(String::as_str).collect();
    k.sort_unstable();
    Some(k.join(", "))
}

/// The headers tsnsrv set from a `WhoIsResponse`.
pub fn headers_of(w: &Value) -> IdentityHeaders {
    let mut out = Vec::new();
    let user = &w["UserProfile"];
    let node = &w["Node"];
    if let Some(id) = user["ID"].as_i64() {
        out.push(("x-tailscale-user", format!("userid:{id:x}")));
    }
    let login = user["LoginName"].as_str().unwrap_or_default().to_string();
    if let Some((local, domain)) = login.split_once('@') {
        out.push(("x-tailscale-user-loginname-localpart", local.to_string()));
        out.push(("x-tailscale-user-loginname-domain", domain.to_string()));
    }
    out.push(("x-tailscale-user-loginname", login));
    out.push((
        "x-tailscale-user-displayname",
        user["DisplayName"].as_str().unwrap_or_default().to_string(),
    ));
    if let Some(p) = user["ProfilePicURL"].as_str().filter(|p| !p.is_empty()) {
        out.push(("x-tailscale-user-profilepicurl", p.to_string()));
    }
    if let Some(caps) = keys_joined(w.get("CapMap")) {
        out.push(("x-tailscale-caps", caps));
    }
    if let Some(id) = node["ID"].as_i64() {
        out.push(("x-tailscale-node", format!("nodeid:{id:x}")));
    }
    if let Some(n) = node["ComputedName"].as_str() {
        out.push(("x-tailscale-node-name", n.to_string()));
    }
    if let Some(caps) = keys_joined(node.get("CapMap")) {
        out.push(("x-tailscale-node-caps", caps));
    }
    let tags: Vec<&str> = node["Tags"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_str()).collect())
        .unwrap_or_default();
    if !tags.is_empty() {
        out.push(("x-tailscale-node-tags", tags.join(", ")));
    }
    out
}

impl Whois {
    /// A client for the LocalAPI socket.
    pub fn new(api: LocalApi) -> Self {
        Whois { api, cache: Mutex::new(HashMap::new()) }
    }

    /// The identity of a peer address, `None` when unknown, failed or too slow (the request
    /// then goes on without identity headers, as tsnsrv's did).
    pub async fn lookup(
        &self,
        addr: &str,
        svc_name: Option<&str>,
        timeout: Duration,
    ) -> Option<Arc<PeerIdentity>> {
        let key = match svc_name {
            Some(s) => format!("{addr} {s}"),
            None => addr.to_string(),
        };
        if let Some((at, v)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return v.clone();
        }
        let (api, a, svc) = (self.api.clone(), addr.to_string(), svc_name.map(str::to_string));
        let call = tokio::task::spawn_blocking(move || api.whois(&a, svc.as_deref()));
        let answer = match tokio::time::timeout(timeout.max(Duration::from_millis(1)), call).await {
            Ok(Ok(Ok(Some(v)))) => Some(Arc::new(identity_of(&v))),
            Ok(Ok(Ok(None))) => None,
            Ok(Ok(Err(e))) => {
                eprintln!("WARN could not look up requestor identity error={e}");
                return None;
            }
            _ => {
                eprintln!(
                    "WARN could not look up requestor identity error=timeout after {timeout:?}"
                );
                return None;
            }
        };
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (Instant::now(), answer.clone()));
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_tsnsrv_formats() {
        let w = serde_json::json!({
            "Node": {"ID": 123, "ComputedName": "laptop", "Tags": ["tag:a", "tag:b"], "CapMap": {"x/y": null}},
            "UserProfile": {"ID": 456, "LoginName": "alice@example.com", "DisplayName": "Alice", "ProfilePicURL": ""},
            "CapMap": {"example.com/cap/b": [], "example.com/cap/a": []}
        });
        let h: HashMap<&str, String> = headers_of(&w).into_iter().collect();
        assert_eq!(h["x-tailscale-user"], "userid:1c8");
        assert_eq!(h["x-tailscale-node"], "nodeid:7b");
        assert_eq!(h["x-tailscale-node-name"], "laptop");
        assert_eq!(h["x-tailscale-node-tags"], "tag:a, tag:b");
        assert_eq!(h["x-tailscale-caps"], "example.com/cap/a, example.com/cap/b");
        assert_eq!(h["x-tailscale-user-loginname-domain"], "example.com");
        assert!(!h.contains_key("x-tailscale-user-profilepicurl"));
    }
}
