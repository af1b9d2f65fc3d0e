//! Flakes: `migrate inventory DIR` where `DIR` holds a `flake.nix`, or `DIR#ATTR`.
//!
//! The flake's `outputs` is called with `self` bound to the flake's own tree and its inputs
//! (`nix/flake.nix` says how each kind of input is understood). Every
//! `nixosConfigurations.<attr>` (and every Colmena node) is a host, read in an evaluator of its
//! own from the modules and `specialArgs` its `nixosSystem` call was given.

use crate::diagnostic::Diagnostic;
use crate::diagnostic::DiagnosticCode;
use crate::inventory::Flavour;
use crate::nix::eval::entry;
use crate::nix::value::dummy_span;
use crate::nix::value::{AttrMap, Thunk, Value, uncertain_names};
use crate::nix::{Eval, EvalError};
use crate::nixos::{self, ModuleView};
use crate::source::{Location, SourceMap, Span};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// tailshift's reading of a flake's inputs and outputs.
pub const FLAKE_NIX: &str = include_str!("nix/flake.nix");

/// Whether a directory is a flake.
pub fn is_flake_dir(dir: &Path) -> bool {
    dir.join("flake.nix").is_file()
}

/// Splits `DIR#ATTR` when `DIR` is a flake: the directory and the selected attribute.
pub fn split_flake_ref(arg: &Path) -> Option<(PathBuf, Option<String>)> {
    let s = arg.to_str()?;
    let (dir, attr) = match s.rsplit_once('#') {
        Some((d, a)) => (PathBuf::from(if d.is_empty() { "." } else { d }), Some(a.to_string())),
        None => (arg.to_path_buf(), None),
    };
    let attr = attr.map(|a| a.strip_prefix("nixosConfigurations.").unwrap_or(&a).to_string());
    is_flake_dir(&dir).then_some((dir, attr))
}

/// How tailshift understands one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlakeInput {
    /// Its name in `inputs`.
    pub name: String,
    /// Its `url`, when given.
    pub url: Option<String>,
    /// `nixpkgs`, `flake-parts`, `flake-utils`, `colmena`, `snowfall`, `tsnsrv`, `tailshift`
    /// or `opaque`.
    pub kind: &'static str,
}

fn classify(name: &str, url: Option<&str>) -> &'static str {
    let u = url.unwrap_or("").to_ascii_lowercase();
    let n = name.to_ascii_lowercase();
    if u.contains("tsnsrv") || n == "tsnsrv" {
        "tsnsrv"
    } else if u.contains("tailshift") || n == "tailshift" {
        // tailshift's own flake: its module is understood (services.tailshift, the moves).
        "tailshift"
    } else if u.contains("hercules-ci/flake-parts") || n == "flake-parts" {
        "flake-parts"
    } else if u.contains("numtide/flake-utils") || n == "flake-utils" {
        "flake-utils"
    } else if u.contains("zhaofengli/colmena") || n == "colmena" {
        "colmena"
    } else if u.contains("snowfallorg/lib") || n == "snowfall-lib" {
        "snowfall"
    } else if n == "nixpkgs"
        || n.starts_with("nixpkgs-")
        || n.starts_with("nixpkgs_")
        || u.contains("nixos/nixpkgs")
        || u.starts_with("nixpkgs/")
        || u.contains("nixpkgs.tar")
    {
        "nixpkgs"
    } else {
        "opaque"
    }
}

/// One host of a flake, read.
pub struct FlakeHost {
    /// `nixosConfigurations.<attr>` (or the Colmena node's name).
    pub attr: String,
    /// What its modules say.
    pub view: ModuleView,
    /// Every module file read for it.
    pub modules: Vec<String>,
}

/// Everything read from a flake.
pub struct FlakeRead {
    /// The hosts selected, read.
    pub hosts: Vec<FlakeHost>,
    /// Its inputs, as understood.
    pub inputs: Vec<FlakeInput>,
    /// Diagnostics (each host's included).
    pub diagnostics: Vec<Diagnostic>,
    /// Definitions of hosts that cannot be read (the host list or one host's `nixosSystem`):
    /// services may be missing.
    pub unreadable: Vec<(String, Option<Location>)>,
    /// The tsnsrv flavour the inputs and `flake.lock` show, with why and where.
    pub flavour: Option<(Flavour, String, Option<Location>)>,
}

struct Evaluated {
    ev: Eval,
    outputs: Value,
    inputs: Vec<FlakeInput>,
}

fn eval_flake(dir: &Path) -> Result<Evaluated, Box<(EvalError, Eval)>> {
    let mut ev = Eval::new(SourceMap::new());
    ev.git = crate::nix::eval::GitView::of(dir).map(Rc::new);
    let abs = crate::nix::eval::normalize(&std::env::current_dir().unwrap_or_default().join(dir));
    let flake = match ev.eval_file(&abs.join("flake.nix")) {
        Ok(v) => v,
        Err(e) => return Err(Box::new((e, ev))),
    };
    let inputs = match read_inputs(&mut ev, &flake) {
        Ok(i) => i,
        Err(e) => return Err(Box::new((e, ev))),
    };
    let mut kinds = AttrMap::new();
    for i in &inputs {
        kinds.insert(i.name.as_str().into(), entry(Value::string(i.kind)));
    }
    let run = (|| {
        let lib = ev.lib()?;
        let f = ev.eval_text("<tailshift flake>", FLAKE_NIX)?;
        let mut args = AttrMap::new();
        args.insert("lib".into(), entry(lib));
        args.insert("flake".into(), entry(flake.clone()));
        args.insert("src".into(), entry(Value::Path(Rc::new(abs.clone()))));
        args.insert("kinds".into(), entry(Value::Attrs(Rc::new(kinds))));
        let span = dummy_span();
        let r = ev.apply(f, Thunk::value(Value::Attrs(Rc::new(args))), span)?;
        let t = ev.select(&r, "outputs", span)?.expect("the prelude returns outputs");
        ev.force(&t)
    })();
    match run {
        Ok(outputs) => Ok(Evaluated { ev, outputs, inputs }),
        Err(e) => Err(Box::new((e, ev))),
    }
}

/// The flake's `inputs`, each classified, plus inputs the `outputs` function names without
/// declaring them.
fn read_inputs(ev: &mut Eval, flake: &Value) -> Result<Vec<FlakeInput>, EvalError> {
    let span = dummy_span();
    let m = ev.attrs_of(flake, span)?;
    let mut out: BTreeMap<String, Option<String>> = BTreeMap::new();
    if let Some(e) = m.get("inputs") {
        let v = ev.force(&e.value.clone())?;
        if let Value::Attrs(inputs) = v {
            for (name, e) in inputs.iter() {
                let url = match ev.force(&e.value.clone())? {
                    Value::Str(s) => Some(s.to_string()),
                    Value::Attrs(spec) => match spec.get("url") {
                        Some(u) => match ev.force(&u.value.clone())? {
                            Value::Str(s) => Some(s.to_string()),
                            _ => None,
                        },
                        None => None,
                    },
                    _ => None,
                };
                out.insert(name.to_string(), url);
            }
        }
    }
    if let Some(o) = m.get("outputs")
        && let Value::Lambda(c) = ev.force(&o.value.clone())?
        && let crate::nix::syntax::Param::Pattern { entries, .. } = &c.def.param
    {
        for (n, _) in entries {
            if &**n != "self" {
                out.entry(n.to_string()).or_insert(None);
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|(name, url)| {
            let kind = classify(&name, url.as_deref());
            FlakeInput { name, url, kind }
        })
        .collect())
}

/// A host's `nixosSystem` arguments: its modules and `specialArgs`.
struct HostArgs {
    modules: Vec<(Thunk, Span)>,
    special: Vec<(Rc<str>, Thunk)>,
}

/// The hosts a flake's outputs define: `nixosConfigurations.<attr>` and Colmena nodes, each
/// with its binding; and what makes the host list unknowable.
#[allow(clippy::type_complexity)]
fn host_list(
    ev: &mut Eval,
    outputs: &Value,
) -> Result<(Vec<(String, Thunk, Option<Span>, bool)>, Vec<(String, Option<Span>)>), EvalError> {
    let mut hosts = Vec::new();
    let mut unreadable = Vec::new();
    let m = ev.attrs_of(outputs, dummy_span())?;
    if let Some(u) = uncertain_names(&m) {
        unreadable
            .push((format!("the flake's outputs cannot all be known: {}", u.describe()), u.span));
    }
    if let Some(e) = m.get("nixosConfigurations") {
        match ev.force(&e.value.clone())? {
            Value::Attrs(cfgs) => {
                if let Some(u) = uncertain_names(&cfgs) {
                    unreadable.push((
                        format!(
                            "the names of nixosConfigurations cannot all be known: {}",
                            u.describe()
                        ),
                        u.span.or(e.span),
                    ));
                }
                for (k, h) in cfgs.iter() {
                    if &**k != crate::nix::value::REST_KEY {
                        hosts.push((k.to_string(), h.value.clone(), h.span, false));
                    }
                }
            }
            Value::Unknown(u) => unreadable.push((
                format!("nixosConfigurations cannot be known: {}", u.describe()),
                u.span.or(e.span),
            )),
            _ => {}
        }
    }
    for key in ["colmena", "colmenaHive"] {
        let Some(e) = m.get(key) else { continue };
        match ev.force(&e.value.clone())? {
            Value::Attrs(nodes) => {
                for (k, n) in nodes.iter() {
                    if matches!(&**k, "meta" | "defaults" | "_tailshiftHive")
                        || &**k == crate::nix::value::REST_KEY
                        || hosts.iter().any(|(h, ..)| h == &**k)
                    {
                        continue;
                    }
                    let node = n.value.clone();
                    let hive = e.value.clone();
                    let name: Rc<str> = k.clone();
                    // A Colmena node: `defaults` and the node's module, with meta's specialArgs.
                    let t = Thunk::native(move |ev| colmena_host(ev, &hive, &name, node.clone()));
                    hosts.push((k.to_string(), t, n.span, true));
                }
            }
            Value::Unknown(u) => unreadable
                .push((format!("{key} cannot be known: {}", u.describe()), u.span.or(e.span))),
            _ => {}
        }
    }
    Ok((hosts, unreadable))
}

/// A Colmena node as a `nixosSystem` value, so both read the same way.
fn colmena_host(
    ev: &mut Eval,
    hive: &Thunk,
    name: &Rc<str>,
    node: Thunk,
) -> crate::nix::EvalResult {
    let hive = ev.force(hive)?;
    let hm = ev.attrs_of(&hive, dummy_span())?;
    let mut modules = Vec::new();
    if let Some(d) = hm.get("defaults") {
        modules.push(d.value.clone());
    }
    modules.push(node);
    let mut special = AttrMap::new();
    if let Some(meta) = hm.get("meta")
        && let Value::Attrs(meta) = ev.force(&meta.value.clone())?
    {
        for key in ["specialArgs"] {
            if let Some(s) = meta.get(key)
                && let Value::Attrs(s) = ev.force(&s.value.clone())?
            {
                special.extend(s.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        if let Some(ns) = meta.get("nodeSpecialArgs")
            && let Value::Attrs(ns) = ev.force(&ns.value.clone())?
            && let Some(mine) = ns.get(name)
            && let Value::Attrs(mine) = ev.force(&mine.value.clone())?
        {
            special.extend(mine.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    special.insert("name".into(), entry(Value::Str(name.clone())));
    let mut args = AttrMap::new();
    args.insert("modules".into(), entry(Value::List(Rc::new(modules))));
    args.insert("specialArgs".into(), entry(Value::Attrs(Rc::new(special))));
    let mut out = AttrMap::new();
    out.insert("_type".into(), entry(Value::string("tailshift-nixos")));
    out.insert("args".into(), entry(Value::Attrs(Rc::new(args))));
    Ok(Value::Attrs(Rc::new(out)))
}

fn host_args(ev: &mut Eval, host: &Thunk) -> Result<Result<HostArgs, String>, EvalError> {
    let v = ev.force(host)?;
    let m = match &v {
        Value::Attrs(m) => m.clone(),
        Value::Unknown(u) => return Ok(Err(u.describe())),
        other => {
            return Ok(Err(format!(
                "it is {}, not a NixOS system",
                crate::nix::eval::article(other)
            )));
        }
    };
    let is_system = match m.get("_type") {
        Some(t) => matches!(ev.force(&t.value.clone())?, Value::Str(s) if &*s == "tailshift-nixos"),
        None => false,
    };
    if !is_system {
        return Ok(Err("it is not built by nixpkgs' lib.nixosSystem (or Colmena), the builders tailshift understands".into()));
    }
    let args = ev.force(&m["args"].value.clone())?;
    let am = ev.attrs_of(&args, dummy_span())?;
    let mut modules = Vec::new();
    if let Some(ml) = am.get("modules") {
        let span = ml.span.unwrap_or(dummy_span());
        match ev.force(&ml.value.clone())? {
            Value::List(l) => modules.extend(l.iter().map(|t| (t.clone(), span))),
            Value::Unknown(u) => {
                return Ok(Err(format!("its modules cannot be known: {}", u.describe())));
            }
            _ => {}
        }
    }
    let mut special = Vec::new();
    if let Some(sa) = am.get("specialArgs") {
        match ev.force(&sa.value.clone())? {
            Value::Attrs(s) => special.extend(
                s.iter()
                    .filter(|(k, _)| &***k != crate::nix::value::REST_KEY)
                    .map(|(k, v)| (k.clone(), v.value.clone())),
            ),
            Value::Unknown(_) => {}
            _ => {}
        }
    }
    Ok(Ok(HostArgs { modules, special }))
}

/// The tsnsrv flavour the inputs show: the fork or upstream by the input's URL, and for the
/// fork the date `flake.lock` pins (which decides `separateProcesses`' default).
fn flavour_of(dir: &Path, inputs: &[FlakeInput]) -> Option<(Flavour, String, Option<Location>)> {
    let t = inputs.iter().find(|i| i.kind == "tsnsrv")?;
    let url = t.url.clone().unwrap_or_default();
    let lock = std::fs::read_to_string(dir.join("flake.lock")).ok();
    let locked = lock
        .as_deref()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|l| {
            let key = l["nodes"]["root"]["inputs"][&t.name].as_str()?.to_string();
            Some(l["nodes"][key]["locked"].clone())
        });
    let owner = locked
        .as_ref()
        .and_then(|l| l["owner"].as_str().map(str::to_ascii_lowercase))
        .unwrap_or_else(|| url.to_ascii_lowercase());
    let loc = Some(Location {
        file: dir.join("flake.nix").display().to_string().into(),
        line: 1,
        column: 1,
    });
    if owner.contains("boinkor") {
        return Some((
            Flavour::Upstream,
            format!("the flake input `{}` is boinkor-net/tsnsrv (upstream)", t.name),
            loc,
        ));
    }
    if !owner.contains("arsfeld") {
        return None;
    }
    let modified = locked.as_ref().and_then(|l| l["lastModified"].as_i64());
    // The fork's separateProcesses: default false from 2025-10-16, true from 2025-11-19.
    const NOV_19_2025: i64 = 1_763_510_400;
    match modified {
        Some(t_) if t_ < NOV_19_2025 => Some((
            Flavour::ForkAll,
            format!(
                "the flake input `{}` is arsfeld/tsnsrv (the fork) locked before 2025-11-19, when separateProcesses defaulted to false (tsnsrv-all)",
                t.name
            ),
            loc,
        )),
        Some(_) => Some((
            Flavour::Fork,
            format!(
                "the flake input `{}` is arsfeld/tsnsrv (the fork) locked after 2025-11-19, when separateProcesses defaults to true",
                t.name
            ),
            loc,
        )),
        None => Some((
            Flavour::Fork,
            format!(
                "the flake input `{}` is arsfeld/tsnsrv (the fork); flake.lock does not say which revision, so its current default (separateProcesses = true) is assumed",
                t.name
            ),
            loc,
        )),
    }
}

/// The tsnsrv flavour a flake's inputs show (for `--evaluator nix`, which reads the same
/// inputs), with why and where.
pub fn flake_flavour(dir: &Path) -> Option<(Flavour, String, Option<Location>)> {
    let mut ev = Eval::new(SourceMap::new());
    let abs = crate::nix::eval::normalize(&std::env::current_dir().unwrap_or_default().join(dir));
    let flake = ev.eval_file(&abs.join("flake.nix")).ok()?;
    let inputs = read_inputs(&mut ev, &flake).ok()?;
    flavour_of(dir, &inputs)
}

/// Reads a flake's hosts (all, or the one named `attr`).
pub fn read_flake(dir: &Path, attr: Option<&str>) -> FlakeRead {
    let mut read = FlakeRead {
        hosts: Vec::new(),
        inputs: Vec::new(),
        diagnostics: Vec::new(),
        unreadable: Vec::new(),
        flavour: None,
    };
    let first = match eval_flake(dir) {
        Ok(e) => e,
        Err(b) => {
            let (e, ev) = *b;
            let loc = e.span.map(|s| ev.sources.location(s));
            let msg = format!("the flake {} cannot be evaluated: {}", dir.display(), e.message);
            read.diagnostics.extend(ev.diagnostics.iter().cloned());
            read.diagnostics.push(
                Diagnostic::error(DiagnosticCode::ServicesUnreadable, msg.clone()).at(loc.clone()),
            );
            read.unreadable.push((msg, loc));
            return read;
        }
    };
    let Evaluated { mut ev, outputs, inputs } = first;
    read.flavour = flavour_of(dir, &inputs);
    for i in &inputs {
        if i.kind == "opaque" {
            read.diagnostics.push(
                Diagnostic::new(
                    DiagnosticCode::OpaqueInput,
                    crate::diagnostic::Severity::Info,
                    format!(
                        "the flake input `{}`{} is not read: what its modules declare is unknown",
                        i.name,
                        i.url.as_ref().map(|u| format!(" ({u})")).unwrap_or_default()
                    ),
                )
                .at(Some(Location {
                    file: dir.join("flake.nix").display().to_string().into(),
                    line: 1,
                    column: 1,
                })),
            );
        }
    }
    read.inputs = inputs;
    let (hosts, unreadable) = match host_list(&mut ev, &outputs) {
        Ok(h) => h,
        Err(e) => (
            Vec::new(),
            vec![(format!("the flake's hosts cannot be evaluated: {}", e.message), e.span)],
        ),
    };
    for (msg, span) in unreadable {
        let loc = span.map(|s| ev.sources.location(s));
        read.diagnostics.push(
            Diagnostic::error(DiagnosticCode::ServicesUnreadable, msg.clone()).at(loc.clone()),
        );
        read.unreadable.push((msg, loc));
    }
    let names: Vec<String> = hosts.iter().map(|(n, ..)| n.clone()).collect();
    if let Some(a) = attr
        && !names.iter().any(|n| n == a)
    {
        let msg = format!(
            "{}#{a}: the flake has no nixosConfigurations.{a} (it has: {})",
            dir.display(),
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        );
        read.diagnostics.push(Diagnostic::error(DiagnosticCode::NoSuchHost, msg));
        return read;
    }
    drop(ev);
    for (name, ..) in hosts.iter().filter(|(n, ..)| attr.is_none_or(|a| a == n)) {
        // A fresh evaluator per host: module state and caches never leak between hosts.
        let Ok(Evaluated { mut ev, outputs, .. }) = eval_flake(dir) else { continue };
        let Ok((hosts, _)) = host_list(&mut ev, &outputs) else { continue };
        let Some((_, thunk, span, _)) = hosts.into_iter().find(|(n, ..)| n == name) else {
            continue;
        };
        let args = match host_args(&mut ev, &thunk) {
            Ok(Ok(a)) => a,
            Ok(Err(why)) | Err(EvalError { message: why, .. }) => {
                let loc = span.map(|s| ev.sources.location(s));
                let msg = format!(
                    "the host `{name}` cannot be read, so its services are not known: {why}"
                );
                read.diagnostics.push(
                    Diagnostic::error(DiagnosticCode::ServicesUnreadable, msg.clone())
                        .at(loc.clone()),
                );
                read.unreadable.push((msg, loc));
                continue;
            }
        };
        let mut diags = Vec::new();
        if let Err(e) = ev.load_module_values(args.modules, args.special, Some(name)) {
            diags.push(
                Diagnostic::error(DiagnosticCode::EvalError, e.message)
                    .at(e.span.map(|s| ev.sources.location(s))),
            );
        }
        let view = nixos::read_loaded(&mut ev, &mut diags);
        let mut modules: Vec<String> =
            ev.loaded_files().iter().map(|p| p.display().to_string()).collect();
        modules.sort();
        read.diagnostics.extend(diags);
        read.hosts.push(FlakeHost { attr: name.clone(), view, modules });
    }
    read
}
