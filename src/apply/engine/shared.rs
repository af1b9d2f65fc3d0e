//! The fork's one `tsnsrv-all` process, which serves every legacy service of its host. Moving a
//! subset never stops it for the others: the process is given the YAML of the services that
//! remain (written from their effective options in the plan, so each keeps its options and its
//! state directory: a node whose state moves comes back as `name-1`) and restarted once per
//! wave; rollback gives it back what returns. The `systemd` adapter installs that YAML with a
//! drop-in, the `nix` adapter puts it in the moves file. After the restart, every legacy name
//! the process still serves must answer again.

use super::common::{Request, SHARED_UNIT, legacy_name, legacy_unit, show};
use crate::apply::config::{ApplyConfig, Legacy};
use crate::apply::nix_adapter::{Change, SharedProcess};
use crate::apply::state::State;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tailshift_checks::Outcome;
use tailshift_plans::plan::PlannedService;
use tailshift_plans::steps::Strategy;
use tailshift_plans::{Plan, ServiceId};

/// Whether this service's legacy node is the shared process, driven by an adapter that knows
/// the process's service list (the `command` adapter is called per service instead).
pub(super) fn applies(req: &Request, s: &PlannedService) -> bool {
    !matches!(req.cfg.legacy, Legacy::Command { .. })
        && legacy_unit(req.plan, req.wave, s) == SHARED_UNIT
}

/// The host's services the process runs by its own configuration (every fork `tsnsrv-all`
/// service of the inventory, planned or not).
fn members<'a>(plan: &'a Plan, host: &str) -> Vec<&'a PlannedService> {
    plan.services
        .iter()
        .filter(|s| s.inventory.host.known().is_some_and(|h| h == host))
        .filter(|s| s.inventory.flavour == tailshift_parsers::Flavour::ForkAll)
        .collect()
}

/// What the process must run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// Every one of its services: its own configuration.
    Own,
    /// These services, from this YAML.
    Rest(SharedProcess),
    /// None is left: the unit stops.
    Nothing,
}

/// The services the process keeps after a change: its members, less those moved off it (a
/// service in the state, or `leaving`), plus `returning`. A keep-node service's node stays in it.
pub(super) fn remaining<'a>(
    req: &Request<'a>,
    state: &State,
    leaving: &[&str],
    returning: &[&str],
) -> Vec<&'a PlannedService> {
    members(req.plan, &req.host)
        .into_iter()
        .filter(|s| {
            let id = s.id.as_str();
            let moved = (state.services.contains_key(id) || leaving.contains(&id))
                && s.strategy != Strategy::KeepNode;
            !moved || returning.contains(&id)
        })
        .collect()
}

/// The process's target for the services that remain.
pub(super) fn target(req: &Request, rest: &[&PlannedService]) -> anyhow::Result<Target> {
    let all = members(req.plan, &req.host);
    if rest.len() == all.len() {
        return Ok(Target::Own);
    }
    if rest.is_empty() {
        return Ok(Target::Nothing);
    }
    // What the YAML installed now says (written from the inputs by an earlier wave), else the
    // inputs: a rollback must not depend on inputs that changed since.
    let prometheus = match installed_prometheus_addr(req.cfg) {
        Some(p) => p,
        None => host_prometheus_addr(req.plan, &req.host)?,
    };
    let entries: Vec<(&str, &tailshift_parsers::Options)> =
        rest.iter().map(|s| (s.id.name(), &s.inventory.effective)).collect();
    let config_yaml = tailshift_parsers::tsnsrv_yaml::write_yaml(prometheus.as_deref(), &entries)
        .map_err(|e| {
        anyhow::anyhow!(
            "{SHARED_UNIT} on {}: cannot write the YAML of the services that remain: {e}",
            req.host
        )
    })?;
    let mut services: Vec<String> = rest.iter().map(|s| s.id.name().to_string()).collect();
    services.sort();
    Ok(Target::Rest(SharedProcess { config_yaml, services }))
}

/// The process-level `prometheusAddr` of the host, read from the plan's inputs (the plan holds
/// services, not hosts); without it the YAML would move the metrics to `:9099` in silence.
fn host_prometheus_addr(plan: &Plan, host: &str) -> anyhow::Result<Option<String>> {
    let paths: Vec<PathBuf> = plan.inputs.iter().map(PathBuf::from).collect();
    let inv = tailshift_parsers::load(
        &paths,
        &crate::cli::commands::plan::replay_options(&plan.input_options),
    )
    .map_err(|e| {
        anyhow::anyhow!("re-reading the plan's inputs for {host}'s prometheusAddr: {e}")
    })?;
    let Some(h) = inv.hosts.iter().find(|h| h.name.known().is_some_and(|n| n == host)) else {
        return Ok(None);
    };
    match &h.prometheus_addr {
        None => Ok(None),
        Some(tailshift_parsers::Sourced::Known { value, .. }) => {
            Ok(value.as_str().filter(|s| !s.is_empty()).map(str::to_string))
        }
        Some(tailshift_parsers::Sourced::Unknown { reason, .. }) => {
            anyhow::bail!("{host}'s tsnsrv prometheusAddr is unknown ({reason})")
        }
    }
}

/// The `prometheusAddr` of the YAML the process runs now, when tailshift installed one
/// (`Some(None)`: it has none, the default).
fn installed_prometheus_addr(cfg: &ApplyConfig) -> Option<Option<String>> {
    let yaml = match &cfg.legacy {
        Legacy::Systemd => std::fs::read_to_string(yaml_path(cfg)).ok()?,
        Legacy::Nix { .. } => {
            let files = cfg.legacy.nix_files()?;
            let moves = crate::apply::nix_adapter::read_moves(&files.data, None).ok()?;
            moves
                .shared_processes
                .get(SHARED_UNIT.trim_end_matches(".service"))?
                .config_yaml
                .clone()
        }
        Legacy::Command { .. } => return None,
    };
    if yaml.is_empty() {
        return None;
    }
    tailshift_parsers::tsnsrv_yaml::prometheus_addr_of(&yaml).ok()
}

/// Makes the process run `target` through the configured adapter; restarts it only when what
/// it runs changes (or a crash came between the change and the restart).
pub(super) fn install(cfg: &ApplyConfig, target: &Target) -> anyhow::Result<()> {
    match &cfg.legacy {
        Legacy::Nix { switch, .. } => crate::apply::nix_adapter::act(
            &cfg.legacy.nix_files().expect("the nix adapter"),
            switch,
            &Change::Shared {
                unit: SHARED_UNIT.into(),
                process: match target {
                    Target::Own => None,
                    Target::Rest(p) => Some(p.clone()),
                    Target::Nothing => Some(SharedProcess::default()),
                },
            },
            Duration::from_secs(cfg.adapter_timeout_s),
        ),
        Legacy::Systemd => systemd(cfg, target),
        Legacy::Command { .. } => unreachable!("the command adapter is called per service"),
    }
}

/// The systemd drop-in that points the unit at the YAML of what remains.
fn drop_in(cfg: &ApplyConfig) -> PathBuf {
    cfg.systemd_dir.join(format!("{SHARED_UNIT}.d")).join("50-tailshift.conf")
}

fn yaml_path(cfg: &ApplyConfig) -> PathBuf {
    cfg.state_dir().join("shared").join("tsnsrv-all.yaml")
}

fn systemctl(cfg: &ApplyConfig, args: &[&str]) -> anyhow::Result<()> {
    let out = crate::apply::signals::run(
        std::process::Command::new("systemctl").args(args),
        Duration::from_secs(cfg.adapter_timeout_s),
    )?;
    if !out.status.success() {
        anyhow::bail!(
            "systemctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn systemd(cfg: &ApplyConfig, target: &Target) -> anyhow::Result<()> {
    let (dropin, yaml) = (drop_in(cfg), yaml_path(cfg));
    // What the unit runs once restarted, recorded after the restart succeeded: a crash between
    // the files and the restart is seen, and the restart made, by the step's next run.
    let restarted = cfg.state_dir().join("shared").join("tsnsrv-all.restarted");
    let want = match target {
        Target::Own => "own".to_string(),
        Target::Nothing => "stopped".to_string(),
        Target::Rest(p) => format!("{:x}", fingerprint(&p.config_yaml)),
    };
    let write = |path: &std::path::Path,
                 text: &str,
                 mode: tailshift_util::FileMode|
     -> anyhow::Result<()> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?;
        }
        if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
            tailshift_util::write_atomic(path, text.as_bytes(), mode)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        Ok(())
    };
    let remove = |path: &std::path::Path| match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    };
    match target {
        Target::Rest(p) => {
            // The YAML can carry upstream header values and key paths: root only, handed to the
            // unit as a credential.
            write(&yaml, &p.config_yaml, tailshift_util::FileMode::Private)?;
            write(
                &dropin,
                &format!(
                    "# Written by tailshift: {SHARED_UNIT} runs the services that remain in it ({}).\n# `migrate rollback` rewrites or removes this file.\n[Service]\nLoadCredential=tailshift-config:{}\nExecStart=\nExecStart={} -config=%d/tailshift-config\n",
                    p.services.join(", "),
                    yaml.display(),
                    cfg.tsnsrv
                ),
                tailshift_util::FileMode::KeepOr(0o644),
            )?;
        }
        Target::Own | Target::Nothing => {
            remove(&dropin)?;
            remove(&yaml)?;
        }
    }
    if std::fs::read_to_string(&restarted).ok().as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    systemctl(cfg, &["daemon-reload"])?;
    match target {
        Target::Nothing => {
            eprintln!(
                "warning: {SHARED_UNIT} is stopped and masked with --runtime: a reboot starts it again; make it permanent in the host's configuration"
            );
            systemctl(cfg, &["stop", SHARED_UNIT])?;
            systemctl(cfg, &["mask", "--runtime", SHARED_UNIT])?;
        }
        Target::Own | Target::Rest(_) => {
            if matches!(target, Target::Rest(_)) {
                eprintln!(
                    "warning: {} points {SHARED_UNIT} at the services that remain; it lives under {} (a reboot of a runtime directory undoes it): make it permanent in the host's configuration",
                    dropin.display(),
                    cfg.systemd_dir.display()
                );
            }
            systemctl(cfg, &["unmask", "--runtime", SHARED_UNIT])?;
            systemctl(cfg, &["restart", SHARED_UNIT])?;
        }
    }
    write(&restarted, &want, tailshift_util::FileMode::Private)
}

fn fingerprint(text: &str) -> u64 {
    // A stable fingerprint of the file (FNV-1a): what the unit was restarted with.
    text.bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// After the restart: every legacy name the process still serves (but those in `skip`, whose
/// names lead elsewhere for now) answers again from its node, with the status class it had
/// (`baseline`) or any answer. The process takes its time to bring its nodes up (57 nodes took
/// 2-3 minutes): each name is asked until it answers or `adapter_timeout_s` has passed.
pub(super) fn check_after_restart(
    req: &Request,
    rest: &[&PlannedService],
    skip: &[&str],
    baseline: &BTreeMap<ServiceId, Outcome>,
) -> anyhow::Result<()> {
    let cfg = req.cfg;
    let deadline = Instant::now() + Duration::from_secs(cfg.adapter_timeout_s);
    let mut bad = Vec::new();
    for s in rest.iter().filter(|s| !skip.contains(&s.id.as_str())) {
        let name = legacy_name(s);
        let want = baseline.get(&s.id).and_then(Outcome::class);
        // Asked as its baseline was: a service of this wave (kept on its node) by its check's
        // path and credentials, the others at `/`.
        let path = super::common::steps_of(req.plan, req.wave, s).iter().find_map(|st| match st {
            tailshift_plans::steps::Step::Verify { path, .. } => Some(path.clone()),
            _ => None,
        });
        let creds = match &path {
            Some(_) => super::common::credentials(req.plan, s)?,
            None => Vec::new(),
        };
        let path = path.unwrap_or_else(|| "/".into());
        loop {
            let now = req.world.check(&cfg.check, &name, &path, &creds);
            let ok = match &now {
                Outcome::Status { addr, .. } if cfg.proxy_addrs.contains(addr) => false,
                Outcome::Status { .. } => want.is_none() || now.class() == want,
                Outcome::Error(_) => false,
            };
            if ok {
                break;
            }
            if Instant::now() >= deadline {
                bad.push(format!("{name}: {}", show(&now)));
                break;
            }
            req.world.sleep(Duration::from_millis(200));
        }
    }
    if !bad.is_empty() {
        anyhow::bail!(
            "after {SHARED_UNIT} restarted, {} it still serves {} not answer as before: {}",
            tailshift_util::plural(bad.len(), "legacy name"),
            if bad.len() == 1 { "does" } else { "do" },
            bad.join("; ")
        );
    }
    Ok(())
}

/// This wave's services on this host that leave the process (keep-node ones stay in it).
fn leaving<'a>(req: &Request<'a>) -> Vec<&'a str> {
    super::common::wave_services(req.plan, req.wave, &req.host)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| applies(req, s) && s.strategy != Strategy::KeepNode)
        .map(|s| s.id.as_str())
        .collect()
}

/// Apply's stop of a shared node: the process loses every service of the wave at once (the
/// first one's step restarts it; the others find it done), then every name it still serves
/// must answer as before.
pub(super) fn stop(
    req: &Request,
    state: &State,
    baseline: &BTreeMap<ServiceId, Outcome>,
) -> anyhow::Result<()> {
    let rest = remaining(req, state, &leaving(req), &[]);
    install(req.cfg, &target(req, &rest)?)?;
    check_after_restart(req, &rest, &[], baseline)
}

/// Rollback's start of a shared node: the wave's services return to the process at once, then
/// every name it serves that does not lead to the proxy any more answers from its node.
pub(super) fn start(req: &Request, state: &State) -> anyhow::Result<()> {
    let back = leaving(req);
    let rest = remaining(req, state, &[], &back);
    install(req.cfg, &target(req, &rest)?)?;
    check_after_restart(req, &rest, &back, &BTreeMap::new())
}

/// What pre-flight needs to know: whether the YAML of what remains after this wave can be
/// written (every option of every remaining service known and expressible).
pub(super) fn preflight(req: &Request, state: &State) -> Option<String> {
    let wave = leaving(req);
    if wave.is_empty() {
        return None;
    }
    let rest = remaining(req, state, &wave, &[]);
    target(req, &rest).err().map(|e| {
        format!("{e:#}; the adapter cannot take a subset out of the fork's one process safely")
    })
}

/// Where a wave's steps split when it takes services out of the shared process: every
/// service's steps before its stop run first (routes, shims), so that the one restart takes
/// them all out with nothing of theirs left to prepare. `None`: service by service.
pub(super) fn split_at(req: &Request, s: &PlannedService) -> Option<usize> {
    let wave = super::common::wave_services(req.plan, req.wave, &req.host).ok()?;
    if !wave.iter().any(|w| applies(req, w)) {
        return None;
    }
    let steps = super::common::steps_of(req.plan, req.wave, s);
    Some(
        steps
            .iter()
            .position(|st| matches!(st, tailshift_plans::steps::Step::StopLegacy { .. }))
            .unwrap_or(steps.len()),
    )
}

/// The services that stay in the process after this wave (none when the wave does not touch
/// it): their names are checked before and after its restart.
pub(super) fn staying<'a>(req: &Request<'a>, state: &State) -> Vec<&'a PlannedService> {
    let wave = leaving(req);
    if wave.is_empty() {
        return Vec::new();
    }
    remaining(req, state, &wave, &[])
}
