//! The crate-boundary check of `.ci/run` (`.ci/boundaries.py`): passes on the workspace as it
//! is, and fails on a forbidden arrow.

use crate::util::root;
use std::process::Command;

fn have_python() -> bool {
    Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success())
}

fn run_check(metadata: Option<&std::path::Path>) -> std::process::Output {
    let mut c = Command::new("python3");
    c.arg(root().join(".ci/boundaries.py"));
    if let Some(m) = metadata {
        c.arg("--metadata").arg(m);
    }
    c.output().unwrap()
}

#[test]
fn the_workspace_keeps_its_crate_boundaries_and_a_forbidden_arrow_fails() {
    if !have_python() {
        return tailshift_util::testing::skip("python3 is not installed");
    }
    let ok = run_check(None);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    // The proxy reaching back up to the planner: the arrow the layout forbids.
    let meta = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .unwrap();
    let mut meta: serde_json::Value = serde_json::from_slice(&meta.stdout).unwrap();
    let proxy = meta["packages"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["name"] == "tailshift-proxy")
        .unwrap();
    proxy["dependencies"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "tailshift-plans", "kind": null}));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metadata.json");
    std::fs::write(&file, meta.to_string()).unwrap();
    let bad = run_check(Some(&file));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(
        err.contains("tailshift-proxy -> tailshift-plans (normal dependency): not allowed"),
        "{err}"
    );

    // A dev-dependency may use any crate of ours.
    let proxy = meta["packages"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["name"] == "tailshift-proxy")
        .unwrap();
    proxy["dependencies"].as_array_mut().unwrap().last_mut().unwrap()["kind"] = "dev".into();
    std::fs::write(&file, meta.to_string()).unwrap();
    assert!(run_check(Some(&file)).status.success());
}
