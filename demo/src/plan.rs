//! The operator's plan: the example's policy (narrowed by `--services`), each host's `[apply]`
//! pointing at the demo's proxies, responder and legacy adapter, and `migrate plan`.

use crate::example;
use crate::inventory::Svc;
use crate::setup::{Apps, Env};
use crate::summary::{self, Summary};
use crate::world::{HOSTS, say};
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The plan `migrate plan` wrote.
pub(crate) struct Planned {
    /// Its file.
    pub path: PathBuf,
    /// Its waves, in order (the plan file's JSON).
    pub waves: Vec<serde_json::Value>,
}

/// Writes each host's configuration and the legacy adapter (moving only the first `services`
/// services, default all), runs `migrate plan`, and notes each service's wave.
pub(crate) fn make(
    services: Option<usize>,
    env: &Env,
    apps: &Apps,
    svcs: &mut [Svc],
    s: &mut Summary,
) -> anyhow::Result<Planned> {
    let moved_by_demo = services.unwrap_or(svcs.len());
    if moved_by_demo == 0 || moved_by_demo > svcs.len() {
        bail!("--services: the example has {} services; give 1 to {}", svcs.len(), svcs.len());
    }
    s.services_moved_by_demo = moved_by_demo;
    let excluded: Vec<String> = svcs[moved_by_demo..].iter().map(|v| v.name.clone()).collect();
    let policy = policy(moved_by_demo, &excluded)?;
    let adapter = write_adapter(env)?;
    let hosts = write_host_configs(env, &apps.homelab, &policy, &adapter)?;
    let path = env.dir.join("plan.json");
    let hosts_dir = apps.homelab.join("hosts");
    let storage_cfg = apps.homelab.join("storage.toml");
    let out = env
        .migrate(&[
            "plan",
            &hosts_dir.display().to_string(),
            "--config",
            &storage_cfg.display().to_string(),
            "--out",
            &path.display().to_string(),
        ])?
        .output()?;
    std::fs::write(env.dir.join("plan.txt"), &out.stdout)?;
    if !out.status.success() {
        bail!("migrate plan failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    let waves = plan["waves"].as_array().context("plan waves")?.clone();
    for w in &waves {
        let n = w["number"].as_u64().unwrap_or(0) as usize;
        for id in w["services"].as_array().into_iter().flatten() {
            if let Some(v) = svcs.iter_mut().find(|v| Some(v.id.as_str()) == id.as_str()) {
                v.wave = Some(n);
            }
        }
    }
    s.plan = facts(&plan, waves.len(), svcs);
    say(format!(
        "[2/5] plan {}: {} waves, {} services planned, {} stay on their nodes ({}); `migrate plan` wrote {}",
        s.plan.plan_id,
        s.plan.waves,
        s.plan.planned,
        s.plan.held_back.len(),
        shorten(&s.plan.held_back),
        path.display()
    ));
    s.environment = environment(env, &path, hosts, svcs);
    Ok(Planned { path, waves })
}

/// The example's policy; with `--services N`, the services after the first N excluded.
fn policy(moved_by_demo: usize, excluded: &[String]) -> anyhow::Result<String> {
    let policy = example::FILES[5].1;
    Ok(if excluded.is_empty() {
        policy.to_string()
    } else {
        policy.replacen(
            "[plan]\n",
            &format!(
                "[plan]\n# `migrate demo --services {moved_by_demo}`: the rest stay on their nodes.\nexclude = {}\n",
                serde_json::to_string(excluded)?
            ),
            1,
        )
    })
}

/// The `command` legacy adapter: stops and starts an emulated node by its flag file; finalize
/// retires it for good (it stays stopped, and a marker says it was finalized).
fn write_adapter(env: &Env) -> anyhow::Result<PathBuf> {
    let adapter = env.dir.join("tsnsrv-units.sh");
    std::fs::write(
        &adapter,
        format!(
            "#!/bin/sh\n# The demo's legacy adapter: stops and starts an emulated tsnsrv node by a flag file.\nf=\"{}/stopped-$(echo \"$TAILSHIFT_SERVICE\" | tr / -)\"\ncase \"$TAILSHIFT_ACTION\" in\n  stop) touch \"$f\" ;;\n  start) rm -f \"$f\" ;;\n  finalize) touch \"$f\" \"$f.finalized\" ;;\n  *) echo \"the demo's nodes cannot $TAILSHIFT_ACTION\" >&2; exit 1 ;;\nesac\n",
            env.dir.join("units").display()
        ),
    )?;
    Ok(adapter)
}

/// `<homelab>/<host>.toml`: the policy, and `[apply]` for that host.
fn write_host_configs(
    env: &Env,
    homelab: &Path,
    policy: &str,
    adapter: &Path,
) -> anyhow::Result<Vec<summary::HostEnv>> {
    let (dns, port) = (env.dns, env.port);
    let mut hosts = Vec::new();
    for (host, ip, _) in HOSTS {
        let cfg = homelab.join(format!("{host}.toml"));
        // The other host's state, for a rollback here to see what there depends on it.
        let other = HOSTS.iter().map(|h| h.0).find(|h| *h != host).unwrap_or(host);
        // cloud runs the fork's one tsnsrv-all process: the nix adapter writes what remains
        // in it to the moves file, and the switch (standing for `nixos-rebuild switch`) has
        // the emulated process take it, restarting it only when it changed.
        let legacy = if host == "cloud" {
            let switch = env.dir.join(format!("switch-{host}.sh"));
            let flag = crate::nodes::switch_flag(&env.dir.join("units"), host);
            std::fs::write(
                &switch,
                format!(
                    "#!/bin/sh\n# The demo's `nixos-rebuild switch` for {host}: its tsnsrv-all takes the moves file's configuration.\ntouch {f}\ni=0\nwhile [ -e {f} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\n[ ! -e {f} ] || {{ echo \"{host}: tsnsrv-all did not take its configuration\" >&2; exit 1; }}\n",
                    f = flag.display()
                ),
            )?;
            format!(
                "legacy = {{ adapter = \"nix\", data = \"{d}/{host}-moves.json\", switch = [\"/bin/sh\", \"{s}\"] }}\nlegacy_state_root = \"{d}/var-lib-{host}\"",
                d = env.dir.display(),
                s = switch.display()
            )
        } else {
            format!(
                "legacy = {{ adapter = \"command\", command = [\"/bin/sh\", \"{}\"] }}",
                adapter.display()
            )
        };
        std::fs::write(
            &cfg,
            format!(
                "{policy}\n# Written by `migrate demo` for the host {host} (docs/policy.md, [apply]).\n[apply]\nstate_dir = \"{d}/state-{host}\"\nadmin_socket = \"{sock}\"\nsettle_ms = 100\nproxy_addrs = [\"{ip}\"]\nrecords_file = \"{d}/records-{host}.json\"\nresolver = \"{dns}\"\n{legacy}\n\n[apply.peers.{other}]\nstate_dir = \"{d}/state-{other}\"\nconfig = \"{other_cfg}\"\n\n[apply.check]\nresolver = \"{dns}\"\nport = {port}\nca_file = \"{ca}\"\ntimeout_ms = 3000\n",
                d = env.dir.display(),
                sock = env.proxy_state(host).join("admin.sock").display(),
                ca = env.ca_file.display(),
                other_cfg = homelab.join(format!("{other}.toml")).display(),
            ),
        )?;
        hosts.push(summary::HostEnv {
            name: host.into(),
            proxy: SocketAddr::new(ip.into(), port).to_string(),
            config: cfg.display().to_string(),
        });
    }
    Ok(hosts)
}

/// The plan's identity and size, for the summary.
fn facts(plan: &serde_json::Value, waves: usize, svcs: &[Svc]) -> summary::PlanFacts {
    summary::PlanFacts {
        plan_id: plan["plan_id"].as_str().unwrap_or_default().to_string(),
        waves,
        planned: svcs.iter().filter(|v| v.wave.is_some()).count(),
        held_back: plan["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p.get("wave").is_none_or(|w| w.is_null()))
            .filter_map(|p| p["id"].as_str().map(str::to_string))
            .collect(),
    }
}

/// Where everything is, for the summary (and for trying it by hand with `--keep`).
fn environment(
    env: &Env,
    plan: &Path,
    hosts: Vec<summary::HostEnv>,
    svcs: &[Svc],
) -> summary::Environment {
    summary::Environment {
        directory: env.dir.display().to_string(),
        dns: env.dns.to_string(),
        https_port: env.port,
        ca_file: env.ca_file.display().to_string(),
        ca_spki_sha256: env.ca.spki_sha256_base64(),
        plan: plan.display().to_string(),
        hosts,
        services: svcs
            .iter()
            .map(|v| summary::ServiceEnv {
                id: v.id.clone(),
                name: v.fqdn(),
                node: v.node.to_string(),
                wave: v.wave,
            })
            .collect(),
    }
}

/// At most six names, then how many more.
fn shorten(names: &[String]) -> String {
    let mut t = names.iter().take(6).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 6 {
        t.push_str(&format!(" and {} more", names.len() - 6));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_six_names_then_how_many_more() {
        let names: Vec<String> = (1..=8).map(|i| format!("s{i}")).collect();
        assert_eq!(shorten(&names[..2]), "s1, s2");
        assert_eq!(shorten(&names), "s1, s2, s3, s4, s5, s6 and 2 more");
    }

    #[test]
    fn services_beyond_the_first_n_are_excluded_in_the_policy() {
        assert_eq!(policy(70, &[]).unwrap(), example::FILES[5].1);
        let p = policy(2, &["ntfy".into(), "n8n".into()]).unwrap();
        assert!(p.contains("[plan]\n# `migrate demo --services 2`"), "{p}");
        assert!(p.contains("exclude = [\"ntfy\",\"n8n\"]\n"), "{p}");
    }
}
