//! Hand-derived fixtures for what needs nixpkgs (absent here): one fixture per `lib` function
//! rule (`test_data/lib`) and per module-merging rule (`test_data/modules`). Each fixture's
//! first line says which rule it pins; its `.json` sibling holds the value derived by hand from
//! nixpkgs' definitions.

use std::path::{Path, PathBuf};
use tailshift_parsers::nix::value::Thunk;
use tailshift_parsers::nix::{Eval, Value, with_eval_stack};
use tailshift_parsers::source::{FileId, SourceMap, Span};

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data").join(dir);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "nix") && p.with_extension("json").exists())
        .collect();
    out.sort();
    out
}

fn expected(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p.with_extension("json")).unwrap()).unwrap()
}

fn rule_of(p: &Path) -> String {
    let text = std::fs::read_to_string(p).unwrap();
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("# rule: "), "{} must say which rule it pins", p.display());
    first.trim_start_matches("# rule: ").to_string()
}

const NO_SPAN: Span = Span { file: FileId(0), start: 0, end: 0 };

#[test]
fn lib_functions_match_hand_derived_values() {
    let files = fixtures("lib");
    assert!(files.len() >= 20);
    let failures = with_eval_stack(move || {
        let mut failures = Vec::new();
        for f in files {
            let rule = rule_of(&f);
            let mut ev = Eval::new(SourceMap::new());
            let got = (|| -> Result<serde_json::Value, String> {
                let func = ev.eval_file(&f).map_err(|e| e.message)?;
                let lib = ev.lib().map_err(|e| e.message)?;
                let mut arg = tailshift_parsers::nix::value::AttrMap::new();
                arg.insert("lib".into(), tailshift_parsers::nix::eval::entry(lib));
                let v = ev
                    .apply(func, Thunk::value(Value::Attrs(std::rc::Rc::new(arg))), NO_SPAN)
                    .map_err(|e| e.message)?;
                ev.to_json(&v, NO_SPAN).map_err(|e| e.message)?.map_err(|u| u.describe())
            })();
            match got {
                Ok(v) if v == expected(&f) => {}
                other => failures.push(format!("{} ({rule}): {other:?}", f.display())),
            }
        }
        failures
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn module_merging_matches_hand_derived_values() {
    let files = fixtures("modules");
    assert!(files.len() >= 15);
    let failures = with_eval_stack(move || {
        let mut failures = Vec::new();
        for f in files {
            let rule = rule_of(&f);
            let mut ev = Eval::new(SourceMap::new());
            let got = ev
                .load_modules(std::slice::from_ref(&f), None)
                .and_then(|_| ev.config_read(&["services", "tsnsrv", "services"]))
                .map_err(|e| e.message)
                .and_then(|d| d.ok_or_else(|| "undefined".to_string()))
                .and_then(|d| d.value.map_err(|u| u.describe()));
            match got {
                Ok(v) if v == expected(&f) => {}
                other => failures.push(format!("{} ({rule}): {other:?}", f.display())),
            }
        }
        failures
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Two plain definitions that disagree are an error naming both places, as in NixOS.
#[test]
fn conflicting_definitions_are_reported_with_both_locations() {
    let msg = with_eval_stack(|| {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.nix");
        std::fs::write(
            &f,
            "{ imports = [ { services.tsnsrv.services.a.toURL = \"http://x:1\"; } ];\n  services.tsnsrv.services.a.toURL = \"http://y:1\"; }\n",
        )
        .unwrap();
        let mut ev = Eval::new(SourceMap::new());
        ev.load_modules(&[f], None).unwrap();
        ev.config_read(&["services", "tsnsrv", "services", "a", "toURL"]).unwrap_err().message
    });
    assert!(msg.contains("conflicting definition values"), "{msg}");
    assert!(msg.contains("c.nix:1:") && msg.contains("c.nix:2:"), "{msg}");
}

/// A condition that depends on nixpkgs is unknown, and so is what it guards.
#[test]
fn mkif_on_unknown_condition_makes_the_value_unknown() {
    let (reason, loc) = with_eval_stack(|| {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("u.nix");
        std::fs::write(
            &f,
            "{ config, lib, ... }: {\n  services.tsnsrv.services.a.toURL = \"http://x:1\";\n  services.tsnsrv.services.a.funnel = lib.mkIf config.services.nginx.enable true;\n}\n",
        )
        .unwrap();
        let mut ev = Eval::new(SourceMap::new());
        ev.load_modules(&[f], None).unwrap();
        let d =
            ev.config_read(&["services", "tsnsrv", "services", "a", "funnel"]).unwrap().unwrap();
        let u = d.value.unwrap_err();
        (u.describe(), u.span.map(|s| ev.sources.location(s)))
    });
    assert!(reason.contains("config.services.nginx.enable"), "{reason}");
    assert_eq!(loc.map(|l| l.line), Some(3));
}
