//! clap definitions of every subcommand and flag.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Move tsnsrv services (one Tailscale node each) onto one node behind one reverse proxy.
#[derive(Parser, Debug)]
#[command(name = "migrate", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Read what exists (NixOS modules, units, logs, YAML) and say what was understood.
    Inventory(InventoryArgs),
    /// Build a wave-by-wave plan (canary first, dependencies respected) and save it.
    Plan(PlanArgs),
    /// Run the reverse proxy that serves every service on the one node (the daemon that stays).
    Proxy(ProxyArgs),
    /// Apply this host's part of wave N: the proxy takes over, shims keep the old names, checks
    /// decide, a failure rolls the wave back by itself.
    Apply(ApplyArgs),
    /// Undo wave N on this host (inverse steps in reverse, the route last).
    Rollback(RollbackArgs),
    /// Confirm wave N when `[apply] confirm = "operator"` (otherwise it is rolled back at the
    /// deadline).
    Confirm(ConfirmArgs),
    /// Remove what only a rollback of wave N needed (legacy nodes' state); the wave can no
    /// longer be rolled back afterwards.
    Finalize(FinalizeArgs),
    /// The confirmation watcher `apply` starts (internal).
    #[command(hide = true)]
    WatchConfirm(WatchArgs),
    /// Where every service of this host is, and whether an interrupted run left it half-done.
    Status(StatusArgs),
    /// Remove the state directory's lock left by a run that is gone (give the lock's ID).
    ForceUnlock(ForceUnlockArgs),
    /// Migrate the example homelab (2 hosts, 70 services) on loopback, end to end: no
    /// Tailscale, no root. Every old name is checked after every wave; a table of measured
    /// figures ends it.
    Demo(DemoArgs),
    /// Print a shell completion script (bash, zsh, fish) to standard output.
    Completions(CompletionsArgs),
    /// Write the man pages (migrate(1) and one per subcommand), generated from these
    /// definitions; the package build installs them.
    #[command(hide = true)]
    Man(ManArgs),
}

/// `migrate completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell the script is for.
    #[arg(value_enum)]
    pub shell: ShellArg,
}

/// Shells `migrate completions` writes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShellArg {
    /// bash (bash-completion: `source <(migrate completions bash)`).
    Bash,
    /// zsh (a `_migrate` function for `fpath`).
    Zsh,
    /// fish (`migrate completions fish > ~/.config/fish/completions/migrate.fish`).
    Fish,
}

/// `migrate man`.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write `migrate.1` and `migrate-<subcommand>.1` into this directory instead of printing
    /// `migrate.1` on standard output.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// `migrate demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep everything running after the summary (until Ctrl-C), and keep the directory.
    #[arg(long)]
    pub keep: bool,
    /// Move only the first N services of the example (the others stay on their nodes).
    #[arg(long, value_name = "N")]
    pub services: Option<usize>,
    /// Apply only the first N waves (0: set up and plan, apply nothing; with --keep, drive the
    /// waves by hand).
    #[arg(long, value_name = "N")]
    pub waves: Option<usize>,
    /// `json`: the summary as one JSON object (schema tailshift.demo/v1) on stdout.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Text for people on stdout; diagnostics and errors on stderr.
    Table,
    /// JSON only on stdout, each document with its `schema` (this command's --format says
    /// which); errors on stderr.
    Json,
}

/// `--input-kind` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InputKindArg {
    /// A NixOS module or host file (its imports are followed).
    Nix,
    /// `nix eval --json` of config.services.tsnsrv.
    NixEval,
    /// `systemctl cat 'tsnsrv-*'` output.
    Unit,
    /// A unit's start script.
    Script,
    /// A copy of /proc/<pid>/cmdline.
    Cmdline,
    /// tsnsrv's `Serving ...` startup log lines.
    Log,
    /// The fork's multi-service YAML (tsnsrv -config).
    Yaml,
}

/// `--tsnsrv` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FlavourArg {
    /// boinkor-net/tsnsrv.
    Upstream,
    /// arsfeld/tsnsrv, one process per service.
    Fork,
    /// arsfeld/tsnsrv's single tsnsrv-all process (YAML).
    ForkAll,
}

/// `--evaluator` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EvaluatorArg {
    /// tailshift's static evaluator: source locations, unknowns instead of failures.
    Builtin,
    /// The real Nix, when installed: `nix eval` on a flake's hosts, nix-instantiate with
    /// <nixpkgs/nixos> on module files.
    Nix,
}

/// The inputs every command that reads an inventory takes.
#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// NixOS files or directories, unit dumps, start scripts, cmdline copies, logs, YAML.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Host name to use when the files do not set networking.hostName.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Read every PATH as this kind instead of detecting it.
    #[arg(long, value_enum, value_name = "KIND")]
    pub input_kind: Option<InputKindArg>,
    /// The tsnsrv flavour, stated instead of detected.
    #[arg(long, value_enum, value_name = "FLAVOUR")]
    pub tsnsrv: Option<FlavourArg>,
    /// JSON of config.services.tsnsrv from `nix eval --json` (a file, or - for stdin).
    #[arg(long, value_name = "FILE|-")]
    pub from_nix_eval: Vec<PathBuf>,
    /// Which Nix evaluator reads .nix files and flakes.
    #[arg(long, value_enum, default_value = "builtin")]
    pub evaluator: EvaluatorArg,
    /// With --evaluator nix on a flake: replace one of its inputs, as nix's own
    /// --override-input does (for inputs Nix cannot fetch here, e.g. offline).
    #[arg(long, num_args = 2, value_names = ["INPUT", "FLAKE_REF"], action = clap::ArgAction::Append)]
    pub override_input: Vec<String>,
}

/// `migrate inventory`.
#[derive(Args, Debug)]
pub struct InventoryArgs {
    /// What to read.
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format: `table`, then the coverage report; `json`, the inventory (schema
    /// tailshift.inventory/v2).
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Read with both evaluators (built-in and the real Nix) and report every service and value
    /// on which they differ (exit 1 if any): the proof that the built-in reading is right.
    #[arg(long)]
    pub cross_check: bool,
}

/// Plan output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// Waves with reasons and forecast, held-back services, findings.
    Table,
    /// The plan file itself.
    Json,
    /// A runbook: per wave, what changes, what to watch, how to roll back.
    Markdown,
    /// Graphviz.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
    /// The proxy route table the planned services will get (JSON).
    Routes,
}

/// `migrate plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// What to read.
    #[command(flatten)]
    pub input: InputArgs,
    /// The policy file.
    #[arg(long, value_name = "FILE", default_value = "migrate.toml")]
    pub config: PathBuf,
    /// Where to write the plan file (default: plan.json beside the policy file).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value = "table")]
    pub format: PlanFormat,
    /// Put services with unknown or unsupported values into waves anyway.
    #[arg(long)]
    pub accept_unknown: bool,
    /// Plan even when the names of some services cannot be known (the plan records that it
    /// may miss services).
    #[arg(long)]
    pub allow_incomplete: bool,
    /// Check whether a saved plan still matches its inputs and planning keys (exit 7 if not).
    #[arg(long, value_name = "PLAN")]
    pub check: Option<PathBuf>,
    /// tailscaled's LocalAPI socket, asked for the tailnet's name when plan.tailnet is not set.
    #[arg(long, value_name = "PATH", default_value = tailshift_shims::localapi::DEFAULT_SOCKET)]
    pub localapi_socket: PathBuf,
    /// Show what moved, and why, compared with an older plan file.
    #[arg(long, value_name = "OLD")]
    pub compare: Option<PathBuf>,
}

/// `migrate proxy`.
#[derive(Args, Debug)]
pub struct ProxyArgs {
    /// The proxy's TOML (listeners, state directory; never the routes).
    #[arg(long, value_name = "FILE", default_value = "/etc/tailshift/proxy.toml")]
    pub config: PathBuf,
    /// Validate the configuration and the saved route table, then exit.
    #[arg(long)]
    pub check_config: bool,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

/// `migrate status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The state directory (default: [apply] state_dir of --config, else /var/lib/tailshift as
    /// root, else the XDG state directory).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// migrate.toml: with it, status also checks the live side (the proxy's routes, the old
    /// names' answers) against the state and reports drift (exit 2).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// `migrate force-unlock`.
#[derive(Args, Debug)]
pub struct ForceUnlockArgs {
    /// The lock's ID, as `migrate status` or the refused command printed it.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The state directory (default: [apply] state_dir of --config, else the default one).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// migrate.toml, whose [apply] state_dir names the state directory.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// `json`: one JSON document on stdout.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// What every wave command is about: the wave, its plan, this host, the policy, the output.
#[derive(Args, Debug, Clone)]
pub struct WaveTarget {
    /// The wave (1-based, as the plan numbers them).
    #[arg(long, value_name = "N")]
    pub wave: usize,
    /// The plan file (default: plan.json beside migrate.toml).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// This host's name in the plan (default: this machine's name, when the plan has it).
    #[arg(long, value_name = "H")]
    pub host: Option<String>,
    /// The policy file; its [apply] part is read now.
    #[arg(long, value_name = "FILE", default_value = "migrate.toml")]
    pub config: PathBuf,
    /// tailscaled's LocalAPI socket (the tailnet, when the policy does not name it).
    #[arg(long, value_name = "PATH", default_value = tailshift_shims::localapi::DEFAULT_SOCKET)]
    pub localapi_socket: PathBuf,
    /// `json`: progress as NDJSON events on stdout.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// `migrate apply`.
#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The wave and its files.
    #[command(flatten)]
    pub target: WaveTarget,
    /// Run every read-only check, print each remaining step with its effect, change nothing,
    /// and exit with the code the real run would.
    #[arg(long)]
    pub dry_run: bool,
}

/// `migrate rollback`.
#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// The wave and its files.
    #[command(flatten)]
    pub target: WaveTarget,
    /// Run every read-only check, print each step the rollback would take, change nothing,
    /// and exit with the code the real run would.
    #[arg(long)]
    pub dry_run: bool,
    /// Roll back every applied wave above this one on this host too, newest first.
    #[arg(long)]
    pub cascade: bool,
}

/// `migrate finalize`.
#[derive(Args, Debug)]
pub struct FinalizeArgs {
    /// The wave and its files.
    #[command(flatten)]
    pub target: WaveTarget,
    /// Run every read-only check, print what would be removed, change nothing, and exit with
    /// the code the real run would.
    #[arg(long)]
    pub dry_run: bool,
    /// Finalize without asking (needed when no terminal is there to ask): it cannot be undone.
    #[arg(long)]
    pub yes: bool,
}

/// `migrate confirm`.
#[derive(Args, Debug)]
pub struct ConfirmArgs {
    /// The wave and its files.
    #[command(flatten)]
    pub target: WaveTarget,
}

/// The confirmation watcher's arguments.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The wave and its files.
    #[command(flatten)]
    pub target: WaveTarget,
    /// Unix time by which `migrate confirm` must come.
    #[arg(long)]
    pub deadline: u64,
}
