//! The `headscale` backend: the old name as `A`/`AAAA` entries in headscale's
//! `extra_records_path` file (which headscale watches and pushes to every node without a
//! restart), then, once the legacy node stopped, that node removed from headscale so MagicDNS no
//! longer answers its old address first. headscale has no Tailscale Services, no `tailscale cert`
//! and no Funnel: the proxy brings its own certificates (`reference/tailscale.md` section 6).

use crate::records::RecordsFile;
use crate::shim::{Shim, ShimError, ShimService, Verification};
use crate::split_dns::verify_dns;
use std::net::SocketAddr;
use std::process::Command;

/// The `headscale` shim.
#[derive(Clone, Debug)]
pub struct HeadscaleShim {
    /// headscale's `dns.extra_records_path` file.
    pub records: RecordsFile,
    /// How to run headscale's CLI (`["headscale"]`, or e.g. `["ssh", "hs", "headscale"]`).
    pub command: Vec<String>,
    /// A resolver that answers as the tailnet's clients see it (MagicDNS, `100.100.100.100:53`
    /// on a node of the tailnet).
    pub resolver: SocketAddr,
}

/// A node as `headscale nodes list --output json` shows it.
#[derive(Clone, Debug, serde::Deserialize)]
struct Node {
    id: serde_json::Value,
    #[serde(default)]
    name: String,
    #[serde(default)]
    given_name: String,
    #[serde(default)]
    online: bool,
}

impl HeadscaleShim {
    fn run(&self, args: &[&str]) -> Result<String, ShimError> {
        let (prog, pre) = self.command.split_first().ok_or_else(|| ShimError::External {
            what: "headscale".into(),
            message: "no command configured".into(),
        })?;
        let what = format!("{} {}", self.command.join(" "), args.join(" "));
        let out = Command::new(prog)
            .args(pre)
            .args(args)
            .output()
            .map_err(|e| ShimError::External { what: what.clone(), message: e.to_string() })?;
        if !out.status.success() {
            return Err(ShimError::External {
                what,
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// The legacy node of a service: the node whose MagicDNS name is the old name's label.
    fn legacy_node(&self, s: &ShimService) -> Result<Option<Node>, ShimError> {
        let text = self.run(&["nodes", "list", "--output", "json"])?;
        let nodes: Vec<Node> = serde_json::from_str(&text).map_err(|e| ShimError::External {
            what: "headscale nodes list".into(),
            message: format!("unexpected output: {e}"),
        })?;
        let label = s.label();
        Ok(nodes.into_iter().find(|n| {
            let given = if n.given_name.is_empty() { &n.name } else { &n.given_name };
            given.eq_ignore_ascii_case(label)
        }))
    }
}

impl Shim for HeadscaleShim {
    fn kind(&self) -> &'static str {
        "headscale"
    }

    fn describe(&self, s: &ShimService) -> Vec<String> {
        vec![
            format!(
                "add `{}` -> {} to {} (headscale pushes it to every node)",
                s.legacy_name,
                s.proxy_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "),
                self.records.path().display()
            ),
            format!(
                "after the legacy node stopped: delete headscale's node `{}` (it registers again with its auth key on rollback)",
                s.label()
            ),
        ]
    }

    fn prepare(&self, s: &ShimService) -> Result<(), ShimError> {
        self.records.set(&s.legacy_name, &s.proxy_addrs).map(|_| ())
    }

    fn complete(&self, s: &ShimService) -> Result<(), ShimError> {
        let Some(node) = self.legacy_node(s)? else { return Ok(()) };
        if node.online {
            return Err(ShimError::Refused {
                service: s.service.clone(),
                reason: format!(
                    "headscale node `{}` is still online: stop the legacy node before removing it",
                    s.label()
                ),
            });
        }
        let id = match &node.id {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        self.run(&["nodes", "delete", "--identifier", &id, "--force"]).map(|_| ())
    }

    fn verify(&self, s: &ShimService) -> Result<Verification, ShimError> {
        verify_dns(self.resolver, s)
    }

    fn uncomplete(&self, _: &ShimService) -> Result<(), ShimError> {
        // A deleted node cannot be restored; the legacy tsnsrv registers again when it starts
        // (it needs a reusable auth key, which the plan checks).
        Ok(())
    }

    fn unprepare(&self, s: &ShimService) -> Result<(), ShimError> {
        self.records.remove(&s.legacy_name).map(|_| ())
    }
}
