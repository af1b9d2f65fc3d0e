//! The walk over a directory given on the command line, as a whole configuration repository is
//! read: which files are inputs, and which are skipped (each with an `info` diagnostic naming the
//! file and why). Symlinks are followed, a file or directory reached twice is read once, a
//! dangling symlink or an unreadable file is a warning, and no single file stops the walk.
//!
//! Detection is conservative: a `.nix` file is read only when it has the shape of a NixOS
//! module ([`crate::roots`]); YAML only with the fork's multi-service schema; JSON only with the
//! shape of `nix eval` output of `services.tsnsrv`; a log only with tsnsrv's `Serving` lines; a
//! unit, script or `/proc/<pid>/cmdline` copy only when it runs tsnsrv.

use crate::diagnostic::{Diagnostic, DiagnosticCode, Severity};
use crate::inventory::InputKind;
use crate::load::LoadError;
use crate::options::Opt;
use crate::roots::{self, NixShape};
use crate::source::SourceMap;
use crate::{options, units};
use serde_json::Value as Json;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

/// One file the walk found to be an input.
#[derive(Clone, Debug)]
pub struct Found {
    /// The path as reached from the directory given.
    pub path: PathBuf,
    /// What it is.
    pub kind: InputKind,
    /// Its text, already read (`None` for Nix files, which the evaluator reads itself).
    pub text: Option<String>,
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct Walk {
    /// The inputs, in path order.
    pub found: Vec<Found>,
    /// Why files were skipped (`info`), dangling symlinks and unreadable files (`warning`).
    pub diagnostics: Vec<Diagnostic>,
    /// Directories holding a `flake.nix` (see [`is_flake_dir`]).
    pub flakes: Vec<PathBuf>,
    /// Regular files looked at (read or skipped, duplicates excluded).
    pub files_seen: usize,
    /// `.nix` files skipped because they are not NixOS modules.
    pub nix_skipped: usize,
    /// `.nix` files found to be NixOS modules (candidate roots).
    pub modules: usize,
    /// Other inputs found (units, logs, YAML, JSON...).
    pub others: usize,
}

/// Files and directories already visited in this run, by canonical path, with the path each
/// was first reached by.
#[derive(Debug, Default)]
pub struct Seen {
    files: HashMap<PathBuf, PathBuf>,
    dirs: HashMap<PathBuf, PathBuf>,
}

impl Seen {
    /// Records a file; returns the path it was first reached by if it was seen before.
    pub fn file(&mut self, path: &Path) -> Option<PathBuf> {
        let canonical = std::fs::canonicalize(path).ok()?;
        match self.files.get(&canonical) {
            Some(first) => Some(first.clone()),
            None => {
                self.files.insert(canonical, path.to_path_buf());
                None
            }
        }
    }

    fn dir(&mut self, path: &Path) -> Option<PathBuf> {
        let canonical = std::fs::canonicalize(path).ok()?;
        match self.dirs.get(&canonical) {
            Some(first) => Some(first.clone()),
            None => {
                self.dirs.insert(canonical, path.to_path_buf());
                None
            }
        }
    }
}

/// HOOK(flake): whether a directory is a flake (holds `flake.nix`). Reading a flake's
/// `nixosConfigurations` is done elsewhere; the walk only records such directories in
/// [`Walk::flakes`] and otherwise reads them as any other directory (their `flake.nix` is not a
/// module and is skipped with an `info`).
pub fn is_flake_dir(dir: &Path) -> bool {
    dir.join("flake.nix").is_file()
}

/// Walks `dir`. `forced` is `--input-kind`: in a directory it narrows what is read to the files
/// detected as that kind (it overrides detection only for files named on the command line).
/// Only an unreadable `dir` itself is an error.
pub fn walk(dir: &Path, forced: Option<InputKind>, seen: &mut Seen) -> Result<Walk, LoadError> {
    let mut w = Walk::default();
    seen.dir(dir);
    if is_flake_dir(dir) {
        w.flakes.push(dir.to_path_buf());
    }
    let mut deferred = VecDeque::new();
    visit(dir, forced, seen, &mut w, &mut deferred, true)?;
    while let Some(link) = deferred.pop_front() {
        follow(&link, forced, seen, &mut w, &mut deferred)?;
    }
    w.modules = w.found.iter().filter(|f| f.kind == InputKind::Nix).count();
    w.others = w.found.len() - w.modules;
    Ok(w)
}

/// The diagnostics of a module found by the walk that declares no tsnsrv service: when none of
/// the files it loads mentions tsnsrv, what the evaluator met there is not the user's concern
/// here and becomes one `info`; otherwise (a broken import may hide the services) it is kept.
pub fn module_without_tsnsrv(
    root: &Path,
    loaded: &[PathBuf],
    diags: &[Diagnostic],
    out: &mut Vec<Diagnostic>,
) {
    let about_tsnsrv =
        loaded.iter().any(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("tsnsrv")));
    if about_tsnsrv {
        out.extend(diags.iter().cloned());
        return;
    }
    let problems = diags.iter().filter(|d| d.severity > Severity::Info).count();
    if problems > 0 {
        out.push(Diagnostic::info(
            DiagnosticCode::ModuleWithoutTsnsrv,
            format!(
                "{} is a NixOS module that declares no tsnsrv service; {problems} problem(s) \
                 met while reading it are not reported, as it is not about tsnsrv",
                root.display()
            ),
        ));
    }
}

/// The error when the directories given hold no tsnsrv declaration at all, saying what was
/// found in each.
pub fn no_declaration(walks: &[(PathBuf, Walk)]) -> Diagnostic {
    let each: Vec<String> = walks
        .iter()
        .map(|(dir, w)| {
            format!(
                "{}: {} file(s) looked at, {} NixOS module(s) and {} other input(s) read, \
                 {} .nix file(s) that are not modules and {} other file(s) skipped",
                dir.display(),
                w.files_seen,
                w.modules,
                w.others,
                w.nix_skipped,
                w.files_seen.saturating_sub(w.modules + w.others + w.nix_skipped)
            )
        })
        .collect();
    let dirs: Vec<String> = walks.iter().map(|(d, _)| d.display().to_string()).collect();
    let mut d = Diagnostic::error(
        DiagnosticCode::NoTsnsrv,
        format!("no tsnsrv service is declared anywhere in {}", dirs.join(", ")),
    );
    for e in each {
        d = d.note(e);
    }
    d.note("the info diagnostics say why each file was skipped")
}

fn skipped(path: &Path, why: &str) -> Diagnostic {
    Diagnostic::info(DiagnosticCode::SkippedInput, format!("{} is not read: {why}", path.display()))
}

fn visit(
    dir: &Path,
    forced: Option<InputKind>,
    seen: &mut Seen,
    w: &mut Walk,
    deferred: &mut VecDeque<PathBuf>,
    top: bool,
) -> Result<(), LoadError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if top => return Err(LoadError::Io { path: dir.to_path_buf(), source: e }),
        Err(e) => {
            w.diagnostics.push(Diagnostic::warning(
                DiagnosticCode::UnreadableInput,
                format!("cannot read directory {}: {e}; its files are not read", dir.display()),
            ));
            return Ok(());
        }
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name == "result" || name == "target" {
            continue;
        }
        let Ok(lmeta) = std::fs::symlink_metadata(&p) else { continue };
        if lmeta.file_type().is_symlink() {
            // Symlinks are followed after every real path of the tree, so a file or directory
            // reached both ways is read by its real path.
            deferred.push_back(p);
            continue;
        }
        entry(&p, &lmeta, false, forced, seen, w, deferred)?;
    }
    Ok(())
}

/// Follows a symlink found by [`visit`] (a dangling one is a warning).
fn follow(
    p: &Path,
    forced: Option<InputKind>,
    seen: &mut Seen,
    w: &mut Walk,
    deferred: &mut VecDeque<PathBuf>,
) -> Result<(), LoadError> {
    match std::fs::metadata(p) {
        Ok(meta) => entry(p, &meta, true, forced, seen, w, deferred),
        Err(e) => {
            let target = std::fs::read_link(p)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into());
            w.diagnostics.push(Diagnostic::warning(
                DiagnosticCode::DanglingSymlink,
                format!(
                    "{} is a symlink to {target}, which cannot be reached ({e}); skipped",
                    p.display()
                ),
            ));
            Ok(())
        }
    }
}

fn entry(
    p: &Path,
    meta: &std::fs::Metadata,
    link: bool,
    forced: Option<InputKind>,
    seen: &mut Seen,
    w: &mut Walk,
    deferred: &mut VecDeque<PathBuf>,
) -> Result<(), LoadError> {
    let again = |first: PathBuf| {
        Diagnostic::info(
            DiagnosticCode::AlreadyRead,
            format!(
                "{} is {} reached again (through a symlink); it is read once",
                p.display(),
                first.display()
            ),
        )
    };
    if meta.is_dir() {
        if let Some(first) = seen.dir(p) {
            w.diagnostics.push(again(first));
            return Ok(());
        }
        if is_flake_dir(p) {
            w.flakes.push(p.to_path_buf());
        }
        visit(p, forced, seen, w, deferred, false)
    } else if meta.is_file() {
        if let Some(first) = seen.file(p) {
            w.diagnostics.push(again(first));
            return Ok(());
        }
        w.files_seen += 1;
        // Nix resolves a symlinked file before reading it: its relative imports are relative
        // to where the file really is.
        let real = if link && p.extension().is_some_and(|e| e == "nix") {
            std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
        } else {
            p.to_path_buf()
        };
        classify(&real, forced, w);
        Ok(())
    } else {
        w.diagnostics.push(skipped(p, "not a regular file"));
        Ok(())
    }
}

fn classify(path: &Path, forced: Option<InputKind>, w: &mut Walk) {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            w.diagnostics.push(Diagnostic::warning(
                DiagnosticCode::UnreadableInput,
                format!("cannot read {}: {e}; skipped", path.display()),
            ));
            return;
        }
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let detected = if path.extension().is_some_and(|e| e == "nix") {
        match roots::nix_shape(&text) {
            NixShape::Module => Ok(InputKind::Nix),
            // The evaluator reports the syntax error when the file is about tsnsrv.
            NixShape::Unparsable(_) if text.contains("tsnsrv") => Ok(InputKind::Nix),
            NixShape::Unparsable(why) => {
                w.diagnostics.push(Diagnostic::warning(
                    DiagnosticCode::SkippedInput,
                    format!(
                        "{} is not read: it does not parse ({why}) and does not mention tsnsrv",
                        path.display()
                    ),
                ));
                return;
            }
            NixShape::Other(why) => {
                w.nix_skipped += 1;
                Err(why)
            }
        }
    } else {
        sniff(path, &bytes, &text)
    };
    let kind = match (detected, forced) {
        (Ok(k), None) => k,
        (Ok(k), Some(f)) if k == f => k,
        (Ok(k), Some(f)) => {
            let why = format!("it is {}, not --input-kind {}", k.as_str(), f.as_str());
            w.diagnostics.push(skipped(path, &why));
            return;
        }
        (Err(why), _) => {
            w.diagnostics.push(skipped(path, &why));
            return;
        }
    };
    let text = (kind != InputKind::Nix).then_some(text);
    w.found.push(Found { path: path.to_path_buf(), kind, text });
}

/// What a file other than `.nix` is, by name and content; `Err` says why it is not an input.
pub fn sniff(path: &Path, bytes: &[u8], text: &str) -> Result<InputKind, String> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "go" => return Err("Go source".into()),
        "po" | "pot" => return Err("a gettext translation catalogue".into()),
        "hujson" => return Err("HuJSON (a Tailscale policy file)".into()),
        "json" => return json_kind(text),
        "yaml" | "yml" => return yaml_kind(text),
        "service" => {
            return if runs_tsnsrv_unit(text) {
                Ok(InputKind::Unit)
            } else {
                Err("a systemd unit that does not start tsnsrv".into())
            };
        }
        _ => {}
    }
    if bytes.contains(&0) {
        let argv0 = bytes.split(|b| *b == 0).next().unwrap_or_default();
        let argv0 = String::from_utf8_lossy(argv0);
        return if argv0.rsplit('/').next().is_some_and(|b| b.contains("tsnsrv")) {
            Ok(InputKind::Cmdline)
        } else {
            Err("a binary file".into())
        };
    }
    if text.lines().any(|l| l.starts_with("msgid ")) {
        return Err("a gettext translation catalogue".into());
    }
    if text.contains("Serving ") && log_has_services(path, text) {
        return Ok(InputKind::Log);
    }
    if text.contains("[Service]") && runs_tsnsrv_unit(text) {
        return Ok(InputKind::Unit);
    }
    if text.starts_with("#!")
        && text.lines().skip(1).any(|l| !l.trim_start().starts_with('#') && l.contains("tsnsrv"))
    {
        return Ok(InputKind::Script);
    }
    Err("not a tsnsrv input (no NixOS module, tsnsrv unit, start script, /proc cmdline, \
         Serving log, fork YAML or nix eval JSON)"
        .into())
}

fn runs_tsnsrv_unit(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("ExecStart") && l.contains("tsnsrv")
    })
}

/// Whether a text has at least one tsnsrv `Serving` line with a service name and upstream.
fn log_has_services(path: &Path, text: &str) -> bool {
    let sources = SourceMap::new();
    let file = sources.add(path.to_path_buf(), text.to_string());
    units::read_log(&sources, file).0.iter().any(|r| r.declared.get(Opt::ToUrl).is_some())
}

/// JSON is an input only with the shape of `nix eval --json` of `services.tsnsrv` (or of a
/// whole `config` holding it), and never one of tailshift's own files.
fn json_kind(text: &str) -> Result<InputKind, String> {
    let v: Json =
        serde_json::from_str(text).map_err(|e| format!("JSON that does not parse ({e})"))?;
    let Some(obj) = v.as_object() else {
        return Err("JSON data that is not an object".into());
    };
    if let Some(s) = obj.get("schema").and_then(Json::as_str)
        && s.starts_with("tailshift")
    {
        return Err(format!("tailshift's own {s} file"));
    }
    if obj.contains_key("format_version") && obj.contains_key("plan_id") {
        return Err("a tailshift plan".into());
    }
    if obj.contains_key("hosts") && obj.contains_key("diagnostics") {
        return Err("a tailshift inventory".into());
    }
    let root = match v.pointer("/services/tsnsrv") {
        Some(r) if obj.get("enable").is_none() => r,
        _ => &v,
    };
    let services = root.get("services").and_then(Json::as_object);
    let is_eval = services.is_some_and(|s| {
        s.values().all(Json::is_object)
            && s.values()
                .any(|e| e.get(Opt::ToUrl.name()).is_some_and(|u| u.is_string() || u.is_null()))
    });
    if is_eval {
        Ok(InputKind::NixEval)
    } else {
        Err("JSON data without the shape of `nix eval` output of services.tsnsrv".into())
    }
}

/// YAML is an input only with the fork's multi-service schema: a top-level `services:` list of
/// entries with a `name` and tsnsrv keys. sops-encrypted files are never read.
fn yaml_kind(text: &str) -> Result<InputKind, String> {
    let v: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|_| "YAML that does not parse as one document")?;
    let Some(map) = v.as_mapping() else {
        return Err("YAML that is not a mapping".into());
    };
    if map.contains_key("sops") {
        return Err("a sops-encrypted file".into());
    }
    match map.get("services") {
        Some(serde_yaml::Value::Sequence(items)) => {
            let tsnsrv_entry = |e: &serde_yaml::Value| {
                e.as_mapping().is_some_and(|m| {
                    m.contains_key("name")
                        && m.keys()
                            .filter_map(|k| k.as_str())
                            .any(|k| k == "toURL" || (k != "name" && options::by_yaml(k).is_some()))
                })
            };
            if items.iter().any(tsnsrv_entry) {
                Ok(InputKind::Yaml)
            } else {
                Err("YAML whose `services:` entries are not tsnsrv services".into())
            }
        }
        Some(serde_yaml::Value::Mapping(_)) => Err(
            "YAML whose `services:` is a map (docker compose or similar), not the fork's list of \
             tsnsrv services"
                .into(),
        ),
        _ => Err("YAML without a top-level `services:` list".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniffed(name: &str, text: &str) -> Result<InputKind, String> {
        sniff(Path::new(name), text.as_bytes(), text)
    }

    #[test]
    fn yaml_needs_the_fork_schema() {
        let fork = "services:\n  - name: a\n    upstream: http://127.0.0.1:1\n";
        assert_eq!(sniffed("a.yaml", fork), Ok(InputKind::Yaml));
        let sops = "services:\n  - name: ENC[AES256_GCM,data:x]\nsops:\n  version: 3.8.1\n";
        assert!(sniffed("secrets.yaml", sops).unwrap_err().contains("sops"));
        let compose = "services:\n  web:\n    image: nginx\n";
        assert!(sniffed("compose.yml", compose).unwrap_err().contains("map"));
        assert!(sniffed("ci.yml", "jobs:\n  a: 1\n").is_err());
    }

    #[test]
    fn json_needs_the_nix_eval_shape_and_never_tailshift_files() {
        let eval = r#"{"enable": true, "services": {"a": {"toURL": "http://x:1"}}}"#;
        assert_eq!(sniffed("e.json", eval), Ok(InputKind::NixEval));
        let whole = r#"{"services": {"tsnsrv": {"services": {"a": {"toURL": "http://x:1"}}}}}"#;
        assert_eq!(sniffed("e.json", whole), Ok(InputKind::NixEval));
        let plan = r#"{"format_version": 1, "plan_id": "x", "services": [{"toURL": "x"}]}"#;
        assert!(sniffed("plan.json", plan).unwrap_err().contains("plan"));
        let state = r#"{"schema": "tailshift.state/v1", "services": {"h/a": {"toURL": "x"}}}"#;
        assert!(sniffed("state.json", state).unwrap_err().contains("tailshift.state/v1"));
        assert!(sniffed("data.json", r#"{"ports": [1, 2]}"#).is_err());
        assert!(sniffed("package.json", "{ not json").is_err());
    }

    #[test]
    fn other_files_by_name_and_content() {
        let log = "2026/01/02 03:04:05 INFO Serving name=a destURL=http://127.0.0.1:1\n";
        assert_eq!(sniffed("tsnsrv.log", log), Ok(InputKind::Log));
        assert!(sniffed("server_test.go", &format!("// {log}")).is_err());
        assert!(sniffed("de.po", "msgid \"Serving\"\nmsgstr \"\"\n").is_err());
        assert!(sniffed("messages", "msgid \"Serving\"\nmsgstr \"\"\n").is_err());
        assert!(sniffed("policy.hujson", "{ // acls\n }").is_err());
        let unit = "[Service]\nExecStart=/bin/tsnsrv -name a http://x:1\n";
        assert_eq!(sniffed("tsnsrv-a.service", unit), Ok(InputKind::Unit));
        assert!(sniffed("nginx.service", "[Service]\nExecStart=/bin/nginx\n").is_err());
        assert_eq!(sniffed("start", "#!/bin/sh\nexec tsnsrv -name a x\n"), Ok(InputKind::Script));
        assert!(sniffed("build.sh", "#!/bin/sh\n# tsnsrv\nmake\n").is_err());
        assert_eq!(sniffed("cmdline", "/bin/tsnsrv\0-name\0a\0"), Ok(InputKind::Cmdline));
        assert!(sniffed("logo.png", "\u{89}PNG\0\0").is_err());
        assert!(sniffed("README.md", "# tsnsrv notes").is_err());
    }
}
