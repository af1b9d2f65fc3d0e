//! What the evaluator answers where Nix would need something tailshift does not read: builtins it
//! does not implement, values of the machine that evaluates, files outside the configuration
//! tree, in the store or absent. Each is an unknown value that names the builtin, never an error.

use std::path::Path;
use tailshift_parsers::nix::{eval_to_json, with_eval_stack};

/// Evaluates `text` as if it were the file `name`.
fn eval(name: &str, text: &str) -> Result<serde_json::Value, String> {
    let (name, text) = (name.to_string(), text.to_string());
    with_eval_stack(move || eval_to_json(&name, &text))
}

/// The reason of the unknown value `text` evaluates to (panics on a known value or an error).
fn unknown(name: &str, text: &str) -> String {
    match eval(name, text) {
        Err(e) if e.starts_with("unknown: ") => e["unknown: ".len()..].to_string(),
        other => panic!("{text}: expected an unknown value, got {other:?}"),
    }
}

#[test]
fn unsupported_builtins_are_unknown_values_that_name_them() {
    for (expr, name) in [
        (r#"builtins.fetchGit { url = "https://example.org/x.git"; }"#, "fetchGit"),
        (r#"fetchGit "https://example.org/x.git""#, "fetchGit"),
        (r#"builtins.fetchTarball "https://example.org/x.tar.gz""#, "fetchTarball"),
        (r#"import (builtins.fetchTarball "https://example.org/x.tar.gz") { }"#, "fetchTarball"),
        (r#"builtins.fetchurl "https://example.org/x""#, "fetchurl"),
        (r#"__fetchurl "https://example.org/x""#, "fetchurl"),
        (r#"builtins.fetchMercurial "https://example.org/x""#, "fetchMercurial"),
        (r#"builtins.fetchTree { type = "git"; url = "x"; }"#, "fetchTree"),
        (r#"(builtins.getFlake "github:owner/repo").nixosConfigurations"#, "getFlake"),
        (
            r#"derivation { name = "x"; builder = "/bin/sh"; system = "x86_64-linux"; }"#,
            "derivation",
        ),
        (r#"builtins.derivationStrict { name = "x"; }"#, "derivationStrict"),
        (r#"builtins.toFile "name" "text""#, "toFile"),
        (r#"builtins.path { path = ./.; name = "src"; }"#, "path"),
        ("builtins.filterSource (p: t: true) ./.", "filterSource"),
        (r#"builtins.storePath "/nix/store/aaaa-x""#, "storePath"),
        (r#"builtins.findFile [ ] "nixpkgs""#, "findFile"),
        ("builtins.scopedImport { } ./x.nix", "scopedImport"),
        ("builtins.toXML { a = 1; }", "toXML"),
    ] {
        let reason = unknown("/x/expr.nix", expr);
        assert!(reason.starts_with(&format!("`builtins.{name}")), "{expr}: {reason}");
        assert!(reason.contains("` is not supported by tailshift's evaluator ("), "{reason}");
    }
}

#[test]
fn values_of_the_evaluating_machine_are_unknown() {
    for (expr, what) in [
        ("builtins.currentSystem", "`builtins.currentSystem` is the system"),
        ("__currentSystem", "`builtins.currentSystem` is the system"),
        ("builtins.currentTime", "`builtins.currentTime` is the time"),
        ("builtins.nixPath", "`builtins.nixPath` is the search path"),
        (
            r#"builtins.getEnv "HOME""#,
            r#"`builtins.getEnv "HOME"` is the environment variable HOME"#,
        ),
        (r#""${builtins.currentSystem}-linux""#, "`builtins.currentSystem`"),
    ] {
        let reason = unknown("/x/expr.nix", expr);
        assert!(reason.starts_with(what), "{expr}: {reason}");
    }
}

#[test]
fn builtins_has_exactly_the_names_of_nix() {
    let ok = |e: &str| eval("/x/expr.nix", e).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ok(
            "map (n: builtins ? ${n}) [ \"fromTOML\" \"readDir\" \"fetchGit\" \"getFlake\" \"currentSystem\" \"nope\" \"__tailshiftUnknown\" \"tailshiftUnknown\" ]"
        ),
        serde_json::json!([true, true, true, true, true, false, false, false])
    );
    // `?` does not evaluate the attribute, as in Nix.
    assert_eq!(
        ok("[ ({ a = throw \"x\"; } ? a) ({ a.b = throw \"x\"; } ? a.b) ({ a = 1; } ? a.b) ]"),
        serde_json::json!([true, true, false])
    );
    // A name Nix 2.8 does not have fails as it does in Nix.
    let err = eval("/x/expr.nix", "builtins.fetchClosure").unwrap_err();
    assert!(err.contains("attribute 'fetchClosure' missing"), "{err}");
    // Selecting an unsupported builtin is a function, as in Nix; only its result is unknown.
    assert_eq!(ok("builtins.isFunction builtins.fetchGit"), serde_json::json!(true));
    assert_eq!(ok("builtins.typeOf (builtins.toFile \"a\")"), serde_json::json!("lambda"));
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn file_builtins_read_only_inside_the_configuration_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    // The configuration tree is the flake; `outside` is beside it.
    let flake = root.join("config");
    write(&flake.join("flake.nix"), "{ }");
    write(&flake.join("secrets/ports.toml"), "grafana = 3000\n");
    write(&flake.join("hosts/a/ports.json"), "[1, 2]");
    write(&root.join("outside/secret.txt"), "hunter2");
    std::os::unix::fs::symlink(root.join("outside/secret.txt"), flake.join("hosts/a/link"))
        .unwrap();
    let host = flake.join("hosts/a/configuration.nix");
    let host = host.to_str().unwrap();
    let outside = root.join("outside");
    let outside = outside.to_str().unwrap();

    // Files of the tree are read, however far up the flake they are.
    assert_eq!(
        eval(host, "(builtins.fromTOML (builtins.readFile ../../secrets/ports.toml)).grafana"),
        Ok(serde_json::json!(3000))
    );
    assert_eq!(
        eval(host, "builtins.fromJSON (builtins.readFile ./ports.json)"),
        Ok(serde_json::json!([1, 2]))
    );
    assert_eq!(
        eval(host, "builtins.attrNames (builtins.readDir ../..)"),
        Ok(serde_json::json!(["flake.nix", "hosts", "secrets"]))
    );
    assert_eq!(
        eval(host, "[ (builtins.pathExists ./ports.json) (builtins.pathExists ./nope) ]"),
        Ok(serde_json::json!([true, false]))
    );

    // Outside the tree, even through a symbolic link: unknown, naming the builtin and the path.
    for (expr, what) in [
        (format!("builtins.readFile {outside}/secret.txt"), "readFile"),
        ("builtins.readFile ./link".to_string(), "readFile"),
        (format!("builtins.readDir {outside}"), "readDir"),
        (format!("builtins.pathExists {outside}/secret.txt"), "pathExists"),
        (format!("builtins.hashFile \"sha256\" {outside}/secret.txt"), "hashFile"),
        ("builtins.readFile /run/secrets/tsnsrv-key".to_string(), "readFile"),
    ] {
        let reason = unknown(host, &expr);
        assert!(reason.starts_with(&format!("`builtins.{what} /")), "{expr}: {reason}");
        assert!(reason.contains("outside the configuration tree"), "{expr}: {reason}");
        assert!(!reason.contains("hunter2"));
    }

    // The store is never read.
    let reason = unknown(host, "builtins.readFile /nix/store/aaaa-ports/ports.toml");
    assert!(reason.starts_with("`builtins.readFile /nix/store/aaaa-ports/ports.toml`"), "{reason}");
    assert!(reason.contains("Nix store"), "{reason}");
    let reason = unknown(host, "builtins.pathExists /nix/store");
    assert!(reason.contains("Nix store"), "{reason}");

    // Absent files of the tree may exist where the configuration is evaluated: unknown.
    for (expr, what) in [
        ("builtins.readFile ./hardware.toml", "readFile"),
        ("builtins.fromTOML (builtins.readFile ./hardware.toml)", "readFile"),
        ("builtins.readDir ./generated", "readDir"),
        (r#"builtins.hashFile "sha256" ./nope"#, "hashFile"),
    ] {
        let reason = unknown(host, expr);
        assert!(reason.starts_with(&format!("`builtins.{what} {}", flake.display())), "{reason}");
        assert!(reason.contains("does not exist"), "{expr}: {reason}");
    }

    // An unknown path stays unknown.
    let reason = unknown(host, "builtins.readFile builtins.currentSystem");
    assert!(reason.starts_with("`builtins.currentSystem`"), "{reason}");
}

#[test]
fn from_toml_rejects_dates_as_nix_does() {
    let err = eval("/x/expr.nix", "builtins.fromTOML \"a = 1979-05-27\"").unwrap_err();
    assert_eq!(err, "while parsing a TOML string: Dates and times are not supported");
}

#[test]
fn secret_manager_sets_coerce_to_their_path() {
    // sops-nix/agenix style: a set handed out for a secret, interpolated into a command line.
    let expr = r#"
      let
        secret = { name = "key"; path = "/run/secrets/key"; __toString = s: s.path; };
        unknownPath = { outPath = builtins.currentSystem; };
      in {
        flag = "--authkey-path=${secret}";
        plus = "--authkey-path=" + secret;
        str = toString secret;
        unknown = "${unknownPath}";
      }.flag
    "#;
    assert_eq!(eval("/x/expr.nix", expr), Ok(serde_json::json!("--authkey-path=/run/secrets/key")));
    let reason = unknown(
        "/x/expr.nix",
        r#"let p = { outPath = builtins.currentSystem; }; in [ "${p}" ("a" + p) (p + "a") ]"#,
    );
    assert!(reason.starts_with("`builtins.currentSystem`"), "{reason}");
}
