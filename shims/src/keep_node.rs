//! The `keep-node` backend: the last resort, for a service whose old name nothing else can keep
//! (a public Funnel name on hosted Tailscale, say). Its tsnsrv node stays, defined on its own so
//! that disabling the other tsnsrv units leaves it running, with exactly the options it had
//! (same upstream, Funnel, identity: unchanged semantics), while the proxy serves the new name.
//! The savings wait until the old name is no longer used, which its own metrics tell.

use crate::atomic;
use crate::shim::{Shim, ShimError, ShimService, Verification};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;
use tailshift_parsers::Opt;
use tailshift_parsers::options::{OPTIONS, OptKind};
use tailshift_parsers::{Service, Sourced};

/// A Nix string literal.
fn nix_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn nix_value(v: &serde_json::Value, indent: usize) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => nix_str(s),
        Value::Array(a) => {
            format!("[ {} ]", a.iter().map(|x| nix_value(x, indent)).collect::<Vec<_>>().join(" "))
        }
        Value::Object(m) => {
            let pad = " ".repeat(indent + 2);
            let mut out = String::from("{\n");
            for (k, x) in m {
                // A Nix identifier: a letter or `_` first, then letters, digits, `_`, `'`, `-`.
                let ident = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '\'' | '-'));
                let key = if ident { k.clone() } else { nix_str(k) };
                let _ = writeln!(out, "{pad}{key} = {};", nix_value(x, indent + 2));
            }
            out.push_str(&" ".repeat(indent));
            out.push('}');
            out
        }
    }
}

/// The options a snippet must carry: every declared one, known; an unknown one is an error
/// naming it (a guess would change what the node does).
fn declared(svc: &Service) -> Result<BTreeMap<String, serde_json::Value>, ShimError> {
    let mut out = BTreeMap::new();
    let mut unknown = Vec::new();
    for (name, v) in &svc.declared {
        match v {
            Sourced::Known { value, .. } => {
                out.insert(name.to_string(), value.clone());
            }
            Sourced::Unknown { reason, .. } => unknown.push(format!("{name} ({reason})")),
        }
    }
    if !unknown.is_empty() {
        return Err(ShimError::Refused {
            service: svc.name.clone(),
            reason: format!(
                "keep-node must restate every option, and these are unknown: {}",
                unknown.join("; ")
            ),
        });
    }
    Ok(out)
}

/// The service's node as a NixOS snippet of its own, options as declared.
pub fn nix_snippet(svc: &Service, label: &str) -> Result<String, ShimError> {
    let opts = declared(svc)?;
    let mut out = format!(
        "# Written by tailshift (keep-node): the tsnsrv node `{label}` stays, as it was, while\n# the proxy serves the service's new name. Import this file from the host's configuration.\n{{\n  services.tsnsrv.enable = true;\n  services.tsnsrv.services.{} = {{\n",
        nix_str(label)
    );
    for (k, v) in &opts {
        let _ = writeln!(out, "    {k} = {};", nix_value(v, 4));
    }
    out.push_str("  };\n}\n");
    Ok(out)
}

/// The same node as a systemd unit for hosts without NixOS: tsnsrv's command line from the
/// options in effect.
pub fn unit(svc: &Service, label: &str, tsnsrv: &str) -> Result<String, ShimError> {
    let eff = &svc.effective;
    let to = eff.str(Opt::ToUrl).ok_or_else(|| ShimError::Refused {
        service: svc.name.clone(),
        reason: "toURL is unknown".into(),
    })?;
    let mut args = vec![tsnsrv.to_string(), format!("-name={label}")];
    for spec in OPTIONS {
        let Some(flag) = spec.flag else { continue };
        if !eff.is_known(spec.key) {
            continue;
        }
        match spec.kind {
            OptKind::Bool => {
                if let Some(b) = eff.bool(spec.key) {
                    args.push(format!("-{flag}={b}"));
                }
            }
            kind if kind.is_text() => {
                if let Some(s) = eff.str(spec.key).filter(|s| !s.is_empty()) {
                    args.push(format!("-{flag}={s}"));
                }
            }
            OptKind::List => {
                for s in eff.list(spec.key).unwrap_or_default() {
                    args.push(format!("-{flag}={s}"));
                }
            }
            OptKind::Map => {
                for (k, v) in eff.map(spec.key).unwrap_or_default() {
                    args.push(format!("-{flag}={k}: {v}"));
                }
            }
            _ => {}
        }
    }
    args.push(to.to_string());
    let quoted: Vec<String> = args
        .iter()
        .map(|a| {
            if a.chars().any(|c| c.is_whitespace() || c == '"' || c == '\\') {
                nix_str(a)
            } else {
                a.clone()
            }
        })
        .collect();
    Ok(format!(
        "# Written by tailshift (keep-node): tsnsrv node `{label}` kept as it was.\n[Unit]\nDescription=tsnsrv {label} (kept by tailshift)\nAfter=network-online.target\nWants=network-online.target\n\n[Service]\nExecStart={}\nRestart=always\nStateDirectory=tsnsrv-{label}\nEnvironment=TS_STATE_DIR=/var/lib/tsnsrv-{label}\n\n[Install]\nWantedBy=multi-user.target\n",
        quoted.join(" ")
    ))
}

/// Requests the old node served so far, summed from its own metrics (tsnsrv's
/// `tsnsrv_response_status_classes` counters on its `prometheusAddr`).
pub fn usage(metrics_addr: &str) -> Result<u64, ShimError> {
    use std::io::{Read, Write};
    let err = |m: String| ShimError::External {
        what: format!("GET http://{metrics_addr}/metrics"),
        message: m,
    };
    let mut s = std::net::TcpStream::connect(metrics_addr).map_err(|e| err(e.to_string()))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| err(e.to_string()))?;
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {metrics_addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| err(e.to_string()))?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| err(e.to_string()))?;
    if !text.starts_with("HTTP/1.1 200") && !text.starts_with("HTTP/1.0 200") {
        return Err(err(text.lines().next().unwrap_or("no answer").to_string()));
    }
    Ok(text
        .lines()
        .filter(|l| l.starts_with("tsnsrv_response_status_classes"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// The `keep-node` shim.
#[derive(Clone, Debug)]
pub struct KeepNodeShim {
    /// Where the node's own definitions are written (`<dir>/tsnsrv-keep-<label>.nix`, and the
    /// unit form beside it).
    pub dir: PathBuf,
    /// The inventory's services by `host/name` (the node must be restated in full).
    pub services: BTreeMap<String, Service>,
    /// The tsnsrv binary for the unit form.
    pub tsnsrv: String,
    /// The old node's metrics address, for usage and verify (`host:port`).
    pub metrics_addr: Option<String>,
}

impl KeepNodeShim {
    fn paths(&self, label: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("tsnsrv-keep-{label}.nix")),
            self.dir.join(format!("tsnsrv-keep-{label}.service")),
        )
    }

    fn service(&self, s: &ShimService) -> Result<&Service, ShimError> {
        self.services.get(&s.service).ok_or_else(|| ShimError::Refused {
            service: s.service.clone(),
            reason: "not in the inventory given to keep-node".into(),
        })
    }
}

impl Shim for KeepNodeShim {
    fn kind(&self) -> &'static str {
        "keep-node"
    }

    fn describe(&self, s: &ShimService) -> Vec<String> {
        let (nix, unit) = self.paths(s.label());
        vec![
            format!(
                "keep the tsnsrv node `{}` as it is (Funnel and identity unchanged); its definition goes to {} (NixOS) and {} (systemd)",
                s.label(),
                nix.display(),
                unit.display()
            ),
            "nothing is freed until the old name is no longer used; `migrate status` reads that from the node's metrics".into(),
        ]
    }

    fn prepare(&self, s: &ShimService) -> Result<(), ShimError> {
        let svc = self.service(s)?;
        let (nix, unit_path) = self.paths(s.label());
        std::fs::create_dir_all(&self.dir).map_err(|e| ShimError::File {
            path: self.dir.display().to_string(),
            message: e.to_string(),
        })?;
        let snippet = nix_snippet(svc, s.label())?;
        let unit_text = unit(svc, s.label(), &self.tsnsrv)?;
        if atomic::read(&nix)?.as_deref() != Some(snippet.as_str()) {
            atomic::write(&nix, &snippet)?;
        }
        if atomic::read(&unit_path)?.as_deref() != Some(unit_text.as_str()) {
            atomic::write(&unit_path, &unit_text)?;
        }
        Ok(())
    }

    fn complete(&self, _: &ShimService) -> Result<(), ShimError> {
        Ok(())
    }

    fn verify(&self, s: &ShimService) -> Result<Verification, ShimError> {
        // The effect is a running node: its own metrics answer.
        let Some(addr) = &self.metrics_addr else {
            return Ok(Verification::Missing(format!(
                "no metrics address for `{}`: cannot tell whether the node runs",
                s.label()
            )));
        };
        Ok(match usage(addr) {
            Ok(_) => Verification::Holds,
            Err(e) => Verification::Missing(format!("the kept node does not answer: {e}")),
        })
    }

    fn uncomplete(&self, _: &ShimService) -> Result<(), ShimError> {
        Ok(())
    }

    fn unprepare(&self, s: &ShimService) -> Result<(), ShimError> {
        for p in <[PathBuf; 2]>::from(self.paths(s.label())) {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ShimError::File {
                        path: p.display().to_string(),
                        message: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}
