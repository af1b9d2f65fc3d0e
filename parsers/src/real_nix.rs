//! `--evaluator nix` on a flake: the real Nix evaluates each host's `services.tsnsrv`.
//!
//! `nix eval` runs with `--no-write-lock-file` (the user's tree is never written) on
//! `nixosConfigurations.<attr>`, projecting with `--apply` what tailshift needs: each service's
//! values (never a package, and paths as their text, so nothing is copied into the
//! world-readable store) and where each service is defined (`unsafeGetAttrPos` on each
//! definition, store paths mapped back to the tree). Standard output is parsed only when Nix
//! exits 0; otherwise its error is the error.

use crate::diagnostic::Diagnostic;
use crate::diagnostic::DiagnosticCode;
use crate::nixos::ModuleView;
use crate::source::{Location, SourceMap};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The projection applied to a `nixosConfigurations.<attr>`.
const PROJECTION: &str = r#"sys: let
  b = builtins;
  # { ok; value }: a value as JSON carries it; one that fails (an option without a value, as
  # the module's own defaults.urlParts parts) is left out, as it is for NixOS until read.
  try = v: let r = b.tryEval v; in
    if !r.success then { ok = false; }
    else if b.isPath r.value then { ok = true; value = toString r.value; }
    else if b.isFunction r.value then { ok = false; }
    else if b.isAttrs r.value then
      (if r.value ? __toString then try (toString r.value)
       else if (r.value.type or null) == "derivation" then { ok = false; }
       else { ok = true; value = attrs r.value; })
    else if b.isList r.value then
      (let items = map try r.value; in
        if b.all (i: i.ok) items then { ok = true; value = map (i: i.value) items; } else { ok = false; })
    else (let d = b.tryEval (b.deepSeq r.value r.value); in
      if d.success then { ok = true; value = d.value; } else { ok = false; });
  # A set's values that JSON carries, and the names of those that fail.
  split = set: let
      names = b.filter (n: n != "package" && b.substring 0 1 n != "_") (b.attrNames set);
      tried = b.listToAttrs (map (n: { name = n; value = try set.${n}; }) names);
      failed = b.filter (n: !tried.${n}.ok) names;
    in { value = b.mapAttrs (_: t: t.value) (b.removeAttrs tried failed); inherit failed; };
  attrs = set: (split set).value;
  t = sys.config.services.tsnsrv;
  # Each service tried once: its values, and (an error of its own) what Nix cannot evaluate.
  services = b.mapAttrs (_: split) t.services;
  defs = sys.options.services.tsnsrv.services.definitionsWithLocations or [ ];
  plain = d: b.isAttrs d.value && !(d.value ? _type);
  host = b.tryEval sys.config.networking.hostName;
in {
  hostName = if host.success then host.value else null;
  tsnsrv = attrs (b.removeAttrs t [ "services" ]) // { services = b.mapAttrs (_: r: r.value) services; };
  failed = b.concatLists (b.attrValues (b.mapAttrs (n: r: map (o: "${n}.${o}") r.failed) services));
  positions = b.concatMap (d:
    map (n: { name = n; file = d.file; pos = b.unsafeGetAttrPos n d.value; })
      (if plain d then b.attrNames d.value else [ ])) defs;
}"#;

/// How to run Nix: extra flags the user gives (`--override-input NAME REF`).
#[derive(Clone, Debug, Default)]
pub struct NixRun {
    /// `--override-input` pairs.
    pub override_inputs: Vec<(String, String)>,
}

fn nix() -> Command {
    let mut c = Command::new("nix");
    c.args(["--extra-experimental-features", "nix-command flakes"]);
    c
}

fn flake_ref(dir: &Path) -> String {
    let abs = std::env::current_dir().unwrap_or_default().join(dir);
    abs.display().to_string()
}

/// Runs the projection on a module file, with `<nixpkgs/nixos>` from `NIX_PATH`.
fn eval_module_json(file: &Path) -> Result<String, String> {
    let abs = std::env::current_dir().unwrap_or_default().join(file);
    let expr =
        format!("({PROJECTION}) (import <nixpkgs/nixos> {{ configuration = {}; }})", abs.display());
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "-E", &expr])
        .output()
        .map_err(|e| {
            format!("--evaluator nix: nix-instantiate is not installed ({e}); install Nix, or use the built-in evaluator, or pass --from-nix-eval")
        })?;
    if !out.status.success() {
        return Err(format!(
            "--evaluator nix: nix-instantiate failed on {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reads a NixOS module file (a host's configuration) with the real Nix and `<nixpkgs/nixos>`.
pub fn read_module_with_nix(file: &Path) -> Result<(ModuleView, Vec<Diagnostic>), String> {
    let text = eval_module_json(file)?;
    let root = std::env::current_dir().unwrap_or_default();
    let shown = format!("{} (evaluated by nix-instantiate)", file.display());
    project(&text, &shown, None, &root)
}

/// A host's projection as Nix printed it, read into a view: values, host name, where each
/// service is defined, and an error for each value Nix cannot evaluate.
fn project(
    text: &str,
    shown: &str,
    fallback_host: Option<&str>,
    root: &Path,
) -> Result<(ModuleView, Vec<Diagnostic>), String> {
    let j: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("--evaluator nix: {e}"))?;
    let sources = SourceMap::new();
    let file = sources
        .add(PathBuf::from(shown), serde_json::to_string_pretty(&j["tsnsrv"]).unwrap_or_default());
    let host = j["hostName"].as_str().or(fallback_host).map(str::to_string);
    let (mut view, mut diags) = crate::nix_json::read_nix_eval(&sources, file, host.as_deref());
    if let Some(h) = &host {
        view.host = Some(crate::inventory::Sourced::declared(h.clone(), None));
    }
    // Where each service is defined, in the user's tree (definitions made inside nixpkgs' lib,
    // such as `mapAttrs`, have no place there and are left out).
    for svc in &mut view.services {
        svc.location = None;
    }
    for p in j["positions"].as_array().into_iter().flatten() {
        let (Some(n), Some(line)) = (p["name"].as_str(), p["pos"]["line"].as_u64()) else {
            continue;
        };
        let file = unstore(p["pos"]["file"].as_str().unwrap_or(""), root);
        if !Path::new(&file).is_file() {
            continue;
        }
        if let Some(s) = view.services.iter_mut().find(|s| s.name == n && s.location.is_none()) {
            s.location = Some(Location {
                file: file.into(),
                line: line as u32,
                column: p["pos"]["column"].as_u64().unwrap_or(1) as u32,
            });
        }
    }
    for f in j["failed"].as_array().into_iter().flatten().filter_map(|f| f.as_str()) {
        let Some((svc, opt)) = f.split_once('.') else { continue };
        let msg = format!(
            "Nix cannot evaluate services.tsnsrv.services.{svc}.{opt}: it fails, or it has no value (NixOS would refuse this configuration)"
        );
        let loc = view.services.iter().find(|s| s.name == svc).and_then(|s| s.location.clone());
        diags.push(
            Diagnostic::error(DiagnosticCode::EvalError, msg.clone()).at(loc).for_service(svc),
        );
        if let Some(s) = view.services.iter_mut().find(|s| s.name == svc) {
            s.declared.set_named(opt.to_string(), crate::inventory::Sourced::unknown(msg, None));
        }
    }
    Ok((view, diags))
}

fn eval_json(dir: &Path, attr: &str, apply: &str, run: &NixRun) -> Result<String, String> {
    let mut c = nix();
    c.args(["eval", "--json", "--no-write-lock-file"]);
    for (name, to) in &run.override_inputs {
        c.args(["--override-input", name, to]);
    }
    c.arg(format!("{}#{attr}", flake_ref(dir))).args(["--apply", apply]);
    let out = c.output().map_err(|e| {
        format!("--evaluator nix: cannot run nix ({e}); install Nix, or use the built-in evaluator")
    })?;
    if !out.status.success() {
        return Err(format!(
            "--evaluator nix: nix eval {}#{attr} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The tree a store path of this flake's source maps back to (the git root holding it, or the
/// flake's directory).
fn source_root(dir: &Path) -> PathBuf {
    let out = Command::new("git").args(["rev-parse", "--show-toplevel"]).current_dir(dir).output();
    match out {
        Ok(o) if o.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_string())
        }
        _ => std::env::current_dir().unwrap_or_default().join(dir),
    }
}

/// A store path of the flake's source, as the file in the tree.
fn unstore(file: &str, root: &Path) -> String {
    match file.strip_prefix("/nix/store/").and_then(|r| r.split_once('/')) {
        Some((_, rel)) => root.join(rel).display().to_string(),
        None => file.to_string(),
    }
}

/// One host read by Nix.
pub struct NixHost {
    /// Its `nixosConfigurations` attribute.
    pub attr: String,
    /// What Nix says of its `services.tsnsrv`.
    pub view: ModuleView,
}

/// Reads every host of a flake (or `attr`) with the real Nix.
pub fn read_flake_with_nix(
    dir: &Path,
    attr: Option<&str>,
    run: &NixRun,
) -> Result<(Vec<NixHost>, Vec<Diagnostic>), String> {
    // nixosConfigurations, else a Colmena hive's evaluated nodes.
    let (base, listed) = match eval_json(dir, "nixosConfigurations", "builtins.attrNames", run) {
        Ok(text) => ("nixosConfigurations", text),
        Err(e) => match eval_json(dir, "colmenaHive.nodes", "builtins.attrNames", run) {
            Ok(text) => ("colmenaHive.nodes", text),
            Err(_) => return Err(e),
        },
    };
    let names: Vec<String> = match attr {
        Some(a) => vec![a.to_string()],
        None => serde_json::from_str(&listed).map_err(|e| format!("--evaluator nix: {e}"))?,
    };
    let root = source_root(dir);
    let mut hosts = Vec::new();
    let mut diags = Vec::new();
    for name in names {
        let text = eval_json(dir, &format!("{base}.{name}"), PROJECTION, run)?;
        let shown = format!("{}#{name} (evaluated by nix)", dir.display());
        let (view, d) = project(&text, &shown, Some(&name), &root)?;
        diags.extend(d);
        hosts.push(NixHost { attr: name, view });
    }
    Ok((hosts, diags))
}
