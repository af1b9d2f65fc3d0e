//! tailshift's `lib` against nixpkgs' own (`../shared/nixpkgs-lib`, evaluated by Nix 2.8): each
//! expression is read as a service's value through the whole inventory and compared with what
//! Nix prints for it.

use std::path::{Path, PathBuf};
use std::process::Command;
use tailshift_parsers::{LoadOptions, Opt, Sourced, load};

const EXPRS: &[&str] = &[
    "(lib.importJSON ./d.json).p",
    "(lib.importTOML ./d.toml).ports.web",
    "lib.fileContents ./f.txt",
    "lib.foldAttrs (n: a: n + a) 0 [ { a = 1; } { a = 2; b = 5; } ]",
    "map (p: baseNameOf (toString p)) (lib.filesystem.listFilesRecursive ./sub)",
    "lib.versions.majorMinor \"5.4.1\"",
    "lib.escapeURL \"a b/c?d=e&f\"",
    "lib.cartesianProduct { a = [ 1 2 ]; b = [ 3 4 ]; }",
    "lib.toHexString 4095",
    "[ (lib.types.port.check 80) (lib.types.port.check 70000) (lib.types.str.check 1) ]",
    "(lib.extend (final: prev: { answer = 42; double = x: x * 2; })).double 21",
    "lib.mapAttrs' (n: v: lib.nameValuePair \"x-${n}\" v) { a = 1; }",
    "lib.concatMapAttrs (n: v: { ${n} = v + 1; }) { a = 1; b = 2; }",
    "lib.recursiveUpdate { a.b = 1; a.c = 2; } { a.b = 3; }",
    "lib.attrByPath [ \"a\" \"b\" ] 0 { a.b = 7; }",
    "lib.optionalString true \"yes\" + lib.optionalString false \"no\"",
];

fn nixpkgs_lib() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/nixpkgs-lib/lib");
    p.is_dir().then(|| p.canonicalize().unwrap())
}

fn skip(why: &str) {
    tailshift_util::testing::skip(why);
}

fn files(d: &Path) {
    std::fs::write(d.join("d.json"), r#"{ "p": 8080 }"#).unwrap();
    std::fs::write(d.join("d.toml"), "[ports]\nweb = 3000\n").unwrap();
    std::fs::write(d.join("f.txt"), "hello\n").unwrap();
    std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
    std::fs::write(d.join("sub/one.nix"), "1\n").unwrap();
    std::fs::write(d.join("sub/deeper/two.nix"), "2\n").unwrap();
}

#[test]
fn lib_functions_agree_with_nixpkgs() {
    let Some(lib) = nixpkgs_lib() else { return skip("../shared/nixpkgs-lib is absent") };
    if !Command::new("nix-instantiate").arg("--version").output().is_ok_and(|o| o.status.success())
    {
        return skip("nix-instantiate is not installed");
    }
    let d = tempfile::tempdir().unwrap();
    files(d.path());
    let mut host = String::from("{ lib, ... }: {\n  networking.hostName = \"box\";\n");
    for (i, e) in EXPRS.iter().enumerate() {
        host.push_str(&format!(
            "  services.tsnsrv.services.f{i}.toURL = \"http://x/${{builtins.toJSON ({e})}}\";\n"
        ));
    }
    host.push_str("}\n");
    let file = d.path().join("host.nix");
    std::fs::write(&file, host).unwrap();
    let inv = load(&[file], &LoadOptions::default()).unwrap();
    let mut wrong = Vec::new();
    for (i, e) in EXPRS.iter().enumerate() {
        let expr = format!("let lib = import {}; in builtins.toJSON ({e})", lib.display());
        let out = Command::new("nix-instantiate")
            .args(["--eval", "--strict", "--json", "-E", &expr])
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{e}: {}", String::from_utf8_lossy(&out.stderr));
        let nix: String = serde_json::from_slice(&out.stdout).unwrap();
        let svc = inv.services.iter().find(|s| s.name == format!("f{i}")).unwrap();
        match svc.declared.get(Opt::ToUrl) {
            Some(Sourced::Known { value, .. })
                if value.as_str() == Some(&format!("http://x/{nix}")) => {}
            other => wrong.push(format!("{e}: tailshift {other:?}, Nix {nix}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
