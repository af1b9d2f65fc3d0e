//! The world a step changes beyond the proxy: the shim of a service's strategy and the legacy
//! adapter (a command, the nix adapter, systemd) that stops, starts or re-points its node.

use super::common::legacy_name;
use crate::apply::config::{ApplyConfig, Legacy};
use std::time::Duration;
use tailshift_parsers::Opt;
use tailshift_plans::Plan;
use tailshift_plans::plan::PlannedService;
use tailshift_plans::steps::Strategy;
use tailshift_shims::hosts::{HostsFile, HostsShim};
use tailshift_shims::records::RecordsFile;
use tailshift_shims::split_dns::SplitDnsShim;
use tailshift_shims::{Shim, ShimService};

pub(super) fn shim_service(s: &PlannedService, cfg: &ApplyConfig) -> ShimService {
    ShimService {
        service: s.id.to_string(),
        legacy_name: legacy_name(s),
        new_names: s.placement.names.iter().skip(1).map(|n| n.name.clone()).collect(),
        proxy_addrs: cfg.proxy_addrs.clone(),
        funnel: s.inventory.effective.bool(Opt::Funnel).unwrap_or(false),
    }
}

pub(super) fn shim_for(
    strategy: Strategy,
    cfg: &ApplyConfig,
    plan: &Plan,
    svc: &PlannedService,
) -> anyhow::Result<Box<dyn Shim>> {
    match strategy {
        Strategy::SplitDns => {
            Ok(Box::new(SplitDnsShim {
                records: RecordsFile::new(cfg.records_file.clone().ok_or_else(|| {
                    anyhow::anyhow!("[apply] records_file is needed for split-dns")
                })?),
                responder: cfg
                    .resolver
                    .ok_or_else(|| anyhow::anyhow!("[apply] resolver is needed for split-dns"))?,
            }))
        }
        Strategy::Hosts => Ok(Box::new(HostsShim {
            file: HostsFile::new(
                cfg.hosts_file
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("[apply] hosts_file is needed for hosts"))?,
            ),
        })),
        Strategy::Headscale => {
            let h = cfg.headscale.clone().unwrap_or(crate::apply::config::HeadscaleConfig {
                command: vec!["headscale".into()],
            });
            Ok(Box::new(tailshift_shims::headscale::HeadscaleShim {
                records: RecordsFile::new(cfg.records_file.clone().ok_or_else(|| {
                    anyhow::anyhow!(
                        "[apply] records_file (headscale's extra_records_path) is needed for headscale"
                    )
                })?),
                command: h.command,
                // MagicDNS as the tailnet's clients ask it.
                resolver: cfg.resolver.unwrap_or_else(|| "100.100.100.100:53".parse().expect("literal")),
            }))
        }
        Strategy::TailscaleServices => {
            let t = cfg.tailscale.clone().ok_or_else(|| {
                anyhow::anyhow!("[apply.tailscale] is needed for tailscale-services")
            })?;
            let cred = tailshift_shims::admin_api::Credential::from_file(&t.credentials_file)?;
            Ok(Box::new(tailshift_shims::services::TailscaleServicesShim {
                api: tailshift_shims::admin_api::AdminApi::new(&t.api_base, &t.tailnet, cred),
                localapi: tailshift_shims::LocalApi::new(&t.localapi_socket),
                services_dir: t.services_dir,
                node_socket: t.node_socket,
                legacy_tags: t.legacy_tags,
                service_tags: t.service_tags,
                auto_approved: t.auto_approved,
            }))
        }
        Strategy::KeepNode => {
            let k = cfg
                .keep_node
                .clone()
                .ok_or_else(|| anyhow::anyhow!("[apply.keep_node] is needed for keep-node"))?;
            let services =
                plan.services.iter().map(|s| (s.id.to_string(), s.inventory.clone())).collect();
            Ok(Box::new(tailshift_shims::keep_node::KeepNodeShim {
                dir: k.dir,
                services,
                tsnsrv: k.tsnsrv,
                // The kept node's own metrics (tsnsrv's prometheusAddr) tell that it runs.
                metrics_addr: svc.inventory.effective.str(Opt::PrometheusAddr).map(str::to_string),
            }))
        }
    }
}

pub(super) fn run_legacy(
    cfg: &ApplyConfig,
    action: &str,
    unit: &str,
    s: &PlannedService,
    wave: usize,
) -> anyhow::Result<()> {
    match &cfg.legacy {
        Legacy::Command { command } => {
            let (prog, args) = command
                .split_first()
                .ok_or_else(|| anyhow::anyhow!("[apply] legacy command is empty"))?;
            let out = crate::apply::signals::run(
                std::process::Command::new(prog)
                    .args(args)
                    .env("TAILSHIFT_ACTION", action)
                    .env("TAILSHIFT_UNIT", unit)
                    .env("TAILSHIFT_SERVICE", s.id.as_str())
                    .env("TAILSHIFT_WAVE", wave.to_string()),
                Duration::from_secs(cfg.adapter_timeout_s),
            )?;
            if !out.status.success() {
                anyhow::bail!(
                    "{prog} {action} {unit}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(())
        }
        Legacy::Nix { .. } | Legacy::Systemd if action == "finalize" => {
            remove_node_state(&cfg.legacy_state_root, unit, s.id.name())
        }
        Legacy::Nix { switch, .. } => {
            use crate::apply::nix_adapter::Change;
            let change = match action {
                "stop" => Change::Stop(unit.to_string()),
                "start" => Change::Start(unit.to_string()),
                "repoint" => {
                    Change::Repoint { service: s.id.name().to_string(), to_url: kept_to_url(s)? }
                }
                "restore" => Change::Restore(s.id.name().to_string()),
                other => anyhow::bail!("the nix adapter cannot {other}"),
            };
            crate::apply::nix_adapter::act(
                &cfg.legacy.nix_files().expect("the nix adapter"),
                switch,
                &change,
                Duration::from_secs(cfg.adapter_timeout_s),
            )
        }
        Legacy::Systemd => {
            if action == "stop" {
                eprintln!(
                    "warning: {unit} is stopped and masked with --runtime: a reboot starts it again; make it permanent in the host's configuration"
                );
            }
            let steps: Vec<Vec<&str>> = match action {
                "stop" => vec![vec!["stop", unit], vec!["mask", "--runtime", unit]],
                "start" => vec![vec!["unmask", "--runtime", unit], vec!["start", unit]],
                other => anyhow::bail!("the systemd adapter cannot {other}"),
            };
            for a in steps {
                let out = crate::apply::signals::run(
                    std::process::Command::new("systemctl").args(&a),
                    Duration::from_secs(cfg.adapter_timeout_s),
                )?;
                if !out.status.success() {
                    anyhow::bail!(
                        "systemctl {}: {}",
                        a.join(" "),
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
            }
            Ok(())
        }
    }
}

/// What only a rollback needed: the moved service's node state (its identity on the tailnet),
/// and nothing else. A per-service unit runs with `DynamicUser`, so its state is
/// `<root>/private/tsnsrv-<name>` and `<root>/tsnsrv-<name>` only a symlink to it; the fork's
/// one process keeps each node under `<root>/tsnsrv-all/<name>`, and its directory stays.
fn remove_node_state(root: &std::path::Path, unit: &str, service: &str) -> anyhow::Result<()> {
    let node = unit.trim_end_matches(".service");
    let targets = if node == "tsnsrv-all" {
        vec![root.join("tsnsrv-all").join(service)]
    } else {
        vec![root.join("private").join(node), root.join(node)]
    };
    for t in targets {
        let Ok(meta) = std::fs::symlink_metadata(&t) else { continue };
        let r = if meta.is_dir() { std::fs::remove_dir_all(&t) } else { std::fs::remove_file(&t) };
        r.map_err(|e| anyhow::anyhow!("{}: {e}", t.display()))?;
    }
    Ok(())
}

/// The `toURL` a keep-node service's legacy node keeps serving with: straight at its upstream,
/// as it was (design section 3: unchanged semantics).
fn kept_to_url(s: &PlannedService) -> anyhow::Result<String> {
    s.inventory.effective.str(Opt::ToUrl).map(str::to_string).ok_or_else(|| {
        anyhow::anyhow!("{}: its toURL is unknown, so its node cannot be re-pointed", s.id)
    })
}
