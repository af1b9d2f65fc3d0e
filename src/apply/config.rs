//! The `[apply]` part of `migrate.toml`: read at apply time, never hashed into the plan (design
//! section 6). Where the proxy's admin socket is, how long to settle, how shims reach their
//! files and servers, how the legacy side is driven, and how checks reach the old names.

use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// How tsnsrv units are stopped and started.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "adapter", rename_all = "snake_case", deny_unknown_fields)]
pub enum Legacy {
    /// `systemctl stop`/`mask --runtime` (a reboot undoes it: a transition, or hosts without
    /// NixOS).
    Systemd,
    /// The moves file tailshift's NixOS module reads, then the switch command.
    Nix {
        /// The moves file tailshift's NixOS module reads (default: beside `module`,
        /// `<stem>-moves.json`).
        #[serde(default)]
        data: Option<PathBuf>,
        /// Where an older tailshift rendered an equivalent module: read once (its units carried
        /// into `data`), never written; the adapter refuses to go on while it disables units.
        #[serde(default)]
        module: Option<PathBuf>,
        /// The switch command (`["nixos-rebuild", "switch"]`).
        switch: Vec<String>,
    },
    /// Your own program, run with `TAILSHIFT_ACTION` (`stop`, `start`, `repoint`),
    /// `TAILSHIFT_UNIT`, `TAILSHIFT_SERVICE`, `TAILSHIFT_WAVE` in its environment.
    Command {
        /// Program and arguments.
        command: Vec<String>,
    },
}

/// `[apply.check]`: how a check reaches a service by its old name (the checks crate's).
pub use tailshift_checks::CheckConfig;

fn default_settle_ms() -> u64 {
    2000
}

fn default_legacy_state_root() -> PathBuf {
    PathBuf::from("/var/lib")
}

fn default_systemd_dir() -> PathBuf {
    PathBuf::from("/run/systemd/system")
}

fn default_adapter_timeout_s() -> u64 {
    900
}

/// `[apply]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyConfig {
    /// This host's state directory (default: design section 6).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// The proxy's admin socket.
    pub admin_socket: PathBuf,
    /// Between moving a name and stopping the legacy node (DNS TTL, netmap push).
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// The addresses of the node the proxy runs on (what the old names resolve to afterwards).
    #[serde(default)]
    pub proxy_addrs: Vec<IpAddr>,
    /// The records file of `split-dns` (the responder's) or `headscale` (`extra_records_path`).
    #[serde(default)]
    pub records_file: Option<PathBuf>,
    /// The responder `split-dns` verifies against (or MagicDNS for `headscale`).
    #[serde(default)]
    pub resolver: Option<SocketAddr>,
    /// The hosts file of the `hosts` strategy.
    #[serde(default)]
    pub hosts_file: Option<PathBuf>,
    /// The legacy adapter.
    pub legacy: Legacy,
    /// Where systemd keeps the legacy nodes' state (`StateDirectory`): `finalize` removes a
    /// moved node's state under it.
    #[serde(default = "default_legacy_state_root")]
    pub legacy_state_root: PathBuf,
    /// `systemd`: where the drop-in that points the fork's `tsnsrv-all` at the services that
    /// remain goes (`/run/systemd/system`: runtime, like `mask --runtime`).
    #[serde(default = "default_systemd_dir")]
    pub systemd_dir: PathBuf,
    /// `systemd`: the tsnsrv binary that drop-in runs with `-config`.
    #[serde(default = "default_tsnsrv")]
    pub tsnsrv: String,
    /// Other hosts' state, by host name: how a rollback here learns whether a service there
    /// that depends on one of its waves is still applied (nothing the hosts share says so).
    #[serde(default)]
    pub peers: std::collections::BTreeMap<String, Peer>,
    /// How long one adapter command may run (a `nixos-rebuild switch` of a big host takes
    /// minutes) before it is stopped and its step fails.
    #[serde(default = "default_adapter_timeout_s")]
    pub adapter_timeout_s: u64,
    /// Checks.
    #[serde(default)]
    pub check: CheckConfig,
    /// `headscale`: how to run its CLI.
    #[serde(default)]
    pub headscale: Option<HeadscaleConfig>,
    /// `tailscale-services`: the admin API and this host's tailscaled.
    #[serde(default)]
    pub tailscale: Option<TailscaleConfig>,
    /// `keep-node`: where the kept nodes' definitions go.
    #[serde(default)]
    pub keep_node: Option<KeepNodeConfig>,
    /// Who confirms a wave: `checks` (passing checks do) or `operator` (`migrate confirm
    /// --wave N` within `confirm_timeout_s`, or a watcher rolls the wave back).
    #[serde(default)]
    pub confirm: Confirm,
    /// How long the operator has.
    #[serde(default = "default_confirm_timeout_s")]
    pub confirm_timeout_s: u64,
    /// What a failed check does: `rollback` (the whole wave, exit 4) or `pause`.
    #[serde(default = "default_on_fail")]
    pub on_fail: OnCheck,
    /// What an inconclusive check does: `pause` (exit 6), `pass`, or `rollback`.
    #[serde(default = "default_on_inconclusive")]
    pub on_inconclusive: OnCheck,
}

/// What a check outcome leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCheck {
    /// Roll the whole wave back.
    Rollback,
    /// Keep the wave and wait for `migrate confirm` (or the watcher's deadline).
    Pause,
    /// Count it as a pass.
    Pass,
}

fn default_on_fail() -> OnCheck {
    OnCheck::Rollback
}

fn default_on_inconclusive() -> OnCheck {
    OnCheck::Pause
}

/// `[apply.headscale]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadscaleConfig {
    /// headscale's CLI (`["headscale"]`, or through ssh/docker).
    #[serde(default = "default_headscale")]
    pub command: Vec<String>,
}

fn default_headscale() -> Vec<String> {
    vec!["headscale".into()]
}

/// `[apply.tailscale]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailscaleConfig {
    /// A file holding an API access token or an OAuth client secret (scopes: `devices:core`,
    /// `services`).
    pub credentials_file: PathBuf,
    /// The admin API.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// `-`: the credential's own tailnet.
    #[serde(default = "default_tailnet")]
    pub tailnet: String,
    /// tailscaled's LocalAPI socket.
    #[serde(default = "default_localapi")]
    pub localapi_socket: PathBuf,
    /// The proxy's per-Service sockets (its `services` listener).
    pub services_dir: PathBuf,
    /// The proxy's socket for the node's own name (its `trusted` listener).
    pub node_socket: PathBuf,
    /// Tags every tsnsrv node carries.
    pub legacy_tags: Vec<String>,
    /// Tags for the Service definitions.
    #[serde(default)]
    pub service_tags: Vec<String>,
    /// The policy's `autoApprovers.services` approves this host.
    #[serde(default)]
    pub auto_approved: bool,
}

fn default_api_base() -> String {
    tailshift_shims::admin_api::DEFAULT_BASE_URL.into()
}

fn default_tailnet() -> String {
    "-".into()
}

fn default_localapi() -> PathBuf {
    PathBuf::from(tailshift_shims::localapi::DEFAULT_SOCKET)
}

/// `[apply.keep_node]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepNodeConfig {
    /// Where the kept nodes' NixOS snippets and units are written.
    pub dir: PathBuf,
    /// The tsnsrv binary for the unit form.
    #[serde(default = "default_tsnsrv")]
    pub tsnsrv: String,
}

fn default_tsnsrv() -> String {
    "tsnsrv".into()
}

/// Who confirms a wave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirm {
    /// The checks.
    #[default]
    Checks,
    /// The operator, within the timeout.
    Operator,
}

fn default_confirm_timeout_s() -> u64 {
    600
}

impl Legacy {
    /// The files the nix adapter writes (`None` for other adapters).
    pub fn nix_files(&self) -> Option<super::nix_adapter::NixFiles> {
        match self {
            Legacy::Nix { data, module, .. } => Some(super::nix_adapter::NixFiles {
                data: data.clone().unwrap_or_else(|| {
                    super::nix_adapter::default_data_path(
                        module.as_deref().unwrap_or(Path::new("tailshift.nix")),
                    )
                }),
                module: module.clone(),
            }),
            _ => None,
        }
    }
}

impl ApplyConfig {
    /// Reads `[apply]` from `migrate.toml`; errors name the file, line and column.
    pub fn load(path: &Path) -> anyhow::Result<ApplyConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let doc: toml::Table = tailshift_util::parse_toml(path, &text)?;
        if !doc.contains_key("apply") {
            anyhow::bail!(
                "{}: no [apply] section (admin_socket and legacy are required to apply)",
                path.display()
            );
        }
        let d: DocAny = tailshift_util::parse_toml(path, &text)?;
        if let Legacy::Nix { data: None, module: None, .. } = &d.apply.legacy {
            anyhow::bail!(
                "{}: [apply] legacy = {{ adapter = \"nix\" }} needs `data` (the moves file tailshift's NixOS module reads) or `module` (a generated module your configuration imports), or both",
                path.display()
            );
        }
        Ok(d.apply)
    }

    /// The state directory to use.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(super::default_state_dir)
    }
}

/// The whole file with `[apply]` typed and everything else left as it is.
#[derive(Deserialize)]
struct DocAny {
    apply: ApplyConfig,
    #[serde(flatten)]
    _rest: toml::Table,
}

/// `[apply.peers.<host>]`: where another host's `state.json` can be read from here.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// That host's state directory, readable here (the same machine, a mount, a synced copy).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// A command printing that host's `state.json` (`["ssh", "storage", "cat",
    /// "/var/lib/tailshift/state.json"]`).
    #[serde(default)]
    pub state_command: Option<Vec<String>>,
    /// That host's `migrate.toml`, for the commands printed to run there (default: the one
    /// this command was given).
    #[serde(default)]
    pub config: Option<PathBuf>,
}
