//! The environment, before anything is read: the development CA, one `migrate proxy` per host
//! (the storage host's also hosts the split-DNS responder), and the example's apps on free
//! loopback ports, with the example copied to point at them.

use crate::apps::{self, Shared};
use crate::example::{self, Listen, PortEntry};
use crate::nodes::Target;
use crate::procs::{self, Daemon};
use crate::world::{HOSTS, TAILNET, World, interrupted};
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tailshift_checks::CheckConfig;
use tailshift_proxy::tls::DevCa;

/// What every later phase needs of the environment.
pub(crate) struct Env {
    /// The demo's directory.
    pub dir: PathBuf,
    /// The `migrate` binary.
    pub migrate: PathBuf,
    /// The runtime of the apps, nodes and measurements.
    pub handle: tokio::runtime::Handle,
    /// The development CA (the proxies' and the legacy nodes' certificates).
    pub ca: DevCa,
    /// Its certificate, the one CA every client of the demo trusts.
    pub ca_file: PathBuf,
    /// The split-DNS responder (MagicDNS's part, for the names not moved yet).
    pub dns: SocketAddr,
    /// The one HTTPS port every name answers on.
    pub port: u16,
    /// How every check reaches an old name: through the responder, trusting the CA.
    pub checks: CheckConfig,
}

impl Env {
    /// The state directory of a host's proxy.
    pub fn proxy_state(&self, host: &str) -> PathBuf {
        self.dir.join(format!("proxy-{host}"))
    }

    /// `migrate <args>` as a child of the demo.
    pub fn migrate(&self, args: &[&str]) -> anyhow::Result<std::process::Command> {
        procs::migrate(&self.migrate, args)
    }
}

/// Creates the CA and the records files, and starts both proxies.
pub(crate) fn environment(world: &mut World, migrate: &Path) -> anyhow::Result<Env> {
    let dir = world.dir.clone();
    let handle = world.handle()?;
    let (ps, pc) = (dir.join("proxy-storage"), dir.join("proxy-cloud"));
    std::fs::create_dir_all(&pc)?;
    let ca = DevCa::load_or_create(&ps)?;
    for f in ["dev-ca.crt", "dev-ca.key"] {
        std::fs::copy(ps.join(f), pc.join(f))?;
    }
    let ca_file = ps.join("dev-ca.crt");
    for f in ["records-storage.json", "records-cloud.json"] {
        std::fs::write(dir.join(f), "[]\n")?;
    }
    // `top`: more top-level keys; `tail`: more tables.
    let proxy_toml = |host: &str, state: &Path, addr: String, top: &str, tail: &str| {
        format!(
            "# `migrate proxy` for the demo's host {host} (docs/proxy.md)\nstate_dir = \"{}\"\nupstream_ca = \"{}\"\naccess_log = false\nhealth_interval_s = 10\n{top}\n[[listener]]\nkind = \"https\"\naddr = \"{addr}\"\n{tail}",
            state.display(),
            ca_file.display()
        )
    };
    let dns_part = format!(
        "\n[dns]\nlisten = \"{}:0\"\nzone = \"{TAILNET}\"\nrecords = [\"{}\", \"{}\", \"{}\"]\nttl = 1\n",
        HOSTS[0].1,
        dir.join("records-storage.json").display(),
        dir.join("records-cloud.json").display(),
        dir.join("legacy.json").display()
    );
    // Storage's proxy first: the kernel picks the port every other name then shares.
    let storage = proxy_toml("storage", &ps, format!("{}:0", HOSTS[0].1), "", &dns_part);
    let (proxy_s, line) = start_proxy(migrate, &dir, "storage", storage)?;
    world.proxies.push(proxy_s);
    let https = printed_addr(&line, "https ").context("the proxy's https address")?;
    let dns = printed_addr(&line, "dns ").context("the responder's address")?;
    let port = https.port();
    // Cloud's proxy resolves forward-auth names (auth.tailnet.test) through the responder.
    let top = format!("upstream_dns = \"{dns}\"\n");
    let cloud = proxy_toml("cloud", &pc, format!("{}:{port}", HOSTS[1].1), &top, "");
    let (proxy_c, _) = start_proxy(migrate, &dir, "cloud", cloud)?;
    world.proxies.push(proxy_c);
    world.listening.push(https);
    world.listening.push(SocketAddr::new(HOSTS[1].1.into(), port));
    world.listening.push(dns);
    let checks =
        CheckConfig { resolver: Some(dns), port, ca_file: Some(ca_file.clone()), timeout_ms: 3000 };
    Ok(Env { dir, migrate: migrate.to_path_buf(), handle, ca, ca_file, dns, port, checks })
}

/// Starts `migrate proxy` and waits for its `serving` line; returns it with the addresses it
/// printed (https, dns).
fn start_proxy(
    migrate: &Path,
    dir: &Path,
    host: &str,
    toml: String,
) -> anyhow::Result<(Daemon, String)> {
    let cfg = dir.join(format!("proxy-{host}.toml"));
    std::fs::write(&cfg, toml)?;
    let log = dir.join(format!("proxy-{host}.log"));
    let child = procs::migrate(migrate, &["proxy", "--config", &cfg.display().to_string()])?
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting migrate proxy")?;
    let mut daemon = Daemon { child, name: format!("proxy {host}") };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("tailshift proxy serving")) {
            return Ok((daemon, line.to_string()));
        }
        if let Ok(Some(st)) = daemon.child.try_wait() {
            bail!("the {} exited ({st}): {}", daemon.name, text.trim());
        }
        if Instant::now() > deadline || interrupted() {
            daemon.stop();
            bail!("the {} did not start serving: {}", daemon.name, text.trim());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `ip:port` after `kind ` in the proxy's serving line.
fn printed_addr(line: &str, kind: &str) -> Option<SocketAddr> {
    let a = line.split(kind).nth(1)?.split([',', ';', ' ']).next()?;
    a.parse().ok()
}

/// The example's apps, running, and the example copied to point at them.
pub(crate) struct Apps {
    /// What every app shares (which addresses are legacy nodes).
    pub shared: Arc<Shared>,
    /// Where each app listens, by its name in `ports.nix`.
    pub at: BTreeMap<String, Target>,
    /// The example's copy.
    pub homelab: PathBuf,
}

/// Starts every app of `ports.nix` on a free port (or a socket under the directory) and writes
/// the example's copy with those ports.
pub(crate) fn start_apps(env: &Env, world: &mut World) -> anyhow::Result<Apps> {
    let sockets = env.dir.join("sockets");
    std::fs::create_dir_all(&sockets)?;
    let shared = Arc::new(Shared::default());
    let mut at: BTreeMap<String, Target> = BTreeMap::new();
    let mut entries = Vec::new();
    let _guard = env.handle.enter();
    for e in example::port_entries(example::FILES[0].1) {
        let (moved, l) = bind_app(&e, &sockets)?;
        let name: Arc<str> = e.app.as_str().into();
        match l {
            AppListener::Tcp(l) => {
                let addr = l.local_addr()?;
                l.set_nonblocking(true)?;
                world.listening.push(addr);
                at.insert(e.app.clone(), Target::Tcp(addr));
                let l = tokio::net::TcpListener::from_std(l)?;
                env.handle.spawn(apps::serve_tcp(name, l, shared.clone()));
            }
            AppListener::Unix(l) => {
                l.set_nonblocking(true)?;
                if let Listen::Socket(p) = &moved.listen {
                    at.insert(e.app.clone(), Target::Unix(p.clone()));
                }
                let l = tokio::net::UnixListener::from_std(l)?;
                env.handle.spawn(apps::serve_unix(name, l, shared.clone()));
            }
        }
        entries.push(moved);
    }
    let homelab = example::write_copy(&env.dir, &entries, env.port)?;
    Ok(Apps { shared, at, homelab })
}

/// Binds an app's free port (kept bound: no other process can take it before the app runs).
fn bind_app(e: &PortEntry, sockets: &Path) -> anyhow::Result<(PortEntry, AppListener)> {
    Ok(match &e.listen {
        Listen::Port(_) => {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            let port = l.local_addr()?.port();
            (PortEntry { app: e.app.clone(), listen: Listen::Port(port) }, AppListener::Tcp(l))
        }
        Listen::Socket(_) => {
            let path = sockets.join(format!("{}.sock", e.app));
            let l = std::os::unix::net::UnixListener::bind(&path)
                .with_context(|| format!("binding {}", path.display()))?;
            (PortEntry { app: e.app.clone(), listen: Listen::Socket(path) }, AppListener::Unix(l))
        }
    })
}

enum AppListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serving_line_gives_the_https_and_dns_addresses() {
        let line = "INFO tailshift proxy serving 0 routes on https 127.70.0.1:40123, dns 127.70.0.1:5353 (zone tailnet.test); admin unix:/tmp/x/admin.sock";
        assert_eq!(printed_addr(line, "https "), Some("127.70.0.1:40123".parse().unwrap()));
        assert_eq!(printed_addr(line, "dns "), Some("127.70.0.1:5353".parse().unwrap()));
        assert_eq!(printed_addr(line, "metrics "), None);
    }
}
