//! The `Inventory`: every tsnsrv service found, with what was declared and what was in effect.
//!
//! The JSON form (`migrate inventory --format json`) is versioned by [`SCHEMA`]; fields are only
//! added within a version. `docs/inventory-schema.md` describes it.

use crate::diagnostic::{Diagnostic, DiagnosticCode, Severity};
use crate::options::Opt;
use crate::source::Location;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// Identifier and version of the inventory's JSON form.
pub const SCHEMA: &str = "tailshift.inventory/v2";

/// Whether a service exists for certain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// It exists (or the input cannot say otherwise: units, logs, YAML).
    #[default]
    Certain,
    /// It exists only when a condition that cannot be known holds (`mkIf`,
    /// `optionalAttrs`, an `if`); its values are read as if it did.
    Conditional {
        /// The condition, as written where it can be named (`config.services.jellyfin.enable`).
        condition: String,
        /// Why the condition cannot be known.
        reason: String,
        /// Where the condition arose.
        #[serde(skip_serializing_if = "Option::is_none")]
        location: Option<Location>,
    },
}

impl Presence {
    /// Whether the service certainly exists.
    pub fn is_certain(&self) -> bool {
        matches!(self, Presence::Certain)
    }
}

/// Which tsnsrv a host runs; their defaults differ (`reference/tsnsrv.md` 1.5, 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavour {
    /// boinkor-net/tsnsrv: one process per service, CLI defaults, no forward auth.
    Upstream,
    /// arsfeld/tsnsrv with one process per service (`separateProcesses = true`).
    Fork,
    /// arsfeld/tsnsrv's single `tsnsrv-all` process driven by YAML (`separateProcesses = false`).
    ForkAll,
}

impl Flavour {
    /// Whether the fork's binary runs (forward auth, `service_name` metrics label).
    pub fn is_fork(self) -> bool {
        !matches!(self, Flavour::Upstream)
    }

    /// The `--tsnsrv` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::Upstream => "upstream",
            Flavour::Fork => "fork",
            Flavour::ForkAll => "fork-all",
        }
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the flavour was decided: a stated assumption, never an unknown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "basis", rename_all = "snake_case")]
pub enum FlavourBasis {
    /// `--tsnsrv` said so.
    Stated {
        /// The flag as given.
        flag: String,
    },
    /// Found in the inputs.
    Detected {
        /// What gave it away.
        reason: String,
        /// Where.
        #[serde(skip_serializing_if = "Option::is_none")]
        location: Option<Location>,
    },
    /// Nothing decided it; this is the assumption made.
    Assumed {
        /// Why this one.
        reason: String,
    },
}

/// Where a known value came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// Written in an input.
    Declared {
        /// Where (absent when the input has no positions, e.g. a cmdline copy).
        #[serde(skip_serializing_if = "Option::is_none")]
        location: Option<Location>,
    },
    /// A default of the flavour in force.
    Default {
        /// Which default, e.g. "tsnsrv CLI default (-stripPrefix=true)".
        rule: Cow<'static, str>,
    },
    /// Computed from other values (toURL from urlParts, a field of `defaults`).
    Derived {
        /// How.
        rule: Cow<'static, str>,
        /// From where.
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        from: Vec<Location>,
    },
}

/// A value with its origin, or the reason it cannot be known.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sourced<T> {
    /// Known.
    Known {
        /// The value.
        value: T,
        /// Its origin.
        source: Source,
    },
    /// Depends on something outside the inputs.
    Unknown {
        /// Why, e.g. "`config.services.jellyfin.port` is not set in the files read".
        reason: String,
        /// Where the dependency arose.
        #[serde(skip_serializing_if = "Option::is_none")]
        location: Option<Location>,
    },
}

impl<T> Sourced<T> {
    /// A value declared at a location.
    pub fn declared(value: T, location: Option<Location>) -> Self {
        Sourced::Known { value, source: Source::Declared { location } }
    }

    /// A flavour default.
    pub fn default(value: T, rule: impl Into<Cow<'static, str>>) -> Self {
        Sourced::Known { value, source: Source::Default { rule: rule.into() } }
    }

    /// A derived value.
    pub fn derived(value: T, rule: impl Into<Cow<'static, str>>, from: Vec<Location>) -> Self {
        Sourced::Known { value, source: Source::Derived { rule: rule.into(), from } }
    }

    /// An unknown value.
    pub fn unknown(reason: impl Into<String>, location: Option<Location>) -> Self {
        Sourced::Unknown { reason: reason.into(), location }
    }

    /// The value when known.
    pub fn known(&self) -> Option<&T> {
        match self {
            Sourced::Known { value, .. } => Some(value),
            Sourced::Unknown { .. } => None,
        }
    }

    /// The location a declared value was written at, or where an unknown arose.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Sourced::Known { source: Source::Declared { location }, .. } => location.as_ref(),
            Sourced::Known { source: Source::Derived { from, .. }, .. } => from.first(),
            Sourced::Known { .. } => None,
            Sourced::Unknown { location, .. } => location.as_ref(),
        }
    }
}

/// Options by canonical name (see [`crate::options::OPTIONS`]): stored and serialised under
/// their tsnsrv names, asked for by [`Opt`]. The typed reads (a URL, a duration, a listen
/// address, headers) are in [`crate::typed`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Options(BTreeMap<Cow<'static, str>, Sourced<Json>>);

impl Options {
    /// The option's entry.
    pub fn get(&self, opt: Opt) -> Option<&Sourced<Json>> {
        self.0.get(opt.name())
    }

    /// The entry under a name read from an input, which may be no tsnsrv option at all (a
    /// misspelt attribute is declared all the same).
    pub fn get_named(&self, name: &str) -> Option<&Sourced<Json>> {
        self.0.get(name)
    }

    /// Sets an option.
    pub fn set(&mut self, opt: Opt, v: Sourced<Json>) {
        self.0.insert(Cow::Borrowed(opt.name()), v);
    }

    /// Sets an entry under a name read from an input (see [`Options::get_named`]).
    pub fn set_named(&mut self, name: impl Into<Cow<'static, str>>, v: Sourced<Json>) {
        self.0.insert(name.into(), v);
    }

    /// Removes an option.
    pub fn remove(&mut self, opt: Opt) -> Option<Sourced<Json>> {
        self.0.remove(opt.name())
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every entry, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&Cow<'static, str>, &Sourced<Json>)> {
        self.0.iter()
    }

    /// A known string option.
    pub fn str(&self, opt: Opt) -> Option<&str> {
        self.get(opt)?.known()?.as_str()
    }

    /// A known boolean option.
    pub fn bool(&self, opt: Opt) -> Option<bool> {
        self.get(opt)?.known()?.as_bool()
    }

    /// A known list-of-strings option.
    pub fn list(&self, opt: Opt) -> Option<Vec<String>> {
        let v = self.get(opt)?.known()?.as_array()?;
        Some(v.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
    }

    /// A known string map option.
    pub fn map(&self, opt: Opt) -> Option<BTreeMap<String, String>> {
        let v = self.get(opt)?.known()?.as_object()?;
        Some(
            v.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
        )
    }

    /// Whether the option is set and known.
    pub fn is_known(&self, opt: Opt) -> bool {
        self.get(opt).is_some_and(|s| s.known().is_some())
    }
}

impl IntoIterator for Options {
    type Item = (Cow<'static, str>, Sourced<Json>);
    type IntoIter = std::collections::btree_map::IntoIter<Cow<'static, str>, Sourced<Json>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Options {
    type Item = (&'a Cow<'static, str>, &'a Sourced<Json>);
    type IntoIter = std::collections::btree_map::Iter<'a, Cow<'static, str>, Sourced<Json>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// How well tailshift understood one attribute of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coverage {
    /// Read and known.
    Understood,
    /// Declared, but not something tailshift can carry over (or not an option at all).
    Unsupported,
    /// Depends on something outside the inputs.
    Unknown,
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Coverage::Understood => "understood",
            Coverage::Unsupported => "unsupported",
            Coverage::Unknown => "unknown",
        })
    }
}

/// One row of the coverage report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageEntry {
    /// The attribute (option name).
    pub attribute: String,
    /// The verdict.
    pub status: Coverage,
    /// Why, for anything but understood.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where the attribute is declared, or where its unknown value arose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// One tsnsrv service: one tailnet node today.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// The node name (`-name`), i.e. `<name>.<tailnet>`.
    pub name: String,
    /// The host that runs it.
    pub host: Sourced<String>,
    /// The tsnsrv flavour in force on that host.
    pub flavour: Flavour,
    /// The input it was read from.
    pub input: String,
    /// Where the service is declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Options as written in the input.
    pub declared: Options,
    /// Options as tsnsrv really ran with them (flavour defaults applied).
    pub effective: Options,
    /// Per-attribute coverage.
    pub coverage: Vec<CoverageEntry>,
    /// What the inputs say about this service in particular (a unit that cannot have started,
    /// an option the module ignored, a broken rule). Also listed in [`Inventory::diagnostics`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Diagnostic>,
    /// Whether it exists for certain (absent from the JSON when certain).
    #[serde(default, skip_serializing_if = "Presence::is_certain")]
    pub presence: Presence,
    /// Already moved to the proxy: tailshift's NixOS module, reading the moves file that
    /// `migrate apply`'s `nix` adapter wrote, takes its tsnsrv node away (absent otherwise). Not
    /// part of what a plan is judged stale by: applying a wave never makes the next one stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved: Option<Moved>,
}

/// How tailshift's NixOS module has moved a service, as its moves file
/// (`tailshift.moves/v1`) says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    /// `unit_disabled` (its `tsnsrv-<name>` unit), `left_shared_process` (no longer in the
    /// fork's `tsnsrv-all` YAML) or `repointed` (a keep-node service whose node now forwards
    /// to `to_url`).
    pub how: String,
    /// For `repointed`: the node's new upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_url: Option<String>,
    /// The moves file.
    pub file: String,
    /// Where `services.tailshift.moves` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

impl Service {
    /// Whether the inputs show that tsnsrv cannot have started for this service: it is down
    /// today, so moving it cannot break anything that works now.
    pub fn cannot_start(&self) -> bool {
        self.findings.iter().any(|d| d.code == DiagnosticCode::UnitCannotStart)
    }
}

/// One host's tsnsrv setup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Host name.
    pub name: Sourced<String>,
    /// tsnsrv flavour.
    pub flavour: Flavour,
    /// How the flavour was decided.
    pub flavour_basis: FlavourBasis,
    /// Process-level metrics address (the fork's `prometheusAddr`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus_addr: Option<Sourced<Json>>,
    /// The inputs that described it.
    pub inputs: Vec<String>,
    /// False when some definition read for this host contributes service names that cannot
    /// be known (some service may be missing); see [`Host::incomplete`].
    #[serde(default = "yes")]
    pub complete: bool,
    /// Why the host's services may be incomplete, each with where.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<Incomplete>,
    /// For a host of a flake: its `nixosConfigurations` attribute (`name` is its
    /// `networking.hostName` when the files set one, else this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flake_attr: Option<String>,
    /// The module files read for it (for a flake's host).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<String>,
}

fn yes() -> bool {
    true
}

/// A reason an inventory may miss services.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incomplete {
    /// What cannot be known, and why.
    pub reason: String,
    /// Where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// One input read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// Path as given.
    pub path: String,
    /// What it was read as.
    pub kind: InputKind,
}

/// The kinds of input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    /// A NixOS module or host file.
    Nix,
    /// `nix eval --json` of `config.services.tsnsrv`.
    NixEval,
    /// `systemctl cat 'tsnsrv-*'` output (unit files and their start scripts).
    Unit,
    /// A unit's start script.
    Script,
    /// A `/proc/<pid>/cmdline` copy (NUL-separated).
    Cmdline,
    /// tsnsrv's `Serving ...` startup log lines.
    Log,
    /// The fork's multi-service YAML.
    Yaml,
    /// A flake (`DIR` holding `flake.nix`, or `DIR#ATTR`).
    Flake,
}

impl InputKind {
    /// The `--input-kind` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Nix => "nix",
            InputKind::NixEval => "nix-eval",
            InputKind::Unit => "unit",
            InputKind::Script => "script",
            InputKind::Cmdline => "cmdline",
            InputKind::Log => "log",
            InputKind::Yaml => "yaml",
            InputKind::Flake => "flake",
        }
    }

    /// The kind an `as_str` spelling names.
    pub fn parse(s: &str) -> Option<InputKind> {
        [
            InputKind::Nix,
            InputKind::NixEval,
            InputKind::Unit,
            InputKind::Script,
            InputKind::Cmdline,
            InputKind::Log,
            InputKind::Yaml,
            InputKind::Flake,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Everything read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// [`SCHEMA`].
    pub schema: String,
    /// Inputs in the order read.
    pub inputs: Vec<Input>,
    /// Hosts found.
    pub hosts: Vec<Host>,
    /// Services, sorted by host then name.
    pub services: Vec<Service>,
    /// Diagnostics about the inputs.
    pub diagnostics: Vec<Diagnostic>,
    /// False when some definition in the inputs contributes service names that cannot be
    /// known: some service may be missing (every host's reasons are in [`Host::incomplete`]).
    #[serde(default = "yes")]
    pub complete: bool,
}

impl Inventory {
    /// An empty inventory.
    pub fn new() -> Self {
        Inventory {
            schema: SCHEMA.to_string(),
            inputs: Vec::new(),
            hosts: Vec::new(),
            services: Vec::new(),
            diagnostics: Vec::new(),
            complete: true,
        }
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }

    /// A service by host and name.
    pub fn service(&self, host: &str, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name && s.host.known().is_some_and(|h| h == host))
    }
}

impl Default for Inventory {
    fn default() -> Self {
        Self::new()
    }
}
