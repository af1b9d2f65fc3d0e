//! Helpers: run `migrate`, find the shared scenario, write fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (tests run `migrate` from here so paths in output are stable).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `migrate` with arguments, run from the repository root.
pub fn migrate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run migrate")
}

/// `migrate` run in another directory.
pub fn migrate_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run migrate")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses `--format json` output.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// `../shared/scenarios/homelab` relative to the repository root, when present.
pub fn homelab() -> Option<&'static str> {
    let rel = "../shared/scenarios/homelab";
    if root().join(rel).is_dir() {
        Some(rel)
    } else {
        eprintln!("skipped: {rel} is absent (the shared scenario is only on CI and dev machines)");
        None
    }
}

/// Skips the test when the shared scenario is absent.
#[macro_export]
macro_rules! need_homelab {
    () => {
        match $crate::util::homelab() {
            Some(h) => h,
            None => return Default::default(),
        }
    };
}

/// The diagnostics of a JSON inventory with a given code.
pub fn diags<'a>(inv: &'a serde_json::Value, code: &str) -> Vec<&'a serde_json::Value> {
    inv["diagnostics"].as_array().unwrap().iter().filter(|d| d["code"] == code).collect()
}

/// One service of a JSON inventory.
pub fn service<'a>(inv: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    inv["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no service {name}"))
}

/// The known value of an option (`declared` or `effective`).
pub fn value<'a>(svc: &'a serde_json::Value, part: &str, opt: &str) -> &'a serde_json::Value {
    &svc[part][opt]["known"]["value"]
}
