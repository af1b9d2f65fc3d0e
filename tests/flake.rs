//! The flake's outputs, evaluated offline by Nix 2.8 with nixpkgs replaced by a path input
//! stub (`tests/nixos/nixpkgs-stub`: nixpkgs' real `lib` from `../shared/nixpkgs-lib`, the module
//! system as `nixosSystem`, derivations that instantiate but build nothing). What is evaluated:
//! the outputs' shape (`nix flake show`), `nix flake check --no-build` (every derivation
//! instantiated, the module checks evaluated), and the module as the flake exports it. What is
//! not: the package is never built (no nixpkgs, no network here).

use crate::nixos::oracle;
use crate::util::{root, stderr, stdout};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use tailshift_util::testing::skip;

/// Copies the repository's files (tracked, or new and not ignored: what a flake of a git tree
/// sees) into `dest`; false when git cannot list them.
fn copy_repository(dest: &Path) -> bool {
    let Ok(o) = Command::new("git")
        .arg("-C")
        .arg(root())
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .output()
    else {
        return false;
    };
    if !o.status.success() {
        return false;
    }
    for f in o.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let rel = std::str::from_utf8(f).unwrap();
        let from = root().join(rel);
        if !from.is_file() {
            continue; // deleted in the work tree
        }
        let to = dest.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
    true
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A copy of the repository and the nixpkgs stub, side by side in a temporary directory.
pub struct Flakes {
    _dir: tempfile::TempDir,
    pub src: std::path::PathBuf,
    pub stub: std::path::PathBuf,
}

pub fn flakes() -> Option<Flakes> {
    let lib = oracle()?;
    let dir = tempfile::tempdir().unwrap();
    let (src, stub) = (dir.path().join("tailshift"), dir.path().join("nixpkgs"));
    if !copy_repository(&src) {
        skip("git cannot list the repository's files");
        return None;
    }
    copy_dir(&root().join("tests/nixos/nixpkgs-stub"), &stub);
    std::fs::copy(root().join("tests/nixos/stubs.nix"), stub.join("stubs.nix")).unwrap();
    copy_dir(&lib.join("lib"), &stub.join("lib"));
    Some(Flakes { _dir: dir, src, stub })
}

/// `nix --offline ... <args> --override-input nixpkgs path:<stub>` (Nix 2.8 needs the
/// experimental features named, and refuses relative `path:` inputs).
pub fn nix(f: &Flakes, args: &[&str]) -> std::process::Output {
    Command::new("nix")
        .args(["--offline", "--extra-experimental-features", "nix-command flakes"])
        .args(args)
        .args(["--no-write-lock-file", "--override-input", "nixpkgs"])
        .arg(format!("path:{}", f.stub.display()))
        .current_dir(&f.src)
        .output()
        .expect("run nix")
}

#[test]
fn the_flake_outputs_evaluate_with_a_nixpkgs_stub() {
    let Some(f) = flakes() else { return };
    assert!(!f.src.join("flake.lock").exists(), "no lock file is shipped (README)");
    let me = format!("path:{}", f.src.display());
    let o = nix(&f, &["flake", "show", "--json", &me]);
    assert!(o.status.success(), "{}", stderr(&o));
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    for system in ["x86_64-linux", "aarch64-linux"] {
        let s = |k: &str| shown[k][system].clone();
        assert_eq!(s("packages")["default"]["name"], "tailshift-0.1.0", "{shown}");
        assert_eq!(s("packages")["default"]["type"], "derivation");
        assert_eq!(s("apps")["default"], json!({"type": "app"}));
        assert_eq!(s("devShells")["default"]["type"], "derivation");
        assert_eq!(s("checks")["module-tailscale-services"]["type"], "derivation");
        assert_eq!(s("checks")["module-tailnet-address"]["type"], "derivation");
    }
    assert_eq!(shown["nixosModules"]["default"], json!({"type": "nixos-module"}));
    assert_eq!(shown["overlays"]["default"], json!({"type": "nixpkgs-overlay"}));

    // Every output checked and every derivation instantiated (not built).
    let o = nix(&f, &["flake", "check", "--no-build", &me]);
    assert!(o.status.success(), "{}", stderr(&o));

    let eval = |attr: &str| -> Value {
        let o = nix(&f, &["eval", "--json", &format!("{me}#{attr}")]);
        assert!(o.status.success(), "{attr}: {}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    // The package: Cargo.lock, the binary only, completions and man pages installed, and a
    // check phase without the integration suite.
    let pkg = "packages.x86_64-linux.default";
    let post = eval(&format!("{pkg}.postInstall"));
    let post = post.as_str().unwrap();
    for want in [
        "completions bash",
        "completions zsh",
        "completions fish",
        "installManPage",
        "migrate man --out-dir",
    ] {
        assert!(post.contains(want), "{want}: {post}");
    }
    assert_eq!(eval(&format!("{pkg}.cargoTestFlags")), json!(["--workspace", "--lib", "--bins"]));
    assert_eq!(eval(&format!("{pkg}.meta.mainProgram")), "migrate");
    let program = eval("apps.x86_64-linux.default.program");
    assert!(program.as_str().unwrap().ends_with("-tailshift-0.1.0/bin/migrate"), "{program}");
    // The module as the flake exports it: its own package in ExecStart, the placements' units.
    let unit: Value = serde_json::from_str(
        eval("checks.x86_64-linux.module-tailscale-services.unit").as_str().unwrap(),
    )
    .unwrap();
    let exec = unit["serviceConfig"]["ExecStart"].as_str().unwrap();
    assert!(
        exec.ends_with("-tailshift-0.1.0/bin/migrate proxy --config /etc/tailshift/proxy.toml"),
        "{exec}"
    );
    assert_eq!(unit["serviceConfig"]["Type"], "notify");
    // Its proxy.toml is the derivation that runs the package's `--check-config` on it, so
    // building the check (or the system) checks the rendered TOML.
    let settings = unit["settings"].as_str().unwrap();
    assert!(settings.ends_with("-tailshift-proxy.toml"), "{settings}");
    let b: Value = serde_json::from_str(
        eval("checks.x86_64-linux.module-tailnet-address.unit").as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(b["serviceConfig"]["AmbientCapabilities"], json!(["CAP_NET_BIND_SERVICE"]));
    // The overlay gives pkgs.tailshift, the package's expression called with the final set.
    let o = nix(
        &f,
        &[
            "eval",
            "--raw",
            &format!("{me}#overlays.default"),
            "--apply",
            "o: (o { callPackage = f: _: baseNameOf f; } { }).tailshift",
        ],
    );
    assert_eq!(stdout(&o), "package.nix", "{}", stderr(&o));
}
