//! The `nix` legacy adapter: it writes data, not Nix code. One versioned JSON file per host
//! (the moves file, `tailshift.moves/v1`, kept where the operator's flake tracks it) lists the
//! tsnsrv units whose services moved to the proxy; tailshift's NixOS module
//! (`services.tailshift.moves`) reads it and disables exactly those units. Then it runs the
//! switch command (`nixos-rebuild switch`, `colmena apply --on storage`, ...). The file is
//! tailshift's: rewritten whole, atomically. Older versions also rendered an equivalent module at
//! `module`; the adapter no longer writes one: a module it rendered before is read once (its units
//! carried into the moves file) and then refused until the operator has replaced its import by
//! tailshift's module.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The moves file's schema.
pub const MOVES_SCHEMA: &str = "tailshift.moves/v1";

/// The moves file: what the host's configuration must change for the services that moved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moves {
    /// [`MOVES_SCHEMA`].
    pub schema: String,
    /// Units to disable (`tsnsrv-<name>`, without `.service`), sorted.
    pub disabled_units: BTreeSet<String>,
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

/// Adds (`stop`) or removes (`start`) a unit in the moves file, rewrites it if that changes
/// it, and runs the switch command (always: a crash may have come between the write and the
/// switch).
pub fn act(
    files: &NixFiles,
    switch: &[String],
    action: &str,
    unit: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let name = unit.trim_end_matches(".service").to_string();
    if name == "tsnsrv-all" && matches!(action, "stop" | "start") {
        // Disabling the fork's one unit would stop every service in it (pre-flight refuses it
        // first; this is the last guard).
        anyhow::bail!(
            "the nix adapter cannot take one service out of the fork's tsnsrv-all unit: set `services.tsnsrv.separateProcesses = true` first (one unit per service), or use the command adapter to rewrite its service list"
        );
    }
    let mut moves = read_moves(&files.data, files.module.as_deref())?;
    match action {
        "stop" => {
            moves.disabled_units.insert(name);
        }
        "start" => {
            moves.disabled_units.remove(&name);
        }
        "finalize" | "repoint" | "restore" => {}
        other => anyhow::bail!("the nix adapter cannot {other}"),
    }
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
    if action == "finalize" {
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
        act(&f, &["true".into()], "stop", "tsnsrv-b.service", T).unwrap();
        act(&f, &["true".into()], "stop", "tsnsrv-a.service", T).unwrap();
        act(&f, &["true".into()], "stop", "tsnsrv-a.service", T).unwrap();
        act(&f, &["true".into()], "start", "tsnsrv-a.service", T).unwrap();
        assert!(!m.exists(), "the adapter writes data, not Nix code");
        // The data the module of the flake reads: versioned, the units.
        let moves: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&f.data).unwrap()).unwrap();
        assert_eq!(
            moves,
            serde_json::json!({"schema": MOVES_SCHEMA, "disabled_units": ["tsnsrv-b"]})
        );
        // A failing switch is an error (the file is written; running it again retries).
        assert!(act(&f, &["false".into()], "stop", "tsnsrv-c.service", T).is_err());
        let e = act(&f, &["true".into()], "stop", "tsnsrv-all.service", T).unwrap_err();
        assert!(e.to_string().contains("separateProcesses"), "{e}");
        // A foreign file where an old module was is refused, never overwritten.
        std::fs::write(&m, "{ }: { }\n").unwrap();
        assert!(act(&f, &["true".into()], "stop", "tsnsrv-a.service", T).is_err());
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
        let e = act(&f, &["true".into()], "stop", "tsnsrv-new.service", T).unwrap_err();
        assert!(e.to_string().contains("services.tailshift.moves"), "{e}");
        let moves = read_moves(&f.data, None).unwrap();
        assert_eq!(
            moves.disabled_units.into_iter().collect::<Vec<_>>(),
            ["tsnsrv-new", "tsnsrv-old"],
            "nothing of the old module is lost"
        );
        // Once its import and the file are gone, the adapter goes on from the moves file.
        std::fs::remove_file(&m).unwrap();
        act(&f, &["true".into()], "start", "tsnsrv-old.service", T).unwrap();
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
