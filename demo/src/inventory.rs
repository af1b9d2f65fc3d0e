//! What the operator reads first: `migrate inventory` of the example's copy, each service
//! matched to the app behind it; then one emulated legacy node per service, and the records
//! MagicDNS would answer for their old names.

use crate::nodes::{self, Node, Target};
use crate::setup::{Apps, Env};
use crate::summary::{self, Measured, Summary};
use crate::world::{HOSTS, TAILNET, World, say};
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tailshift_parsers::{Inventory, Opt, Options};

/// One service of the example, as the inventory read it.
#[derive(Clone, Debug)]
pub(crate) struct Svc {
    /// `host/name`.
    pub id: String,
    /// Its host.
    pub host: String,
    /// Its name (the old name is `<name>.tailnet.test`).
    pub name: String,
    /// The app behind it, by its name in `ports.nix`.
    pub app: String,
    /// Its legacy node's address.
    pub node: IpAddr,
    /// The wave the plan gave it.
    pub wave: Option<usize>,
    /// Its host runs the fork's one `tsnsrv-all` process for every service.
    pub shared: bool,
}

impl Svc {
    /// The old name, the way clients reach it.
    pub fn fqdn(&self) -> String {
        format!("{}.{TAILNET}", self.name)
    }
}

/// Runs `migrate inventory` on the example's hosts and reads its services.
pub(crate) fn read(env: &Env, apps: &Apps, s: &mut Summary) -> anyhow::Result<Vec<Svc>> {
    let hosts_dir = apps.homelab.join("hosts");
    let out = env
        .migrate(&["inventory", &hosts_dir.display().to_string(), "--format", "json"])?
        .stderr(Stdio::piped())
        .output()?;
    if !out.status.success() {
        bail!("migrate inventory failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::write(env.dir.join("inventory.json"), &out.stdout)?;
    let inv: Inventory = serde_json::from_slice(&out.stdout).context("inventory")?;
    let mut svcs: Vec<Svc> = Vec::new();
    let mut counters: BTreeMap<String, u8> = BTreeMap::new();
    for v in &inv.services {
        let name = v.name.clone();
        let host = v.host.known().context("service host")?.clone();
        let app = app_of(apps, &host, &name, &v.effective)?;
        let net = HOSTS.iter().find(|h| h.0 == host).map(|h| h.2).context("unknown host")?;
        let n = counters.entry(host.clone()).or_insert(0);
        *n += 1;
        svcs.push(Svc {
            id: format!("{host}/{name}"),
            node: IpAddr::V4(Ipv4Addr::new(127, 70, net, *n)),
            host,
            name,
            app,
            wave: None,
            shared: v.flavour == tailshift_parsers::Flavour::ForkAll,
        });
    }
    s.services = svcs.len();
    let unknown = inv.diagnostics.len();
    say(format!(
        "[1/5] inventory: {} services on {} hosts read from {} ({} diagnostics); `migrate inventory {}`",
        svcs.len(),
        counters.len(),
        apps.homelab.display(),
        unknown,
        hosts_dir.display()
    ));
    Ok(svcs)
}

/// The app behind a service's upstream (its effective options): by socket, or by port.
fn app_of(apps: &Apps, host: &str, name: &str, eff: &Options) -> anyhow::Result<String> {
    if let Some(sock) = eff.str(Opt::UpstreamUnixAddr) {
        apps.at.iter().find(|(_, t)| matches!(t, Target::Unix(p) if p.as_os_str() == sock))
    } else {
        let url = eff.url(Opt::ToUrl)?.context("toURL")?;
        let port =
            url.port_or_known_default().with_context(|| format!("{name}: no port in {url}"))?;
        apps.at.iter().find(|(_, t)| matches!(t, Target::Tcp(a) if a.port() == port))
    }
    .map(|(a, _)| a.clone())
    .with_context(|| format!("{host}/{name}: its upstream is none of the example's apps"))
}

/// Starts one legacy node per service (a certificate for its old name, its own loopback
/// address), the nodes of a `tsnsrv-all` host as that one process, writes the records MagicDNS
/// would answer, and waits until every node listens. Returns the count of nodes listening,
/// kept current, and the shared process's restarts.
pub(crate) fn start_legacy_nodes(
    env: &Env,
    apps: &Apps,
    svcs: &[Svc],
    world: &mut World,
    s: &mut Summary,
) -> anyhow::Result<(Arc<AtomicUsize>, Arc<nodes::Restarts>)> {
    let port = env.port;
    let mut node_list = Vec::new();
    let mut legacy = Vec::new();
    for v in svcs {
        let fqdn = v.fqdn();
        let issued = env.ca.issue(&fqdn)?;
        apps.shared.nodes.write().unwrap_or_else(|p| p.into_inner()).insert(v.node, v.id.clone());
        node_list.push(Node {
            id: v.id.clone(),
            ip: v.node,
            target: apps.at[&v.app].clone(),
            cert: Arc::new(issued),
            shared: v.shared,
        });
        legacy.push(serde_json::json!({"name": fqdn, "type": "A", "value": v.node.to_string()}));
        world.listening.push(SocketAddr::new(v.node, port));
    }
    std::fs::write(env.dir.join("legacy.json"), serde_json::to_string_pretty(&legacy)?)?;
    let units = env.dir.join("units");
    std::fs::create_dir_all(&units)?;
    // The demo's one tsnsrv-all host (cloud): one process; each node's state where the fork
    // keeps it (`/var/lib/tsnsrv-all/<name>`), under the demo's directory.
    let restarts = Arc::new(nodes::Restarts::default());
    let shared_host = svcs.iter().find(|v| v.shared).map(|v| v.host.clone());
    let shared = shared_host.map(|host| {
        for v in svcs.iter().filter(|v| v.shared) {
            restarts.names.lock().unwrap_or_else(|p| p.into_inner()).insert(v.fqdn());
            let state = env.dir.join(format!("var-lib-{host}/tsnsrv-all/{}", v.name));
            let _ = std::fs::create_dir_all(&state);
            let _ = std::fs::write(state.join("tailscaled.state"), "{}");
        }
        nodes::SharedProc {
            moves: env.dir.join(format!("{host}-moves.json")),
            host,
            restart: Duration::from_millis(300),
            restarts: restarts.clone(),
        }
    });
    let listening = nodes::run(node_list, port, units, shared, &env.handle);
    let deadline = Instant::now() + Duration::from_secs(10);
    while listening.load(Ordering::SeqCst) < svcs.len() {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} legacy nodes could listen on port {port}",
                listening.load(Ordering::SeqCst),
                svcs.len()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    s.legacy_nodes = Measured::new(summary::NodeCount { before: svcs.len(), after: 0 });
    Ok((listening, restarts))
}
