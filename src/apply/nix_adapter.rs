//! The `nix` legacy adapter: it writes data, not Nix code. One versioned JSON file per host
//! (the moves file, `tailshift.moves/v1`, kept where the operator's flake tracks it) says what
//! the host's configuration must change for the services that moved: the tsnsrv units to
//! disable, the keep-node services' new `toURL`, and for the fork's one `tsnsrv-all` process the
//! YAML of the services that remain in it. tailshift's NixOS module (`services.tailshift.moves`)
//! reads it. Then the adapter runs the switch command (`nixos-rebuild switch`, `colmena apply
//! --on storage`, ...). The file is tailshift's: rewritten whole, atomically. Older versions also
//! rendered an equivalent module at `module`; the adapter no longer writes one: a module it
//! rendered before is read once (its units carried into the moves file) and then refused until
//! the operator has replaced its import by tailshift's module.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The moves file's schema.
pub const MOVES_SCHEMA: &str = "tailshift.moves/v1";

/// The moves file: what the host's configuration must change for the services that moved.
/// Fields are added to `v1` only, each optional on read (absent: empty) and always written.
/// A field this tailshift does not know is an error, not dropped on the next write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moves {
    /// [`MOVES_SCHEMA`].
    pub schema: String,
    /// Units to disable (`tsnsrv-<name>`, without `.service`), sorted.
    #[serde(default)]
    pub disabled_units: BTreeSet<String>,
    /// keep-node services (by service name): their legacy node stays, with this `toURL`.
    #[serde(default)]
    pub repoints: BTreeMap<String, String>,
    /// The fork's one process (`tsnsrv-all`, without `.service`) serving fewer services than
    /// its configuration declares: the YAML it must run (`-config`) instead.
    #[serde(default)]
    pub shared_processes: BTreeMap<String, SharedProcess>,
}

/// A shared process's new configuration: the services that remain in it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedProcess {
    /// The whole `-config` file (the fork's YAML schema, `reference/tsnsrv.md` 1.6).
    #[serde(default)]
    pub config_yaml: String,
    /// The services it holds, by name, sorted.
    #[serde(default)]
    pub services: Vec<String>,
}

/// One change of the moves file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A moved service's unit (`tsnsrv-<name>.service`) is disabled.
    Stop(String),
    /// Its unit runs again (rollback).
    Start(String),
    /// A keep-node service's legacy node stays, with this `toURL`.
    Repoint {
        /// The service's name on this host.
        service: String,
        /// Its new `toURL`.
        to_url: String,
    },
    /// The keep-node service's node as declared again (rollback).
    Restore(String),
    /// The shared process (`tsnsrv-all.service`) runs these services (none: the unit is
    /// disabled); `None`: its own configuration again (every one of its services is back).
    Shared {
        /// The unit.
        unit: String,
        /// What remains in it.
        process: Option<SharedProcess>,
    },
    /// Nothing changes in the file (finalize): it is only checked to be tailshift's.
    Nothing,
}

impl Moves {
    /// Applies one change.
    pub fn change(&mut self, c: &Change) {
        let unit = |u: &str| u.trim_end_matches(".service").to_string();
        match c {
            Change::Stop(u) => {
                self.disabled_units.insert(unit(u));
            }
            Change::Start(u) => {
                self.disabled_units.remove(&unit(u));
            }
            Change::Repoint { service, to_url } => {
                self.repoints.insert(service.clone(), to_url.clone());
            }
            Change::Restore(service) => {
                self.repoints.remove(service);
            }
            // None of its services is left: the unit is disabled.
            Change::Shared { unit: u, process: Some(p) } if p.services.is_empty() => {
                self.shared_processes.remove(&unit(u));
                self.disabled_units.insert(unit(u));
            }
            Change::Shared { unit: u, process: Some(p) } => {
                self.disabled_units.remove(&unit(u));
                self.shared_processes.insert(unit(u), p.clone());
            }
            Change::Shared { unit: u, process: None } => {
                self.disabled_units.remove(&unit(u));
                self.shared_processes.remove(&unit(u));
            }
            Change::Nothing => {}
        }
    }
}

/// The moves file beside a module path when `[apply] legacy.data` is not given:
/// `tailshift.nix` -> `tailshift-moves.json`.
pub fn default_data_path(module: &Path) -> PathBuf {
    let stem = module.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    module.with_file_name(format!("{stem}-moves.json"))
}

/// Reads the moves file; absent: what an older tailshift's module says, else nothing moved.
pub fn read_moves(data: &Path, module: Option<&Path>) -> anyhow::Result<Moves> {
    match std::fs::read_to_string(data) {
        Ok(text) => {
            let m: Moves = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: not a moves file: {e}", data.display()))?;
            if m.schema != MOVES_SCHEMA {
                anyhow::bail!("{}: schema {:?}, expected {MOVES_SCHEMA}", data.display(), m.schema);
            }
            Ok(m)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Moves {
            schema: MOVES_SCHEMA.into(),
            disabled_units: match module {
                Some(m) => disabled(m)?,
                None => BTreeSet::new(),
            },
            ..Moves::default()
        }),
        Err(e) => anyhow::bail!("{}: {e}", data.display()),
    }
}

const HEADER: &str = "# Written by tailshift: tsnsrv units whose services moved to the proxy.\n# Import this file from the host's configuration; `migrate rollback` takes units out again.\n";

/// The units the module disables now.
pub fn disabled(module: &Path) -> anyhow::Result<BTreeSet<String>> {
    let text = match std::fs::read_to_string(module) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => anyhow::bail!("{}: {e}", module.display()),
    };
    if !text.starts_with(HEADER.lines().next().unwrap_or_default()) {
        anyhow::bail!(
            "{}: not a module tailshift wrote; refusing to overwrite it",
            module.display()
        );
    }
    Ok(text
        .lines()
        .filter(|l| l.trim_end().ends_with(".enable = lib.mkForce false;"))
        .filter_map(|l| l.trim().strip_prefix("systemd.services.\""))
        .filter_map(|l| l.split_once('"').map(|(u, _)| u.to_string()))
        .collect())
}

/// A warning when the module is inside a git work tree but not tracked: a flake build only
/// sees tracked files, so the switch would silently ignore it.
pub fn untracked_warning(module: &Path) -> Option<String> {
    let dir = module.parent()?;
    let inside = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--is-inside-work-tree"])
        .output()
        .ok()?;
    if !inside.status.success() {
        return None;
    }
    let tracked = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["ls-files", "--error-unmatch"])
        .arg(module.file_name()?)
        .output()
        .ok()?;
    (!tracked.status.success()).then(|| {
        format!(
            "warning: {} is not tracked by git; a flake only sees tracked files, so the switch will not disable anything: `git add` it",
            module.display()
        )
    })
}

/// Makes one change in the moves file, rewrites it if that changes it, and runs the switch
/// command (always, but for finalize: a crash may have come between the write and the switch).
pub fn act(
    files: &NixFiles,
    switch: &[String],
    change: &Change,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    if let Change::Stop(u) | Change::Start(u) = change
        && u.trim_end_matches(".service") == "tsnsrv-all"
    {
        // Disabling the fork's one unit would stop every service in it: a subset leaves it
        // through `Change::Shared` (this is the last guard).
        anyhow::bail!(
            "the nix adapter never disables the fork's tsnsrv-all unit: it serves other services too"
        );
    }
    let mut moves = read_moves(&files.data, files.module.as_deref())?;
    moves.change(change);
    let data = serde_json::to_string_pretty(&moves)? + "\n";
    if std::fs::read_to_string(&files.data).ok().as_deref() != Some(data.as_str()) {
        tailshift_util::write_atomic(
            &files.data,
            data.as_bytes(),
            tailshift_util::FileMode::KeepOr(0o644),
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", files.data.display()))?;
    }
    if let Some(w) = untracked_warning(&files.data) {
        eprintln!("{w}");
    }
    // A module an older tailshift rendered is no longer kept up to date: its units are in the
    // moves file now (read above); the operator imports tailshift's module instead.
    if let Some(module) = &files.module
        && !disabled(module)?.is_empty()
    {
        anyhow::bail!(
            "{}: rendered by an older tailshift, and no longer updated (its units are now in {}): import tailshift's NixOS module with `services.tailshift.moves = {}`, remove this file and its import, then run again",
            module.display(),
            files.data.display(),
            files.data.display()
        );
    }
    if *change == Change::Nothing {
        return Ok(());
    }
    let (prog, args) = switch
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("[apply] legacy switch command is empty"))?;
    let out = super::signals::run(std::process::Command::new(prog).args(args), timeout)?;
    if !out.status.success() {
        anyhow::bail!("{}: {}", switch.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The files the nix adapter writes.
#[derive(Clone, Debug)]
pub struct NixFiles {
    /// The moves file (data, read by tailshift's NixOS module).
    pub data: PathBuf,
    /// Where an older tailshift rendered an equivalent module (read, never written).
    pub module: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    const T: std::time::Duration = std::time::Duration::from_secs(60);

    #[test]
    fn the_moves_file_round_trips_and_no_module_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("tailshift.nix");
        let f = NixFiles { data: default_data_path(&m), module: Some(m.clone()) };
        let stop = |u: &str| Change::Stop(u.to_string());
        act(&f, &["true".into()], &stop("tsnsrv-b.service"), T).unwrap();
        act(&f, &["true".into()], &stop("tsnsrv-a.service"), T).unwrap();
        act(&f, &["true".into()], &stop("tsnsrv-a.service"), T).unwrap();
        act(&f, &["true".into()], &Change::Start("tsnsrv-a.service".into()), T).unwrap();
        // A keep-node re-point and a shared process's remaining services.
        let repoint =
            Change::Repoint { service: "vault".into(), to_url: "http://127.0.0.1:8200".into() };
        act(&f, &["true".into()], &repoint, T).unwrap();
        let shared = SharedProcess {
            config_yaml: "services:\n- name: grafana\n  upstream: http://127.0.0.1:3000\n".into(),
            services: vec!["grafana".into()],
        };
        let keep =
            Change::Shared { unit: "tsnsrv-all.service".into(), process: Some(shared.clone()) };
        act(&f, &["true".into()], &keep, T).unwrap();
        assert!(!m.exists(), "the adapter writes data, not Nix code");
        // The data the module of the flake reads: versioned, every field written.
        let moves = || -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(&f.data).unwrap()).unwrap()
        };
        assert_eq!(
            moves(),
            serde_json::json!({
                "schema": MOVES_SCHEMA,
                "disabled_units": ["tsnsrv-b"],
                "repoints": {"vault": "http://127.0.0.1:8200"},
                "shared_processes": {"tsnsrv-all": {
                    "config_yaml": shared.config_yaml,
                    "services": ["grafana"],
                }},
            })
        );
        // Rollback writes it back: entries removed, the fields still written.
        act(&f, &["true".into()], &Change::Restore("vault".into()), T).unwrap();
        let back = Change::Shared { unit: "tsnsrv-all.service".into(), process: None };
        act(&f, &["true".into()], &back, T).unwrap();
        assert_eq!(
            moves(),
            serde_json::json!({"schema": MOVES_SCHEMA, "disabled_units": ["tsnsrv-b"], "repoints": {}, "shared_processes": {}})
        );
        // A file of the first v1 (only `disabled_units`) is read: absent fields are empty.
        std::fs::write(&f.data, r#"{"schema": "tailshift.moves/v1"}"#).unwrap();
        assert_eq!(
            read_moves(&f.data, None).unwrap(),
            Moves { schema: MOVES_SCHEMA.into(), ..Moves::default() }
        );
        // A failing switch is an error (the file is written; running it again retries).
        assert!(act(&f, &["false".into()], &stop("tsnsrv-c.service"), T).is_err());
        let e = act(&f, &["true".into()], &stop("tsnsrv-all.service"), T).unwrap_err();
        assert!(e.to_string().contains("never disables the fork's tsnsrv-all"), "{e}");
        // A foreign file where an old module was is refused, never overwritten.
        std::fs::write(&m, "{ }: { }\n").unwrap();
        assert!(act(&f, &["true".into()], &stop("tsnsrv-a.service"), T).is_err());
        assert_eq!(std::fs::read_to_string(&m).unwrap(), "{ }: { }\n");
    }

    #[test]
    fn a_module_an_older_tailshift_rendered_is_carried_into_the_moves_file_then_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("tailshift.nix");
        std::fs::write(
            &m,
            format!(
                "{HEADER}{{ lib, ... }}:\n{{\n  systemd.services.\"tsnsrv-old\".enable = lib.mkForce false;\n}}\n"
            ),
        )
        .unwrap();
        let f = NixFiles { data: default_data_path(&m), module: Some(m.clone()) };
        let e =
            act(&f, &["true".into()], &Change::Stop("tsnsrv-new.service".into()), T).unwrap_err();
        assert!(e.to_string().contains("services.tailshift.moves"), "{e}");
        let moves = read_moves(&f.data, None).unwrap();
        assert_eq!(
            moves.disabled_units.into_iter().collect::<Vec<_>>(),
            ["tsnsrv-new", "tsnsrv-old"],
            "nothing of the old module is lost"
        );
        // Once its import and the file are gone, the adapter goes on from the moves file.
        std::fs::remove_file(&m).unwrap();
        act(&f, &["true".into()], &Change::Start("tsnsrv-old.service".into()), T).unwrap();
        assert_eq!(read_moves(&f.data, None).unwrap().disabled_units.len(), 1);
    }

    #[test]
    fn an_untracked_moves_file_in_a_git_tree_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("tailshift-moves.json");
        std::fs::write(&m, "{}").unwrap();
        assert!(untracked_warning(&m).is_none(), "not a git tree");
        let git = |args: &[&str]| {
            std::process::Command::new("git").arg("-C").arg(dir.path()).args(args).output()
        };
        if git(&["init", "-q"]).is_err() {
            eprintln!("skipped: git is not installed");
            return;
        }
        assert!(untracked_warning(&m).unwrap().contains("git add"));
        git(&["add", "tailshift-moves.json"]).unwrap();
        assert!(untracked_warning(&m).is_none());
    }
}
