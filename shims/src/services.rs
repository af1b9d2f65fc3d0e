//! The `tailscale-services` backend (hosted Tailscale): the old name becomes a Tailscale
//! Service, `svc:<label>`, hosted by this node and forwarded by tailscaled to the proxy's
//! socket for that Service (design section 1A). Order (design section 3): after the legacy node
//! stopped, delete its device (only the tsnsrv node of that name: matched by name and tags, and
//! only once offline), define the Service (keeping the addresses it was given), approve this
//! host unless the policy's `autoApprovers` does, advertise it (prefs) and point serve at the
//! socket (serve-config with `If-Match`, retried on 412). Setting a `unix:` target needs root
//! or tailscaled's operator. Funnel is not allowed on Services: a public service is refused.
//! `uncomplete` undoes it in reverse and frees the name, so the old node can register it again.

use crate::admin_api::AdminApi;
use crate::localapi::LocalApi;
use crate::shim::{Shim, ShimError, ShimService, Verification};
use serde_json::{Value, json};
use std::path::PathBuf;

/// How many times a serve-config update is retried after a 412.
const SERVE_ATTEMPTS: u32 = 5;

/// The `tailscale-services` shim.
pub struct TailscaleServicesShim {
    /// The admin API.
    pub api: AdminApi,
    /// This host's tailscaled.
    pub localapi: LocalApi,
    /// The proxy's per-Service sockets (`<dir>/<label>.sock`, the proxy's `services` listener).
    pub services_dir: PathBuf,
    /// The proxy's socket for the node's own name (`trusted` listener).
    pub node_socket: PathBuf,
    /// Tags every tsnsrv node carries (a device named like the service without them is not
    /// its node and is never deleted).
    pub legacy_tags: Vec<String>,
    /// Tags put on the Service definitions.
    pub service_tags: Vec<String>,
    /// The policy's `autoApprovers.services` approves this host.
    pub auto_approved: bool,
}

/// This node, from the LocalAPI `status`.
struct SelfNode {
    id: String,
    suffix: String,
    tags: Vec<String>,
}

impl TailscaleServicesShim {
    fn svc_name(s: &ShimService) -> String {
        format!("svc:{}", s.label())
    }

    fn self_node(&self) -> Result<SelfNode, ShimError> {
        let st = self.localapi.get_json("status?peers=false")?;
        let me = &st["Self"];
        Ok(SelfNode {
            id: me["ID"].as_str().unwrap_or_default().to_string(),
            suffix: st
                .pointer("/CurrentTailnet/MagicDNSSuffix")
                .or_else(|| st.get("MagicDNSSuffix"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim_end_matches('.')
                .to_string(),
            tags: me["Tags"]
                .as_array()
                .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
        })
    }

    fn socket(&self, s: &ShimService) -> String {
        format!("unix:{}", self.services_dir.join(format!("{}.sock", s.label())).display())
    }

    /// Changes tailscaled's serve config with `If-Match`, re-reading and retrying on a 412.
    fn edit_serve(&self, edit: impl Fn(&mut Value)) -> Result<(), ShimError> {
        for _ in 0..SERVE_ATTEMPTS {
            let r = self.localapi.request("GET", "serve-config", &[], None)?;
            if r.status != 200 {
                return Err(ShimError::External {
                    what: "LocalAPI GET serve-config".into(),
                    message: format!("{}: {}", r.status, String::from_utf8_lossy(&r.body).trim()),
                });
            }
            let etag = r.header("etag").unwrap_or_default().to_string();
            let mut cfg: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            if !cfg.is_object() {
                cfg = json!({});
            }
            let before = cfg.clone();
            edit(&mut cfg);
            if cfg == before {
                return Ok(());
            }
            let body = cfg.to_string();
            let w = self.localapi.request(
                "POST",
                "serve-config",
                &[("If-Match", &etag), ("Content-Type", "application/json")],
                Some(body.as_bytes()),
            )?;
            match w.status {
                200..=299 => return Ok(()),
                412 => continue,
                s => {
                    return Err(ShimError::External {
                        what: "LocalAPI POST serve-config".into(),
                        message: format!("{s}: {}", String::from_utf8_lossy(&w.body).trim()),
                    });
                }
            }
        }
        Err(ShimError::External {
            what: "LocalAPI POST serve-config".into(),
            message: format!("still conflicting (412) after {SERVE_ATTEMPTS} attempts"),
        })
    }

    /// Adds or removes a Service in `AdvertiseServices` (the list replaces the old one, so it
    /// starts from the current prefs).
    fn advertise(&self, name: &str, on: bool) -> Result<(), ShimError> {
        let prefs = self.localapi.get_json("prefs")?;
        let mut list: Vec<String> = prefs["AdvertiseServices"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let has = list.iter().any(|x| x == name);
        if has == on {
            return Ok(());
        }
        if on {
            list.push(name.to_string());
        } else {
            list.retain(|x| x != name);
        }
        let body = json!({"AdvertiseServicesSet": true, "AdvertiseServices": list}).to_string();
        let r = self.localapi.request(
            "PATCH",
            "prefs",
            &[("Content-Type", "application/json")],
            Some(body.as_bytes()),
        )?;
        if !(200..300).contains(&r.status) {
            return Err(ShimError::External {
                what: "LocalAPI PATCH prefs".into(),
                message: format!("{}: {}", r.status, String::from_utf8_lossy(&r.body).trim()),
            });
        }
        Ok(())
    }

    /// Writes the node's own serve entry (`/` -> the node socket, Funnel allowed when asked):
    /// needed once a public service is mounted under the node's name.
    pub fn ensure_node_entry(&self, node_fqdn: &str, allow_funnel: bool) -> Result<(), ShimError> {
        let key = format!("{}:443", node_fqdn.trim_end_matches('.'));
        let target = format!("unix:{}", self.node_socket.display());
        self.edit_serve(|cfg| {
            cfg["TCP"]["443"] = json!({"HTTPS": true});
            cfg["Web"][key.as_str()] = json!({"Handlers": {"/": {"Proxy": target}}});
            if allow_funnel {
                cfg["AllowFunnel"][key.as_str()] = json!(true);
            }
        })
    }

    /// The tsnsrv device of a service: named like it, carrying the legacy tags, not external.
    /// A device of that name without the tags is refused, never touched.
    fn legacy_device(
        &self,
        s: &ShimService,
    ) -> Result<Option<crate::admin_api::Device>, ShimError> {
        let label = s.label();
        let named: Vec<_> =
            self.api.devices()?.into_iter().filter(|d| !d.external && d.is_named(label)).collect();
        let mut found = None;
        for d in named {
            if !self.legacy_tags.iter().all(|t| d.tags.contains(t)) {
                return Err(ShimError::Refused {
                    service: s.service.clone(),
                    reason: format!(
                        "device `{}` ({}) holds the name but lacks the tsnsrv tags {:?}; it is not this service's node, so it is left alone",
                        d.name, d.id, self.legacy_tags
                    ),
                });
            }
            found = Some(d);
        }
        Ok(found)
    }
}

/// The oldest tailscaled whose Services tailshift relies on: before 1.102, tailscaled forwarded
/// ports a Service does not serve to the host's loopback (`reference/tailscale.md` section 12).
pub const MIN_TAILSCALED: (u32, u32) = (1, 102);

/// `major.minor` of a tailscaled version string (`1.102.0-t0123abcd-g4567ef`).
pub fn version_of(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim().split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

impl Shim for TailscaleServicesShim {
    fn kind(&self) -> &'static str {
        "tailscale-services"
    }

    fn preflight(&self) -> Result<(), ShimError> {
        let status = self.localapi.get_json("status?peers=false")?;
        let version = status["Version"].as_str().unwrap_or_default();
        match version_of(version) {
            Some(v) if v >= MIN_TAILSCALED => Ok(()),
            _ => Err(ShimError::Refused {
                service: "tailscale-services".into(),
                reason: format!(
                    "tailscaled on the proxy's host is {}; Tailscale Services need {}.{} or later (older ones forward ports a Service does not serve to this host's loopback): upgrade tailscaled first",
                    if version.is_empty() { "of an unknown version" } else { version },
                    MIN_TAILSCALED.0,
                    MIN_TAILSCALED.1
                ),
            }),
        }
    }

    fn describe(&self, s: &ShimService) -> Vec<String> {
        let svc = Self::svc_name(s);
        let mut v = vec![
            format!(
                "after the legacy node stopped: delete its device `{}` (tags {:?}, offline only)",
                s.label(),
                self.legacy_tags
            ),
            format!(
                "define {svc} (ports tcp:443, tags {:?}) and advertise it from this host",
                self.service_tags
            ),
            format!("serve {svc} on 443 -> {}", self.socket(s)),
        ];
        if !self.auto_approved {
            v.push(format!("approve this host for {svc} (the policy's autoApprovers does not)"));
        }
        v.push(format!("`{}` is dark from the stop until {svc} is live (seconds)", s.legacy_name));
        v
    }

    fn prepare(&self, s: &ShimService) -> Result<(), ShimError> {
        if s.funnel {
            return Err(ShimError::Refused {
                service: s.service.clone(),
                reason: "Funnel is not allowed on Tailscale Services; keep its node (keep-node) or mount it under the node's name".into(),
            });
        }
        Ok(())
    }

    fn complete(&self, s: &ShimService) -> Result<(), ShimError> {
        self.prepare(s)?;
        let svc = Self::svc_name(s);
        let me = self.self_node()?;
        if me.tags.is_empty() {
            return Err(ShimError::Refused {
                service: s.service.clone(),
                reason: "this host is not tagged; Service hosts must be tagged nodes (tailscale up --advertise-tags=...)".into(),
            });
        }
        // 1. The old device goes, once it is offline.
        if let Some(d) = self.legacy_device(s)? {
            if d.online {
                return Err(ShimError::Refused {
                    service: s.service.clone(),
                    reason: format!(
                        "device `{}` is still online: stop the legacy node first",
                        d.name
                    ),
                });
            }
            self.api.delete_device(&d.id)?;
        }
        // 2. The definition, keeping the addresses it was given.
        let mut def = json!({
            "name": svc,
            "comment": format!("{} (moved from tsnsrv by tailshift)", s.service),
            "ports": ["tcp:443"],
            "tags": self.service_tags,
            "annotations": {"managed-by": "tailshift"},
        });
        if let Some(existing) = self.api.service(&svc)?
            && let Some(addrs) =
                existing.get("addrs").filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
        {
            def["addrs"] = addrs.clone();
        }
        self.api.put_service(&svc, &def)?;
        // 3. Approval.
        if !self.auto_approved {
            self.api.approve(&svc, &me.id)?;
        }
        // 4. Advertise, then serve.
        self.advertise(&svc, true)?;
        let host = format!("{}.{}:443", s.label(), me.suffix);
        let target = self.socket(s);
        self.edit_serve(|cfg| {
            cfg["Services"][svc.as_str()] = json!({
                "TCP": {"443": {"HTTPS": true}},
                "Web": {host.as_str(): {"Handlers": {"/": {"Proxy": target}}}}
            });
        })
    }

    fn verify(&self, s: &ShimService) -> Result<Verification, ShimError> {
        let svc = Self::svc_name(s);
        let me = self.self_node()?;
        if self.api.service(&svc)?.is_none() {
            return Ok(Verification::Missing(format!("{svc} is not defined on the control plane")));
        }
        let hosts = self.api.service_hosts(&svc)?;
        let approved = hosts.iter().any(|h| {
            h["stableNodeID"].as_str() == Some(me.id.as_str())
                && h["approvalLevel"].as_str().is_some_and(|l| l.starts_with("approved"))
        });
        if !approved {
            return Ok(Verification::Missing(format!(
                "this host is not an approved host of {svc}"
            )));
        }
        if let Some(d) = self.api.devices()?.iter().find(|d| !d.external && d.is_named(s.label())) {
            return Ok(Verification::Missing(format!("device `{}` still holds the name", d.name)));
        }
        let prefs = self.localapi.get_json("prefs")?;
        if !prefs["AdvertiseServices"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(svc.as_str())))
        {
            return Ok(Verification::Missing(format!("tailscaled does not advertise {svc}")));
        }
        let cfg = self.localapi.get_json("serve-config")?;
        let host = format!("{}.{}:443", s.label(), me.suffix);
        let proxy =
            cfg["Services"][svc.as_str()]["Web"][host.as_str()]["Handlers"]["/"]["Proxy"].as_str();
        if proxy != Some(self.socket(s).as_str()) {
            return Ok(Verification::Missing(format!(
                "tailscaled does not serve {svc} to {} (it has {proxy:?})",
                self.socket(s)
            )));
        }
        Ok(Verification::Holds)
    }

    fn uncomplete(&self, s: &ShimService) -> Result<(), ShimError> {
        let svc = Self::svc_name(s);
        self.edit_serve(|cfg| {
            if let Some(m) = cfg.get_mut("Services").and_then(Value::as_object_mut) {
                m.remove(&svc);
            }
        })?;
        self.advertise(&svc, false)?;
        // Deleting the definition frees the name for the old node (approval goes with it).
        Ok(self.api.delete_service(&svc)?)
    }

    fn unprepare(&self, _: &ShimService) -> Result<(), ShimError> {
        Ok(())
    }

    fn verify_restored(&self, s: &ShimService) -> Result<Verification, ShimError> {
        let label = s.label();
        let devices = self.api.devices()?;
        let own =
            devices.iter().any(|d| d.hostname == label || d.name.split('.').next() == Some(label));
        let suffixed: Vec<&str> = devices
            .iter()
            .map(|d| d.name.split('.').next().unwrap_or(&d.hostname))
            .filter(|n| {
                n.strip_prefix(label)
                    .and_then(|r| r.strip_prefix('-'))
                    .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        if own && suffixed.is_empty() {
            return Ok(Verification::Holds);
        }
        Ok(Verification::Missing(format!(
            "the legacy node of {} {}; to reclaim the name: delete the Service svc:{label} if it is still defined, remove the stale device named {label} in the admin console (or `tailscale` API), clear /var/lib/private/tsnsrv-{label} only if the node must log in again, then restart its unit",
            s.service,
            if suffixed.is_empty() {
                format!("is not registered as {label}")
            } else {
                format!("came back as {} while {label} is held", suffixed.join(", "))
            }
        )))
    }
}
