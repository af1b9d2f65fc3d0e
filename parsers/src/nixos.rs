//! `services.tsnsrv` as the NixOS module system merges it, read from Nix files by the
//! evaluator, or from `nix eval --json` output (see [`crate::nix_json`]).

use crate::diagnostic::Diagnostic;
use crate::diagnostic::DiagnosticCode;
use crate::inventory::{Options, Sourced};
use crate::nix::eval::EvalError;
use crate::nix::modules::{Declared, Keys, Unreadable};
use crate::nix::{Eval, Unknown};
use crate::options::Opt;
use crate::source::{Location, SourceMap, Span};
use serde_json::Value as Json;
use std::path::PathBuf;
use std::rc::Rc;

/// One service as the module declares it.
#[derive(Clone, Debug)]
pub struct DeclaredService {
    /// The attribute name (the node name).
    pub name: String,
    /// Where it is first defined.
    pub location: Option<Location>,
    /// Its attributes.
    pub declared: Options,
    /// Whether it exists for certain, or only under a condition that cannot be known.
    pub presence: crate::inventory::Presence,
}

/// What a host's configuration says about tsnsrv.
#[derive(Clone, Debug)]
pub struct ModuleView {
    /// `networking.hostName` (or `--host`).
    pub host: Option<Sourced<String>>,
    /// `services.tsnsrv.separateProcesses` (fork).
    pub separate_processes: Option<Sourced<bool>>,
    /// `services.tsnsrv.prometheusAddr` (fork).
    pub prometheus_addr: Option<Sourced<Json>>,
    /// `services.tsnsrv.enable`.
    pub enable: Option<Sourced<bool>>,
    /// `services.tsnsrv.defaults`.
    pub defaults: Options,
    /// `services.tsnsrv.services`, sorted by name.
    pub services: Vec<DeclaredService>,
    /// Top-level `services.tsnsrv` attributes that are not options.
    pub unknown_top: Vec<(String, Option<Location>)>,
    /// Definitions of `services.tsnsrv.services` whose service names cannot be known: some
    /// service may be missing. Each has already been said as a `services_unreadable` error.
    pub unreadable: Vec<(String, Option<Location>)>,
    /// The tsnsrv flavour the host's flake inputs show (with why and where), when they do.
    pub flavour_hint: Option<(crate::inventory::Flavour, String, Option<Location>)>,
    /// What tailshift's own NixOS module moved (`services.tailshift.moves`), when it is used.
    pub moves: Option<MovesView>,
}

/// The moves file tailshift's NixOS module reads (`tailshift.moves/v1`; every field optional).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MovesView {
    /// The file.
    pub file: String,
    /// Where `services.tailshift.moves` is set.
    pub location: Option<Location>,
    /// `disabled_units`: units the module disables (`tsnsrv-<name>`).
    pub disabled_units: std::collections::BTreeSet<String>,
    /// `repoints`: keep-node services and their nodes' new upstream.
    pub repoints: std::collections::BTreeMap<String, String>,
    /// `shared_processes`: a shared unit (`tsnsrv-all`) and the services it still runs.
    pub shared: std::collections::BTreeMap<String, Vec<String>>,
}

/// The moves file's schema.
pub const MOVES_SCHEMA: &str = "tailshift.moves/v1";

impl MovesView {
    /// Reads a moves file.
    pub fn read(file: &str, location: Option<Location>) -> Result<MovesView, String> {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            // Not written yet (no wave applied): nothing moved, as the module reads it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(MovesView { file: file.to_string(), location, ..MovesView::default() });
            }
            Err(e) => return Err(format!("{file}: {e}")),
        };
        let v: Json =
            serde_json::from_str(&text).map_err(|e| format!("{file}: not a moves file: {e}"))?;
        let schema = v.get("schema").and_then(Json::as_str).unwrap_or(MOVES_SCHEMA);
        if schema != MOVES_SCHEMA {
            return Err(format!("{file}: schema {schema:?}, expected {MOVES_SCHEMA}"));
        }
        let strings = |v: Option<&Json>| -> Vec<String> {
            v.and_then(Json::as_array)
                .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                .unwrap_or_default()
        };
        let mut m = MovesView { file: file.to_string(), location, ..MovesView::default() };
        m.disabled_units = strings(v.get("disabled_units")).into_iter().collect();
        if let Some(r) = v.get("repoints").and_then(Json::as_object) {
            for (k, u) in r {
                m.repoints.insert(k.clone(), u.as_str().unwrap_or_default().to_string());
            }
        }
        if let Some(sp) = v.get("shared_processes").and_then(Json::as_object) {
            for (unit, p) in sp {
                m.shared.insert(unit.clone(), strings(p.get("services")));
            }
        }
        Ok(m)
    }

    /// How the module moved one service of a host running `flavour`, if it did.
    pub fn moved(&self, name: &str, flavour: crate::inventory::Flavour) -> Option<crate::Moved> {
        let moved = |how: &str, to_url: Option<String>| crate::Moved {
            how: how.into(),
            to_url,
            file: self.file.clone(),
            location: self.location.clone(),
        };
        if let Some(u) = self.repoints.get(name) {
            return Some(moved("repointed", Some(u.clone())));
        }
        if flavour == crate::inventory::Flavour::ForkAll {
            let left = self.shared.get("tsnsrv-all")?;
            return (!left.iter().any(|s| s == name)).then(|| moved("left_shared_process", None));
        }
        self.disabled_units
            .contains(&format!("tsnsrv-{name}"))
            .then(|| moved("unit_disabled", None))
    }
}

impl ModuleView {
    /// A view with nothing declared.
    pub fn empty(host: Option<Sourced<String>>) -> Self {
        ModuleView {
            host,
            separate_processes: None,
            prometheus_addr: None,
            enable: None,
            defaults: Options::default(),
            services: Vec::new(),
            unknown_top: Vec::new(),
            unreadable: Vec::new(),
            flavour_hint: None,
            moves: None,
        }
    }
}

/// The name of tailshift's own `lib` file: locations inside it are not the user's.
const LIB_FILE: &str = "<tailshift lib>";

fn user_location(sources: &SourceMap, span: Option<Span>) -> Option<Location> {
    let span = span?;
    let loc = sources.location(span);
    (&*loc.file != LIB_FILE).then_some(loc)
}

fn to_sourced(sources: &SourceMap, d: Declared) -> Sourced<Json> {
    match d.value {
        Ok(v) => Sourced::declared(v, user_location(sources, d.span)),
        Err(u) => unknown_of(sources, &u, d.span),
    }
}

fn unknown_of(sources: &SourceMap, u: &Unknown, fallback: Option<Span>) -> Sourced<Json> {
    Sourced::unknown(
        u.describe(),
        user_location(sources, u.span).or_else(|| user_location(sources, fallback)),
    )
}

fn eval_failure(
    sources: &SourceMap,
    e: &EvalError,
    what: &str,
    diags: &mut Vec<Diagnostic>,
) -> Sourced<Json> {
    let loc = user_location(sources, e.span);
    diags.push(
        Diagnostic::error(DiagnosticCode::EvalError, format!("{what}: {}", e.message))
            .at(loc.clone())
            .len(e.span.map(|s| s.end - s.start).unwrap_or(0)),
    );
    Sourced::unknown(format!("evaluation failed: {}", e.message), loc)
}

/// Evaluates host modules and reads `services.tsnsrv` from the merged configuration.
pub fn read_nixos(
    ev: &mut Eval,
    roots: &[PathBuf],
    host: Option<&str>,
) -> (ModuleView, Vec<Diagnostic>, bool) {
    let mut diags = Vec::new();
    let loaded = ev.load_modules(roots, host);
    let sources = ev.sources.clone();
    if let Err(e) = &loaded {
        if e.kind != crate::nix::ErrorKind::Syntax {
            let loc = user_location(&sources, e.span);
            diags.push(Diagnostic::error(DiagnosticCode::EvalError, e.message.clone()).at(loc));
        }
        diags.append(&mut ev.diagnostics);
        return (ModuleView::empty(None), diags, false);
    }
    let view = read_loaded(ev, &mut diags);
    (view, diags, true)
}

/// Reads `services.tsnsrv` from modules already loaded into `ev` (diagnostics, the evaluator's
/// included, are appended to `diags`).
pub fn read_loaded(ev: &mut Eval, diags: &mut Vec<Diagnostic>) -> ModuleView {
    let sources = ev.sources.clone();
    let mut view = ModuleView::empty(read_host(ev, &sources, diags));
    let tsnsrv = |k: &'static str| ["services", "tsnsrv", k];
    view.separate_processes =
        read_json(ev, &sources, &tsnsrv("separateProcesses"), diags).map(as_bool);
    view.enable = read_json(ev, &sources, &tsnsrv("enable"), diags).map(as_bool);
    view.prometheus_addr = read_json(ev, &sources, &tsnsrv("prometheusAddr"), diags);
    view.unknown_top = read_unknown_top(ev, &sources, diags);
    view.moves = read_moves(ev, &sources, diags);
    view.defaults = read_defaults(ev, &sources, diags);
    // Paths share their segments (`Rc<str>`): 5,000 services read without re-allocating them.
    let base: Vec<Rc<str>> = vec!["services".into(), "tsnsrv".into(), "services".into()];
    let keys = match ev.config_keys_full(&base) {
        Ok(k) => k,
        Err(e) => Keys {
            names: Vec::new(),
            unreadable: vec![Unreadable {
                reason: format!("it cannot be evaluated: {}", e.message),
                span: e.span,
            }],
        },
    };
    for (msg, span) in ev.missing_modules() {
        // Said already (import_not_found, untracked_file); an imported module that cannot be
        // read may declare services.
        view.unreadable.push((msg, user_location(&sources, span)));
    }
    for u in &keys.unreadable {
        let loc = user_location(&sources, u.span);
        let msg = format!(
            "the names of the services defined here cannot be known, so some service may be missing from the inventory: {}",
            u.reason
        );
        diags.push(
            Diagnostic::error(DiagnosticCode::ServicesUnreadable, msg.clone()).at(loc.clone()),
        );
        view.unreadable.push((msg, loc));
    }
    for (name, cond) in keys.names {
        let service = read_service(ev, &sources, &base, name, cond, &view.defaults, diags);
        view.services.push(service);
    }
    diags.append(&mut ev.diagnostics);
    view
}

/// `services.tailshift.moves` (tailshift's own module), when set: the moves file it reads.
fn read_moves(
    ev: &mut Eval,
    sources: &SourceMap,
    diags: &mut Vec<Diagnostic>,
) -> Option<MovesView> {
    let at = read_json(ev, sources, &["services", "tailshift", "moves"], diags)?;
    let location = match &at {
        Sourced::Known { source: crate::inventory::Source::Declared { location }, .. } => {
            location.clone()
        }
        Sourced::Unknown { location, .. } => location.clone(),
        _ => None,
    };
    let problem = match &at {
        Sourced::Known { value: Json::Null, .. } => return None,
        Sourced::Known { value: Json::String(file), .. } => {
            match MovesView::read(file, location.clone()) {
                Ok(m) => return Some(m),
                Err(e) => e,
            }
        }
        Sourced::Known { value, .. } => format!("not a path: {value}"),
        Sourced::Unknown { reason, .. } => reason.clone(),
    };
    diags.push(
        Diagnostic::warning(
            DiagnosticCode::MovesUnreadable,
            format!(
                "services.tailshift.moves: {problem}; the services it moved are not known, and are listed as not moved"
            ),
        )
        .at(location),
    );
    None
}

/// `networking.hostName`, when the files set it.
fn read_host(
    ev: &mut Eval,
    sources: &SourceMap,
    diags: &mut Vec<Diagnostic>,
) -> Option<Sourced<String>> {
    match ev.config_read(&["networking", "hostName"]) {
        Ok(Some(d)) => Some(match to_sourced(sources, d) {
            Sourced::Known { value: Json::String(s), source } => {
                Sourced::Known { value: s, source }
            }
            Sourced::Known { value, .. } => {
                Sourced::unknown(format!("networking.hostName is not a string: {value}"), None)
            }
            Sourced::Unknown { reason, location } => Sourced::Unknown { reason, location },
        }),
        Ok(None) => None,
        Err(e) => {
            eval_failure(sources, &e, "networking.hostName", diags);
            None
        }
    }
}

/// A config path as JSON with where it was defined; `None` when nothing defines it, unknown
/// (and said) when it fails to evaluate.
fn read_json(
    ev: &mut Eval,
    sources: &SourceMap,
    path: &[&str],
    diags: &mut Vec<Diagnostic>,
) -> Option<Sourced<Json>> {
    match ev.config_read(path) {
        Ok(Some(d)) => Some(to_sourced(sources, d)),
        Ok(None) => None,
        Err(e) => Some(eval_failure(sources, &e, &path.join("."), diags)),
    }
}

/// A Boolean option's value; anything else is unknown (the module would refuse it).
fn as_bool(s: Sourced<Json>) -> Sourced<bool> {
    match s {
        Sourced::Known { value: Json::Bool(b), source } => Sourced::Known { value: b, source },
        Sourced::Known { value, source } => Sourced::unknown(
            format!("not a Boolean: {value}"),
            match source {
                crate::inventory::Source::Declared { location } => location,
                _ => None,
            },
        ),
        Sourced::Unknown { reason, location } => Sourced::Unknown { reason, location },
    }
}

/// Top-level `services.tsnsrv` attributes that are not options of the module.
fn read_unknown_top(
    ev: &mut Eval,
    sources: &SourceMap,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(String, Option<Location>)> {
    let mut out = Vec::new();
    match ev.config_keys(&["services".into(), "tsnsrv".into()]) {
        Ok(keys) => {
            for k in keys {
                if !matches!(
                    &*k,
                    "enable"
                        | "separateProcesses"
                        | "prometheusAddr"
                        | "defaults"
                        | "services"
                        | "package"
                ) {
                    let span = ev.config_span(&["services", "tsnsrv", &k]).ok().flatten();
                    out.push((k.to_string(), user_location(sources, span)));
                }
            }
        }
        Err(e) => {
            eval_failure(sources, &e, "services.tsnsrv", diags);
        }
    }
    out
}

/// `services.tsnsrv.defaults`, attribute by attribute.
fn read_defaults(ev: &mut Eval, sources: &SourceMap, diags: &mut Vec<Diagnostic>) -> Options {
    let mut defaults = Options::default();
    match ev.config_keys(&["services".into(), "tsnsrv".into(), "defaults".into()]) {
        Ok(keys) => {
            for k in keys {
                if let Some(v) =
                    read_json(ev, sources, &["services", "tsnsrv", "defaults", &k], diags)
                {
                    defaults.set_named(k.to_string(), v);
                }
            }
        }
        Err(e) => {
            eval_failure(sources, &e, "services.tsnsrv.defaults", diags);
        }
    }
    defaults
}

/// One service of `services.tsnsrv.services` (`base`), present under `cond` when that cannot
/// be known.
fn read_service(
    ev: &mut Eval,
    sources: &SourceMap,
    base: &[Rc<str>],
    name: Rc<str>,
    cond: Option<Rc<Unknown>>,
    defaults: &Options,
    diags: &mut Vec<Diagnostic>,
) -> DeclaredService {
    let mut path = base.to_vec();
    path.push(name.clone());
    let presence = match &cond {
        None => crate::inventory::Presence::Certain,
        Some(u) => crate::inventory::Presence::Conditional {
            condition: u.what.clone().unwrap_or_else(|| u.describe()),
            reason: u.describe(),
            location: user_location(sources, u.span),
        },
    };
    // A conditional service's values are read as if it were present.
    let assumed =
        if cond.is_some() { ev.conditions_at(&path).unwrap_or_default() } else { Vec::new() };
    ev.assume_conditions(assumed);
    let location =
        ev.config_span_path(&path).ok().flatten().and_then(|s| user_location(sources, Some(s)));
    let mut declared = Options::default();
    let attrs = match ev.config_keys(&path) {
        Ok(a) => a,
        Err(e) => {
            eval_failure(sources, &e, &format!("services.tsnsrv.services.{name}"), diags);
            Vec::new()
        }
    };
    for a in attrs {
        path.push(a.clone());
        // An option the configuration itself adds to every service (`public`, say) is not
        // tsnsrv's: it shapes other values, and is not one of the service's options.
        if crate::options::spec(&a).is_none() && ev.is_user_suboption(&path) {
            path.pop();
            continue;
        }
        let v = match ev.config_read_path(&path) {
            Ok(Some(d)) => Some(to_sourced(sources, d)),
            Ok(None) => None,
            Err(e) => Some(eval_failure(
                sources,
                &e,
                &format!("services.tsnsrv.services.{name}.{a}"),
                diags,
            )),
        };
        path.pop();
        if let Some(v) = v {
            declared.set_named(a.to_string(), v);
        }
    }
    // A service built by a lib function (listToAttrs) has no binding of its own in the
    // user's files: its first attribute's binding locates it instead.
    let location =
        location.or_else(|| declared.iter().map(|(_, v)| v).find_map(|v| v.location().cloned()));
    ev.assume_conditions(Vec::new());
    complete_url_parts(&mut declared, defaults);
    DeclaredService { name: name.to_string(), location, declared, presence }
}

/// A service's `urlParts` as the module merges it: each part it does not set is
/// `defaults.urlParts`' (and `protocol` is `"http"` when neither sets it).
fn complete_url_parts(declared: &mut Options, defaults: &Options) {
    let Some(Sourced::Known { value: Json::Object(parts), source }) = declared.get(Opt::UrlParts)
    else {
        return;
    };
    let mut parts = parts.clone();
    let source = source.clone();
    let from_defaults = match defaults.get(Opt::UrlParts) {
        Some(Sourced::Known { value: Json::Object(d), .. }) => Some(d.clone()),
        Some(Sourced::Unknown { .. }) => None,
        _ => Some(serde_json::Map::new()),
    };
    for key in ["protocol", "host", "port"] {
        if parts.contains_key(key) {
            continue;
        }
        match from_defaults.as_ref().and_then(|d| d.get(key)) {
            Some(v) => {
                parts.insert(key.into(), v.clone());
            }
            None if key == "protocol" && from_defaults.is_some() => {
                parts.insert(key.into(), Json::String("http".into()));
            }
            // Left out: the module would refuse it, or defaults.urlParts cannot be known.
            None => {}
        }
    }
    declared.set(Opt::UrlParts, Sourced::Known { value: Json::Object(parts), source });
}
