//! Bad input: each mistake gets its own diagnostic with file, line and column, and exit code 1.

use crate::util::*;
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    name.to_string()
}

fn run_json(dir: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut a = vec!["inventory"];
    a.extend_from_slice(args);
    a.extend(["--format", "json"]);
    let out = migrate_in(dir, &a);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    (out.status.code(), json(&out))
}

#[test]
fn syntax_error_names_file_line_column_and_marks_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "host.nix", "{\n  services.tsnsrv.services.a.toURL = ;\n}\n");
    let out = migrate_in(dir.path(), &["inventory", &f]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("error[syntax_error]"), "{err}");
    assert!(err.contains("--> host.nix:2:"), "{err}");
    assert!(err.contains("2 |   services.tsnsrv.services.a.toURL = ;"), "{err}");
    assert!(err.lines().any(|l| l.trim_start().starts_with("| ") && l.contains('^')), "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn syntax_error_in_an_imported_file_is_reported_too() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "broken.nix",
        "{ services.tsnsrv.services.b = { toURL = \"http://x:1\" }; }\n",
    );
    let f = write(
        dir.path(),
        "host.nix",
        "{ imports = [ ./broken.nix ]; services.tsnsrv.services.a.toURL = \"http://a:1\"; }\n",
    );
    let (code, inv) = run_json(dir.path(), &[&f, "--host", "h"]);
    assert_eq!(code, Some(1));
    let d = diags(&inv, "syntax_error");
    assert_eq!(d[0]["location"]["file"], "broken.nix");
    assert_eq!(d[0]["location"]["line"], 1);
    // The rest of the configuration is still read.
    assert_eq!(service(&inv, "a")["name"], "a");
}

#[test]
fn duplicate_service_names_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let y = write(
        dir.path(),
        "all.yaml",
        "services:\n  - name: a\n    upstream: http://127.0.0.1:1\n  - name: a\n    upstream: http://127.0.0.1:2\n",
    );
    let (code, inv) = run_json(dir.path(), &[&y, "--host", "h"]);
    assert_eq!(code, Some(1));
    let d = diags(&inv, "duplicate_service");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["location"]["line"], 4);
    assert!(d[0]["notes"][0].as_str().unwrap().contains("all.yaml:2:"));
}

#[test]
fn invalid_url_is_an_error_at_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "h.nix",
        "{\n  networking.hostName = \"h\";\n  services.tsnsrv.services.a.toURL = \"127.0.0.1:80\";\n}\n",
    );
    let (code, inv) = run_json(dir.path(), &[&f]);
    assert_eq!(code, Some(1));
    let d = diags(&inv, "invalid_url");
    assert_eq!(d.len(), 1, "{inv}");
    assert_eq!(d[0]["location"]["line"], 3);
}

#[test]
fn funnel_with_plaintext_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "h.nix",
        "{\n  networking.hostName = \"h\";\n  services.tsnsrv.services.a = {\n    toURL = \"http://x:1\";\n    funnel = true;\n    plaintext = true;\n    listenAddr = \":443\";\n  };\n}\n",
    );
    let (code, inv) = run_json(dir.path(), &[&f]);
    assert_eq!(code, Some(1));
    assert_eq!(diags(&inv, "funnel_with_plaintext")[0]["location"]["line"], 6);
    assert!(diags(&inv, "funnel_port").is_empty());
}

#[test]
fn funnel_port_outside_443_8443_10000_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "h.nix",
        "{\n  networking.hostName = \"h\";\n  services.tsnsrv.services.a = { toURL = \"http://x:1\"; funnel = true; listenAddr = \":8080\"; };\n  services.tsnsrv.services.b = { toURL = \"http://x:2\"; funnel = true; listenAddr = \":8443\"; };\n}\n",
    );
    let (code, inv) = run_json(dir.path(), &[&f]);
    assert_eq!(code, Some(1));
    let d = diags(&inv, "funnel_port");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["service"], "a");
    assert_eq!(d[0]["location"]["line"], 3);
}

#[test]
fn unknown_attribute_is_an_error_for_the_flavour_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "h.nix",
        "{\n  networking.hostName = \"h\";\n  services.tsnsrv.services.a = { toURL = \"http://x:1\"; fnnel = true; };\n  services.tsnsrv.services.b = { toURL = \"http://x:2\"; authURL = \"https://auth.example\"; };\n}\n",
    );
    // Upstream tsnsrv has no forward auth: authURL is unknown there, and fnnel everywhere.
    let (code, inv) = run_json(dir.path(), &[&f, "--tsnsrv", "upstream"]);
    assert_eq!(code, Some(1));
    let d = diags(&inv, "unknown_attribute");
    assert_eq!(d.len(), 2, "{inv}");
    assert!(
        d.iter().any(|x| x["service"] == "a" && x["message"].as_str().unwrap().contains("fnnel"))
    );
    assert!(d.iter().any(
        |x| x["service"] == "b" && x["message"].as_str().unwrap().contains("only in the fork")
    ));
    // Under the fork, authURL is fine.
    let (_, inv) = run_json(dir.path(), &[&f, "--tsnsrv", "fork"]);
    assert_eq!(diags(&inv, "unknown_attribute").len(), 1);
    let cov = service(&inv, "a")["coverage"].as_array().unwrap().clone();
    assert!(cov.iter().any(|c| c["attribute"] == "fnnel" && c["status"] == "unsupported"));
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    assert_eq!(migrate(&["inventory", "--no-such-flag"]).status.code(), Some(1));
    assert_eq!(migrate(&["inventory", "--tsnsrv", "bogus", "x"]).status.code(), Some(1));
    assert_eq!(migrate(&["inventory", "--help"]).status.code(), Some(0));
    assert_eq!(migrate(&["inventory"]).status.code(), Some(1));
}

#[test]
fn an_input_of_unknown_kind_asks_for_input_kind() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "notes.txt", "just some words\n");
    let out = migrate_in(dir.path(), &["inventory", &f]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--input-kind"), "{}", stderr(&out));
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = migrate(&["inventory", "no/such/file.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no/such/file.yaml"), "{}", stderr(&out));
}

#[test]
fn nix_evaluator_says_clearly_when_it_cannot_run() {
    // Either nix-instantiate is absent, or <nixpkgs> is (no nixpkgs on this machine): both are
    // reported by name, with exit code 1, never a panic.
    let out = migrate(&["inventory", "examples/fleet/hosts/nas.nix", "--evaluator", "nix"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("--evaluator nix") && err.contains("nix-instantiate"), "{err}");
}

#[test]
fn evaluation_errors_stay_local_to_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "h.nix",
        "{\n  networking.hostName = \"h\";\n  services.tsnsrv.services.a.toURL = \"http://x:\" + 1;\n  services.tsnsrv.services.b.toURL = \"http://y:1\";\n}\n",
    );
    let (code, inv) = run_json(dir.path(), &[&f]);
    assert_eq!(code, Some(1));
    let d = diags(&inv, "eval_error");
    assert_eq!(d[0]["location"]["line"], 3);
    assert!(
        service(&inv, "a")["effective"]["toURL"]["unknown"]["reason"]
            .as_str()
            .unwrap()
            .contains("evaluation failed")
    );
    assert_eq!(value(service(&inv, "b"), "effective", "toURL"), "http://y:1");
}
