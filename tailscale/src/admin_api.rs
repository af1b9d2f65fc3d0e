//! A client for the Tailscale admin API (`reference/tailscale.md` section 11): devices, Service
//! definitions and host approval. Credentials are read from a file: an API access token
//! (`tskey-api-…`, sent as Bearer) or an OAuth client secret (`tskey-client-…`, exchanged for a
//! one-hour token, refreshed before it expires). Scopes each call needs:
//!
//! | call | scope |
//! |---|---|
//! | list devices | `devices:core:read` |
//! | delete a device | `devices:core` |
//! | read Services | `services:read` |
//! | define or delete a Service | `services` |
//! | approve a host for a Service | `services` and `devices:core` |
//!
//! A 429 is retried after its `Retry-After` (or with exponential backoff); errors carry the
//! API's `message`.

use serde_json::{Value, json};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why an admin API call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminApiError {
    /// The credential file could not be read.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The credential file holds no credential tailshift knows.
    #[error("{path}: {message}; left unchanged")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The API answered with an error, or could not be reached.
    #[error("{what}: {message}")]
    External {
        /// The endpoint.
        what: String,
        /// What it said.
        message: String,
    },
}

/// The hosted control plane's API.
pub const DEFAULT_BASE_URL: &str = "https://api.tailscale.com";
/// How many times a rate-limited call is tried.
const ATTEMPTS: u32 = 5;

/// How the API is authenticated.
#[derive(Clone)]
pub enum Credential {
    /// An API access token.
    Token(String),
    /// An OAuth client (the secret identifies it; the id may be empty).
    OAuth {
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        match self {
            Credential::Token(_) => write!(f, "Credential::Token(…)"),
            Credential::OAuth { client_id, .. } => write!(f, "Credential::OAuth({client_id}, …)"),
        }
    }
}

impl Credential {
    /// Reads a credential file: a `tskey-api-…` token, or a `tskey-client-…` secret (optionally
    /// preceded by `client_id:`).
    pub fn from_file(path: &Path) -> Result<Credential, AdminApiError> {
        let text = std::fs::read_to_string(path).map_err(|e| AdminApiError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let t = text.trim();
        if t.starts_with("tskey-api-") {
            return Ok(Credential::Token(t.to_string()));
        }
        let (id, secret) =
            t.split_once(':').filter(|(_, s)| s.starts_with("tskey-client-")).unwrap_or(("", t));
        if secret.starts_with("tskey-client-") {
            return Ok(Credential::OAuth {
                client_id: id.to_string(),
                client_secret: secret.to_string(),
            });
        }
        Err(AdminApiError::Format {
            path: path.display().to_string(),
            message: "expected an API access token (tskey-api-…) or an OAuth client secret (tskey-client-…)".into(),
        })
    }
}

/// A device as the API lists it (the fields the shims use).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// `nodeId` (or the legacy `id`).
    pub id: String,
    /// The FQDN (`grafana.tail1234.ts.net`).
    pub name: String,
    /// The machine's hostname (`grafana`).
    pub hostname: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Connected to the control plane now.
    pub online: bool,
    /// Shared in from another tailnet.
    pub external: bool,
}

impl Device {
    fn from_json(v: &Value) -> Device {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Device {
            id: if v["nodeId"].is_string() { s("nodeId") } else { s("id") },
            name: s("name").trim_end_matches('.').to_string(),
            hostname: s("hostname"),
            tags: v["tags"]
                .as_array()
                .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
            online: v["connectedToControl"].as_bool().unwrap_or(false),
            external: v["isExternal"].as_bool().unwrap_or(false),
        }
    }

    /// Whether this device carries a name: its hostname, or the first label of its FQDN.
    pub fn is_named(&self, label: &str) -> bool {
        self.hostname.eq_ignore_ascii_case(label)
            || self.name.split('.').next().is_some_and(|l| l.eq_ignore_ascii_case(label))
    }
}

/// The admin API client.
pub struct AdminApi {
    base: String,
    tailnet: String,
    credential: Credential,
    agent: ureq::Agent,
    token: Mutex<Option<(String, Instant)>>,
    services_path: Mutex<Option<&'static str>>,
}

/// One answer: status, JSON body (null when empty), headers of interest.
struct Answer {
    status: u16,
    body: Value,
}

impl AdminApi {
    /// A client for `base` (usually [`DEFAULT_BASE_URL`]) and a tailnet (`-`: the credential's).
    pub fn new(base: &str, tailnet: &str, credential: Credential) -> AdminApi {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        AdminApi {
            base: base.trim_end_matches('/').to_string(),
            tailnet: tailnet.to_string(),
            credential,
            agent,
            token: Mutex::new(None),
            services_path: Mutex::new(None),
        }
    }

    fn bearer(&self) -> Result<String, AdminApiError> {
        let (id, secret) = match &self.credential {
            Credential::Token(t) => return Ok(t.clone()),
            Credential::OAuth { client_id, client_secret } => (client_id, client_secret),
        };
        let mut cached = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((t, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let url = format!("{}/api/v2/oauth/token", self.base);
        let resp = self
            .agent
            .post(&url)
            .send_form([
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
            ])
            .map_err(|e| AdminApiError::External {
                what: format!("POST {url}"),
                message: e.to_string(),
            })?;
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let token = body["access_token"].as_str().filter(|_| status == 200).ok_or_else(|| {
            AdminApiError::External {
                what: format!("POST {url}"),
                message: format!(
                    "{status}: {}",
                    body["message"].as_str().unwrap_or("no access_token")
                ),
            }
        })?;
        // Refreshed a minute before it expires.
        let life = body["expires_in"].as_u64().unwrap_or(3600).saturating_sub(60);
        *cached = Some((token.to_string(), Instant::now() + Duration::from_secs(life)));
        Ok(token.to_string())
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, AdminApiError> {
        let url = format!("{}/api/v2/{path}", self.base);
        let what = format!("{method} {url}");
        let mut backoff = Duration::from_millis(500);
        for attempt in 1..=ATTEMPTS {
            let auth = format!("Bearer {}", self.bearer()?);
            let result = match (method, body) {
                ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
                ("DELETE", _) => self.agent.delete(&url).header("Authorization", &auth).call(),
                ("PUT", Some(b)) => self
                    .agent
                    .put(&url)
                    .header("Authorization", &auth)
                    .header("Content-Type", "application/json")
                    .send(b.to_string()),
                (_, b) => self
                    .agent
                    .post(&url)
                    .header("Authorization", &auth)
                    .header("Content-Type", "application/json")
                    .send(b.map(|b| b.to_string()).unwrap_or_default()),
            };
            let resp = result.map_err(|e| AdminApiError::External {
                what: what.clone(),
                message: e.to_string(),
            })?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = resp.into_body().read_to_string().unwrap_or_default();
            if status == 429 && attempt < ATTEMPTS {
                std::thread::sleep(retry_after.unwrap_or(backoff));
                backoff *= 2;
                continue;
            }
            let body = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            return Ok(Answer { status, body });
        }
        unreachable!("the last attempt returns")
    }

    fn ok(&self, what: &str, a: Answer) -> Result<Value, AdminApiError> {
        if (200..300).contains(&a.status) {
            return Ok(a.body);
        }
        let message =
            a.body["message"].as_str().map(str::to_string).unwrap_or_else(|| a.body.to_string());
        Err(AdminApiError::External {
            what: what.to_string(),
            message: format!("{}: {message}", a.status),
        })
    }

    /// Every device of the tailnet.
    pub fn devices(&self) -> Result<Vec<Device>, AdminApiError> {
        let path = format!("tailnet/{}/devices?fields=all", self.tailnet);
        let body = self.ok("list devices", self.call("GET", &path, None)?)?;
        Ok(body["devices"]
            .as_array()
            .map(|a| a.iter().map(Device::from_json).collect())
            .unwrap_or_default())
    }

    /// Deletes a device.
    pub fn delete_device(&self, id: &str) -> Result<(), AdminApiError> {
        let a = self.call("DELETE", &format!("device/{id}"), None)?;
        if a.status == 404 {
            return Ok(());
        }
        self.ok(&format!("delete device {id}"), a).map(|_| ())
    }

    /// `services` where it exists, else the Go clients' `vip-services` (probed once).
    fn services_base(&self) -> Result<String, AdminApiError> {
        let mut chosen = self.services_path.lock().unwrap_or_else(|p| p.into_inner());
        if chosen.is_none() {
            let a = self.call("GET", &format!("tailnet/{}/services", self.tailnet), None)?;
            *chosen = Some(if a.status == 404 { "vip-services" } else { "services" });
        }
        Ok(format!("tailnet/{}/{}", self.tailnet, chosen.unwrap_or("services")))
    }

    /// A Service definition, `None` when there is none.
    pub fn service(&self, name: &str) -> Result<Option<Value>, AdminApiError> {
        let a = self.call("GET", &format!("{}/{name}", self.services_base()?), None)?;
        if a.status == 404 {
            return Ok(None);
        }
        self.ok(&format!("get {name}"), a).map(Some)
    }

    /// Defines (or replaces) a Service. A 409 means a machine still holds the name.
    pub fn put_service(&self, name: &str, def: &Value) -> Result<Value, AdminApiError> {
        let a = self.call("PUT", &format!("{}/{name}", self.services_base()?), Some(def))?;
        if a.status == 409 {
            return Err(AdminApiError::External {
                what: format!("define {name}"),
                message: format!(
                    "409: the name is still held by a machine ({}); delete that device first",
                    a.body["message"].as_str().unwrap_or("name is in use")
                ),
            });
        }
        self.ok(&format!("define {name}"), a)
    }

    /// Deletes a Service definition (absent is fine).
    pub fn delete_service(&self, name: &str) -> Result<(), AdminApiError> {
        let a = self.call("DELETE", &format!("{}/{name}", self.services_base()?), None)?;
        if a.status == 404 {
            return Ok(());
        }
        self.ok(&format!("delete {name}"), a).map(|_| ())
    }

    /// The hosts of a Service and their approval (`approvalLevel`).
    pub fn service_hosts(&self, name: &str) -> Result<Vec<Value>, AdminApiError> {
        let a = self.call("GET", &format!("{}/{name}/devices", self.services_base()?), None)?;
        let body = self.ok(&format!("hosts of {name}"), a)?;
        Ok(body["hosts"].as_array().cloned().unwrap_or_default())
    }

    /// Approves a host for a Service.
    pub fn approve(&self, name: &str, device: &str) -> Result<(), AdminApiError> {
        let path = format!("{}/{name}/device/{device}/approved", self.services_base()?);
        let a = self.call("POST", &path, Some(&json!({"approved": true})))?;
        self.ok(&format!("approve {device} for {name}"), a).map(|_| ())
    }
}
