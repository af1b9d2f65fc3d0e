//! The `nix` legacy adapter: a generated NixOS module, at a path your configuration imports,
//! that disables the migrated tsnsrv units (`systemd.services."tsnsrv-<name>".enable`), then
//! your switch command (`nixos-rebuild switch`, `colmena apply --on storage`, ...). The module
//! is tailshift's file: it is rewritten whole, atomically, from the set of units it disables.

use std::collections::BTreeSet;
use std::path::Path;

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

/// The module's text for a set of units (`tsnsrv-app` without `.service`).
pub fn render(units: &BTreeSet<String>) -> String {
    let mut out = format!("{HEADER}{{ lib, ... }}:\n{{\n");
    for u in units {
        out.push_str(&format!("  systemd.services.\"{u}\".enable = lib.mkForce false;\n"));
    }
    out.push_str("}\n");
    out
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

/// Adds (`stop`) or removes (`start`) a unit, rewrites the module if that changes it, and runs
/// the switch command (always: a crash may have come between the write and the switch).
pub fn act(
    module: &Path,
    switch: &[String],
    action: &str,
    unit: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let name = unit.trim_end_matches(".service").to_string();
    if name == "tsnsrv-all" && matches!(action, "stop" | "start") {
        // Disabling the fork's one unit would stop every service in it; removing one service
        // from its generated YAML cannot be done from a module beside it.
        anyhow::bail!(
            "the nix adapter cannot take one service out of the fork's tsnsrv-all unit: set `services.tsnsrv.separateProcesses = true` first (one unit per service), or use the command adapter to rewrite its service list"
        );
    }
    let mut units = disabled(module)?;
    match action {
        "stop" => {
            units.insert(name);
        }
        "start" => {
            units.remove(&name);
        }
        "finalize" | "repoint" | "restore" => {}
        other => anyhow::bail!("the nix adapter cannot {other}"),
    }
    let text = render(&units);
    if std::fs::read_to_string(module).ok().as_deref() != Some(text.as_str()) {
        tailshift_plans::plan_file::write_atomic(module, &text)?;
    }
    if let Some(w) = untracked_warning(module) {
        eprintln!("{w}");
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

#[cfg(test)]
mod tests {
    use super::*;
    const T: std::time::Duration = std::time::Duration::from_secs(60);

    #[test]
    fn the_module_round_trips_and_refuses_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("tailshift.nix");
        act(&m, &["true".into()], "stop", "tsnsrv-b.service", T).unwrap();
        act(&m, &["true".into()], "stop", "tsnsrv-a.service", T).unwrap();
        act(&m, &["true".into()], "stop", "tsnsrv-a.service", T).unwrap();
        assert_eq!(
            disabled(&m).unwrap().into_iter().collect::<Vec<_>>(),
            vec!["tsnsrv-a", "tsnsrv-b"]
        );
        let text = std::fs::read_to_string(&m).unwrap();
        assert!(
            text.contains("systemd.services.\"tsnsrv-a\".enable = lib.mkForce false;"),
            "{text}"
        );
        if let Ok(o) = std::process::Command::new("nix-instantiate").arg("--parse").arg(&m).output()
        {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        act(&m, &["true".into()], "start", "tsnsrv-a.service", T).unwrap();
        assert_eq!(disabled(&m).unwrap().len(), 1);
        // A failing switch is an error (the module is written; running it again retries).
        assert!(act(&m, &["false".into()], "stop", "tsnsrv-c.service", T).is_err());
        let e = act(&m, &["true".into()], "stop", "tsnsrv-all.service", T).unwrap_err();
        assert!(e.to_string().contains("separateProcesses"), "{e}");
        std::fs::write(&m, "{ }: { }\n").unwrap();
        assert!(act(&m, &["true".into()], "stop", "tsnsrv-a.service", T).is_err());
    }

    #[test]
    fn an_untracked_module_in_a_git_tree_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("tailshift.nix");
        std::fs::write(&m, render(&BTreeSet::new())).unwrap();
        assert!(untracked_warning(&m).is_none(), "not a git tree");
        let git = |args: &[&str]| {
            std::process::Command::new("git").arg("-C").arg(dir.path()).args(args).output()
        };
        if git(&["init", "-q"]).is_err() {
            eprintln!("skipped: git is not installed");
            return;
        }
        assert!(untracked_warning(&m).unwrap().contains("git add"));
        git(&["add", "tailshift.nix"]).unwrap();
        assert!(untracked_warning(&m).is_none());
    }
}
