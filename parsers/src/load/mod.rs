//! The entry point: detects what each input is, reads it, decides each host's flavour, applies
//! that flavour's defaults, and checks the result. Turning what an input declares into hosts
//! and services (flavour, effective values, coverage) is `services`'.

use crate::diagnostic::Diagnostic;
use crate::inventory::*;
use crate::nix::Eval;
use crate::nixos::{self, ModuleView};
use crate::source::{FileId, SourceMap};
use crate::units;
use crate::{nix_json, tsnsrv_yaml, validate, walk};
use services::{HostGroup, module_services, raw_service};
use std::path::{Path, PathBuf};

mod services;

/// Which Nix evaluator reads `.nix` inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Evaluator {
    /// tailshift's own static evaluator (spans and unknowns).
    #[default]
    Builtin,
    /// The real Nix (`nix-instantiate --eval --strict --json`), with `<nixpkgs>` from NIX_PATH.
    Nix,
}

/// How to read the inputs.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--host`: the host name when the files do not set `networking.hostName`.
    pub host: Option<String>,
    /// `--input-kind`: overrides detection for every path.
    pub input_kind: Option<InputKind>,
    /// `--tsnsrv`: the flavour, stated.
    pub tsnsrv: Option<Flavour>,
    /// `--from-nix-eval`: JSON files (or `-` with [`LoadOptions::stdin`]).
    pub nix_eval: Vec<PathBuf>,
    /// Text read from standard input for `-`.
    pub stdin: Option<String>,
    /// `--evaluator`.
    pub evaluator: Evaluator,
    /// How to run the real Nix on a flake (`--override-input`).
    pub nix: crate::real_nix::NixRun,
}

/// Errors that stop the whole run (bad input inside a file is a diagnostic instead).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A path could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The kind of an input could not be told.
    #[error(
        "cannot tell what kind of input {0} is; pass --input-kind (nix, nix-eval, unit, script, cmdline, log, yaml)"
    )]
    UnknownKind(PathBuf),
    /// `--evaluator nix` without Nix, or Nix failed.
    #[error("{0}")]
    Nix(String),
    /// No input at all.
    #[error("no input: give NixOS files, units, logs or YAML, or --from-nix-eval")]
    NoInput,
    /// A path given on the command line does not exist.
    #[error("{0} does not exist")]
    NotFound(PathBuf),
    /// A path given on the command line is a symlink to nothing.
    #[error("{0} is a dangling symlink (to {1})")]
    DanglingSymlink(PathBuf, PathBuf),
    /// A directory given on the command line holds no file (hidden ones are not read).
    #[error("{0} is an empty directory: there is nothing to read (hidden files are not read)")]
    EmptyDir(PathBuf),
}

/// Reads every input into one inventory. Runs on a thread with a large stack (the evaluator
/// recurses).
pub fn load(paths: &[PathBuf], opts: &LoadOptions) -> Result<Inventory, LoadError> {
    let paths = paths.to_vec();
    let opts = opts.clone();
    crate::nix::with_eval_stack(move || load_here(&paths, &opts))
}

/// Sniffs an input's kind from its name and first bytes.
pub fn detect_kind(path: &Path, text: &str) -> Option<InputKind> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "nix" => return Some(InputKind::Nix),
        "json" => return Some(InputKind::NixEval),
        "yaml" | "yml" => return Some(InputKind::Yaml),
        "service" => return Some(InputKind::Unit),
        _ => {}
    }
    if text.contains('\0') {
        return Some(InputKind::Cmdline);
    }
    if text.contains("Serving name=") || text.contains("Serving service=") {
        return Some(InputKind::Log);
    }
    if text.contains("[Service]") || text.contains("ExecStart=") {
        return Some(InputKind::Unit);
    }
    if text.contains("tsnsrv") && (text.starts_with("#!") || text.contains("exec ")) {
        return Some(InputKind::Script);
    }
    let t = text.trim_start();
    if t.starts_with('{') && t.contains("\"services\"") {
        return Some(InputKind::NixEval);
    }
    if text.lines().any(|l| l.starts_with("services:")) {
        return Some(InputKind::Yaml);
    }
    None
}

/// A path given on the command line must exist (a dangling symlink is named as such).
fn check_exists(p: &Path) -> Result<(), LoadError> {
    match std::fs::symlink_metadata(p) {
        Err(_) => Err(LoadError::NotFound(p.to_path_buf())),
        Ok(m) if m.file_type().is_symlink() && std::fs::metadata(p).is_err() => Err(
            LoadError::DanglingSymlink(p.to_path_buf(), std::fs::read_link(p).unwrap_or_default()),
        ),
        Ok(_) => Ok(()),
    }
}

fn load_here(paths: &[PathBuf], opts: &LoadOptions) -> Result<Inventory, LoadError> {
    if paths.is_empty() && opts.nix_eval.is_empty() {
        return Err(LoadError::NoInput);
    }
    let sources = SourceMap::new();
    let mut inv = Inventory::new();
    let mut seen = walk::Seen::default();
    // (kind, path, from a directory walk, text already read)
    let mut files: Vec<(Option<InputKind>, PathBuf, bool, Option<String>)> = Vec::new();
    let mut walked_dirs: Vec<(PathBuf, walk::Walk)> = Vec::new();
    let mut groups: Vec<(HostGroup, Vec<Service>)> = Vec::new();
    let mut flake_incomplete = Vec::new();
    for p in paths {
        if let Some((dir, attr)) = crate::flake::split_flake_ref(p) {
            read_flake_input(
                &dir,
                attr.as_deref(),
                p,
                opts,
                &mut inv,
                &mut groups,
                &mut flake_incomplete,
            )?;
            continue;
        }
        check_exists(p)?;
        if p.is_dir() {
            let mut w = walk::walk(p, opts.input_kind, &mut seen)?;
            if w.files_seen == 0 && w.found.is_empty() && w.diagnostics.is_empty() {
                return Err(LoadError::EmptyDir(p.clone()));
            }
            // A flake below the directory is read as a flake: its files are not roots of their own.
            let flakes: Vec<PathBuf> = w.flakes.clone();
            for dir in &flakes {
                read_flake_input(
                    dir,
                    None,
                    dir,
                    opts,
                    &mut inv,
                    &mut groups,
                    &mut flake_incomplete,
                )?;
            }
            files.extend(
                w.found
                    .drain(..)
                    .filter(|f| !flakes.iter().any(|d| f.path.starts_with(d)))
                    .map(|f| (Some(f.kind), f.path, true, f.text)),
            );
            inv.diagnostics.append(&mut w.diagnostics);
            walked_dirs.push((p.clone(), w));
        } else if let Some(first) = seen.file(p) {
            inv.diagnostics.push(Diagnostic::info(
                "already_read",
                format!("{} is {} given again; it is read once", p.display(), first.display()),
            ));
        } else {
            files.push((opts.input_kind, p.clone(), false, None));
        }
    }
    let mut nix_roots: Vec<(PathBuf, bool)> = Vec::new();
    for (kind, path, walked, text) in files {
        if kind == Some(InputKind::Nix)
            || (kind.is_none() && path.extension().is_some_and(|e| e == "nix"))
        {
            nix_roots.push((path, walked));
            continue;
        }
        let text = match text {
            Some(t) => t,
            None => {
                let bytes = std::fs::read(&path)
                    .map_err(|e| LoadError::Io { path: path.clone(), source: e })?;
                String::from_utf8_lossy(&bytes).into_owned()
            }
        };
        let kind = match kind.or_else(|| detect_kind(&path, &text)) {
            Some(k) => k,
            None => return Err(LoadError::UnknownKind(path)),
        };
        if kind == InputKind::Nix {
            nix_roots.push((path, walked));
            continue;
        }
        let file = sources.add(path.clone(), text);
        inv.inputs.push(Input { path: path.display().to_string(), kind });
        read_other(&sources, file, kind, &path, opts, &mut inv, &mut groups)?;
    }
    for p in &opts.nix_eval {
        let text = if p.as_os_str() == "-" {
            opts.stdin.clone().unwrap_or_default()
        } else {
            std::fs::read_to_string(p).map_err(|e| LoadError::Io { path: p.clone(), source: e })?
        };
        let shown = if p.as_os_str() == "-" { PathBuf::from("<stdin>") } else { p.clone() };
        let file = sources.add(shown.clone(), text);
        inv.inputs.push(Input { path: shown.display().to_string(), kind: InputKind::NixEval });
        let (view, diags) = nix_json::read_nix_eval(&sources, file, opts.host.as_deref());
        inv.diagnostics.extend(diags);
        groups.push(module_services(view, &shown, opts, &mut inv.diagnostics));
    }
    read_nix_roots(&nix_roots, opts, &mut inv, &mut groups)?;
    if !walked_dirs.is_empty()
        && groups.iter().all(|(_, services)| services.is_empty())
        && !inv.has_errors()
    {
        inv.diagnostics.push(walk::no_declaration(&walked_dirs));
    }
    for (g, services) in groups {
        inv.hosts.push(Host {
            name: g.host.clone(),
            flavour: g.flavour,
            flavour_basis: g.basis,
            prometheus_addr: g.prometheus_addr,
            inputs: vec![g.input],
            complete: g.incomplete.is_empty(),
            incomplete: g.incomplete,
            flake_attr: g.attr,
            modules: g.modules,
        });
        inv.services.extend(services);
    }
    merge_hosts(&mut inv);
    inv.complete = inv.hosts.iter().all(|h| h.complete) && flake_incomplete.is_empty();
    inv.services.sort_by(|a, b| {
        let ha = a.host.known().cloned().unwrap_or_default();
        let hb = b.host.known().cloned().unwrap_or_default();
        (ha, &a.name).cmp(&(hb, &b.name))
    });
    validate::inventory(&mut inv);
    Ok(inv)
}

/// Hosts read from several inputs become one entry.
fn merge_hosts(inv: &mut Inventory) {
    let mut merged: Vec<Host> = Vec::new();
    for h in inv.hosts.drain(..) {
        if let Some(m) = merged.iter_mut().find(|m| {
            m.name.known().is_some() && m.name.known() == h.name.known() && m.flavour == h.flavour
        }) {
            m.inputs.extend(h.inputs);
            m.complete &= h.complete;
            m.incomplete.extend(h.incomplete);
            continue;
        }
        merged.push(h);
    }
    inv.hosts = merged;
}

fn read_other(
    sources: &SourceMap,
    file: FileId,
    kind: InputKind,
    path: &Path,
    opts: &LoadOptions,
    inv: &mut Inventory,
    groups: &mut Vec<(HostGroup, Vec<Service>)>,
) -> Result<(), LoadError> {
    let (raws, prom, diags) = match kind {
        InputKind::Unit | InputKind::Script => {
            let (r, d) = units::read_invocations(sources, file, opts.tsnsrv);
            (r, None, d)
        }
        InputKind::Cmdline => {
            let (r, d) = units::read_cmdline(sources, file, opts.tsnsrv);
            (r, None, d)
        }
        InputKind::Log => {
            let (r, d) = units::read_log(sources, file);
            (r, None, d)
        }
        InputKind::Yaml => tsnsrv_yaml::read_yaml(sources, file),
        InputKind::NixEval => {
            let (view, d) = nix_json::read_nix_eval(sources, file, opts.host.as_deref());
            inv.diagnostics.extend(d);
            groups.push(module_services(view, path, opts, &mut inv.diagnostics));
            return Ok(());
        }
        InputKind::Nix | InputKind::Flake => unreachable!("handled by the caller"),
    };
    inv.diagnostics.extend(diags);
    if raws.is_empty() && kind != InputKind::Yaml {
        inv.diagnostics.push(
            Diagnostic::warning(
                "no_services",
                format!("{} holds no tsnsrv invocation", path.display()),
            )
            .at(Some(sources.location_at(file, 1, 1))),
        );
    }
    let input = path.display().to_string();
    let (flavour, basis) = match opts.tsnsrv {
        Some(f) => (f, FlavourBasis::Stated { flag: format!("--tsnsrv {f}") }),
        None => match raws.iter().find_map(|r| r.flavour_hint.clone()) {
            Some((f, reason, location)) => (f, FlavourBasis::Detected { reason, location }),
            None => (
                if kind == InputKind::Yaml { Flavour::ForkAll } else { Flavour::Upstream },
                FlavourBasis::Assumed {
                    reason: "nothing in the input shows a fork-only flag; upstream tsnsrv is assumed (state it with --tsnsrv)".into(),
                },
            ),
        },
    };
    let host = match &opts.host {
        Some(h) => Sourced::declared(h.clone(), None),
        None => Sourced::unknown(
            format!("{} does not name its host; pass --host", path.display()),
            None,
        ),
    };
    let mut services = Vec::new();
    for raw in raws {
        services.push(raw_service(raw, &host, flavour, &input, &mut inv.diagnostics));
    }
    groups.push((
        HostGroup {
            host,
            flavour,
            basis,
            prometheus_addr: prom,
            input,
            incomplete: Vec::new(),
            attr: None,
            modules: Vec::new(),
        },
        services,
    ));
    Ok(())
}

/// Reads a flake (every host, or `DIR#ATTR`'s) into host groups.
fn read_flake_input(
    dir: &Path,
    attr: Option<&str>,
    given: &Path,
    opts: &LoadOptions,
    inv: &mut Inventory,
    groups: &mut Vec<(HostGroup, Vec<Service>)>,
    incomplete: &mut Vec<Incomplete>,
) -> Result<(), LoadError> {
    if opts.host.is_some() {
        inv.diagnostics.push(Diagnostic::warning(
            "host_flag_unused",
            format!(
                "--host is not used for the flake {}: its hosts are named by networking.hostName, else by their nixosConfigurations attribute (select one with {}#ATTR)",
                dir.display(),
                dir.display()
            ),
        ));
    }
    // Either evaluator gives each host's view (and, the built-in one, the modules it read).
    let (hosts, flavour): (Vec<(String, ModuleView, Vec<String>)>, _) = if opts.evaluator
        == Evaluator::Nix
    {
        let (hosts, diags) =
            crate::real_nix::read_flake_with_nix(dir, attr, &opts.nix).map_err(LoadError::Nix)?;
        inv.diagnostics.extend(diags);
        let hosts = hosts.into_iter().map(|h| (h.attr, h.view, Vec::new())).collect();
        (hosts, crate::flake::flake_flavour(dir))
    } else {
        let read = crate::flake::read_flake(dir, attr);
        inv.diagnostics.extend(read.diagnostics);
        incomplete.extend(
            read.unreadable.into_iter().map(|(reason, location)| Incomplete { reason, location }),
        );
        let hosts = read.hosts.into_iter().map(|h| (h.attr, h.view, h.modules)).collect();
        (hosts, read.flavour)
    };
    inv.inputs.push(Input { path: given.display().to_string(), kind: InputKind::Flake });
    for (attr, mut view, modules) in hosts {
        view.flavour_hint = flavour.clone();
        let input = PathBuf::from(format!("{}#{attr}", dir.display()));
        let (mut g, services) = module_services(view, &input, opts, &mut inv.diagnostics);
        g.attr = Some(attr);
        g.modules = modules;
        groups.push((g, services));
    }
    Ok(())
}

fn read_nix_roots(
    roots: &[(PathBuf, bool)],
    opts: &LoadOptions,
    inv: &mut Inventory,
    groups: &mut Vec<(HostGroup, Vec<Service>)>,
) -> Result<(), LoadError> {
    if roots.is_empty() {
        return Ok(());
    }
    if opts.evaluator == Evaluator::Nix {
        for (root, _) in roots {
            let (view, d) = crate::real_nix::read_module_with_nix(root).map_err(LoadError::Nix)?;
            inv.inputs.push(Input { path: root.display().to_string(), kind: InputKind::Nix });
            inv.diagnostics.extend(d);
            groups.push(module_services(view, root, opts, &mut inv.diagnostics));
        }
        return Ok(());
    }
    // Each root is its own host configuration; a file imported by another root is not a root.
    // Paths are compared canonically: a file reached through a symlink is still the same file.
    let abs = |p: &Path| {
        crate::nix::eval::normalize(&std::env::current_dir().unwrap_or_default().join(p))
    };
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| abs(p));
    let mut results = Vec::new();
    for (root, walked) in roots {
        let mut ev = Eval::new(SourceMap::new());
        let (view, diags, ok) =
            nixos::read_nixos(&mut ev, std::slice::from_ref(root), opts.host.as_deref());
        let loaded: Vec<PathBuf> = ev.loaded_files().iter().map(|p| canon(p)).collect();
        results.push((root.clone(), *walked, view, diags, ok, loaded));
    }
    for (i, (root, walked, view, diags, _ok, loaded)) in results.iter().enumerate() {
        let me = canon(root);
        let imported_elsewhere =
            results.iter().enumerate().any(|(j, r)| j != i && r.5.contains(&me));
        if imported_elsewhere && *walked {
            continue;
        }
        inv.inputs.push(Input { path: root.display().to_string(), kind: InputKind::Nix });
        let declares_nothing = view.services.is_empty() && view.defaults.0.is_empty();
        if *walked && declares_nothing {
            walk::module_without_tsnsrv(root, loaded, diags, &mut inv.diagnostics);
            continue;
        }
        inv.diagnostics.extend(diags.iter().cloned());
        groups.push(module_services(view.clone(), root, opts, &mut inv.diagnostics));
    }
    Ok(())
}
