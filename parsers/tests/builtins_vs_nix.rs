//! Differential test of the builtins configurations call (`fromTOML`, `fromJSON`, `readFile`,
//! `readDir`, `pathExists`, `hashFile`, `genericClosure`, `functionArgs`, `tryEval`, `seq`,
//! `deepSeq`, `unsafeGetAttrPos`, string coercion of sets with `__toString`/`outPath`, ...):
//! every expression is evaluated by tailshift's evaluator and by
//! `nix-instantiate --eval --strict --json -E` (Nix 2.8), over files in a temporary directory,
//! and the answers must be equal JSON, or both an error. Nix runs with the `flakes` experimental
//! feature on (it adds `builtins.getFlake`), as flake configurations are evaluated.
//!
//! Without `nix-instantiate` the test is skipped, except under CI (`CI=true`), where it fails.

use std::path::Path;
use std::process::Command;
use tailshift_parsers::nix::{eval_to_json, with_eval_stack};

/// `@D@` in an expression stands for the temporary directory.
const CASES: &[&str] = &[
    // The builtins set itself, and how its names are bound.
    "builtins.attrNames builtins",
    "[ (builtins ? fromTOML) (builtins ? readDir) (builtins ? genericClosure) (builtins ? fetchGit) (builtins ? nope) ]",
    "map builtins.typeOf [ __getFlake fromTOML __readDir __genericClosure fetchGit __fetchurl __storeDir __langVersion __nixVersion derivation placeholder ]",
    "[ builtins.storeDir builtins.langVersion builtins.nixVersion ]",
    "builtins.builtins.builtins ? map",
    r#"[ (builtins ? currentSystem) ({ a = throw "x"; } ? a) ({ a.b = throw "x"; } ? a.b) ({ a = 1; } ? a.b) ]"#,
    // fromTOML
    "builtins.fromTOML (builtins.readFile ./ports.toml)",
    "fromTOML (builtins.readFile @D@/ports.toml)",
    r#"builtins.fromTOML "a=0x10\nb=1e3\nc=1_000\nd=0o17\ne=0b11\nf=-7\ng=+3""#,
    r#"builtins.fromTOML "[[x]]\na=1\n[[x]]\nb=\"s\"\n[y.z]\nw=[1,2.0]""#,
    r#"builtins.fromTOML "\"a.b\"=1\nc.d=2\ne={f=[],g={}}\n[t]\n'lit key'=true""#,
    r#"builtins.fromTOML "a=\"\"\"\nmulti\nline\"\"\"\nb='C:\\path'\nc=\"tab\\there \\u00e9\"\nd='''\nraw\\n'''""#,
    r#"builtins.fromTOML "a=1.0\nb=0.1\nc=-3.5e-7\nd=3.0e20\ne=[[1],[\"x\"]]""#,
    r#"map builtins.typeOf (builtins.attrValues (builtins.fromTOML "a=1\nb=1.0\nc=true\nd='s'\ne=[]\nf={}"))"#,
    r#"builtins.fromTOML """#,
    r#"builtins.fromTOML "a = 1979-05-27""#,
    r#"builtins.fromTOML "a = 1979-05-27T07:32:00Z""#,
    r#"builtins.fromTOML "x=1\nx=2""#,
    r#"builtins.fromTOML "x=""#,
    "builtins.fromTOML 1",
    // fromJSON
    "builtins.fromJSON (builtins.readFile ./data.json)",
    r#"builtins.fromJSON "{\"a\":1.5e300,\"b\":[true,null,false],\"c\":\"\\u00e9\\n\",\"d\":{}}""#,
    r#"map builtins.fromJSON [ "1e2" "-0" "1.0" "5" "-5" "0.5" "9223372036854775807" "18446744073709551615" "99999999999999999999" "-9223372036854775809" ]"#,
    r#"map (x: builtins.typeOf (builtins.fromJSON x)) [ "1e2" "-0" "1.0" "5" "18446744073709551615" "99999999999999999999" ]"#,
    r#"builtins.fromJSON "{\"a\":1,\"a\":2}""#,
    r#"builtins.fromJSON " [ ] ""#,
    r#"builtins.fromJSON "\"\\ud83d\\ude00\"""#,
    r#"builtins.fromJSON "null""#,
    r#"builtins.fromJSON "{""#,
    r#"builtins.fromJSON "1 2""#,
    // readFile
    "builtins.readFile ./hello.txt",
    "builtins.readFile (toString ./hello.txt)",
    r#"builtins.readFile "@D@/tree/link""#,
    "builtins.readFile { outPath = toString ./hello.txt; }",
    "builtins.readFile ./tree",
    r#"builtins.readFile "hello.txt""#,
    // readDir
    "builtins.readDir ./tree",
    "builtins.readDir (toString ./tree/sub)",
    "builtins.attrNames (builtins.readDir ./.)",
    "builtins.readDir ./hello.txt",
    // pathExists
    r#"map builtins.pathExists [ ./hello.txt ./nope ./tree ./tree/sub ./tree/dangling ./tree/link (toString ./hello.txt) "@D@/tree/a.txt" "@D@/tree/" "@D@/tree/../hello.txt" ]"#,
    r#"builtins.pathExists "relative""#,
    // hashFile, hashString
    r#"map (a: builtins.hashFile a ./hello.txt) [ "md5" "sha1" "sha256" "sha512" ]"#,
    r#"map (a: builtins.hashString a "hello") [ "md5" "sha1" "sha256" "sha512" ]"#,
    r#"builtins.hashFile "sha3" ./hello.txt"#,
    // genericClosure
    "builtins.genericClosure { startSet = [{key=1;} {key=2;}]; operator = x: if x.key < 5 then [{key = x.key * 2;} {key = x.key + 1; extra = true;}] else []; }",
    r#"builtins.genericClosure { startSet = [{key=[1 "a"];}]; operator = x: [{key=[1 "a"];} {key=[1 "b"];}]; }"#,
    "builtins.genericClosure { startSet = [{key=1;} {key=1.0;}]; operator = x: []; }",
    r#"builtins.genericClosure { startSet = [{key="b";} {key="a";} {key="b"; x = 1;}]; operator = x: []; }"#,
    "builtins.genericClosure { startSet = []; operator = throw \"unused\"; }",
    r#"builtins.genericClosure { startSet = [{key=1;} {key="a";}]; operator = x: []; }"#,
    "builtins.genericClosure { startSet = [{}]; operator = x: []; }",
    "builtins.genericClosure { operator = x: []; }",
    // functionArgs
    "builtins.functionArgs ({a, b ? 1, ...}: a)",
    "builtins.functionArgs ({a ? 1, b}@args: a)",
    "builtins.functionArgs (x: x)",
    "[ (builtins.functionArgs builtins.map) (builtins.functionArgs (builtins.map (x: x))) ]",
    "builtins.functionArgs { __functor = self: x: x; }",
    // tryEval, seq, deepSeq
    r#"builtins.tryEval (throw "x")"#,
    "builtins.tryEval (assert false; 1)",
    "builtins.tryEval 1",
    r#"builtins.tryEval (builtins.tryEval (throw "x"))"#,
    r#"(builtins.tryEval { a = throw "x"; }).success"#,
    r#"builtins.tryEval (builtins.deepSeq { a = throw "x"; } 1)"#,
    r#"builtins.tryEval (builtins.seq (throw "a") 1)"#,
    r#"builtins.tryEval (abort "x")"#,
    "builtins.tryEval ({}.a)",
    r#"builtins.seq { a = throw "x"; } 2"#,
    "builtins.deepSeq [ 1 { b = 2; } ] 3",
    r#"builtins.seq (throw "x") 1"#,
    r#"builtins.deepSeq [ { a = [ (throw "x") ]; } ] 1"#,
    // unsafeGetAttrPos (from a file: with -E, Nix names the file by the expression's text)
    r#"map (n: builtins.unsafeGetAttrPos n (import ./pos.nix)) [ "a" "map" "v" "x" "quoted" "dyn" "head" "tail" "w" "b" "missing" ]"#,
    r#"[ (builtins.unsafeGetAttrPos "y" (import ./pos.nix).x) (builtins.unsafeGetAttrPos "c" (import ./pos.nix).b) ]"#,
    r#"builtins.unsafeGetAttrPos "a" (import ./pos.nix // { b = 1; })"#,
    r#"builtins.unsafeGetAttrPos "a" (builtins.fromJSON "{\"a\":1}")"#,
    r#"builtins.unsafeGetAttrPos "a" (builtins.removeAttrs (import ./pos.nix) [ "v" ])"#,
    // Coercion of sets to strings
    r#""${{ __toString = s: "hi${s.x}"; x = "!"; }}""#,
    r#""${{ outPath = "/foo"; }}""#,
    r#"toString { outPath = "/foo"; }"#,
    r#""a" + { __toString = _: "b"; }"#,
    r#"{ __toString = _: "b"; } + "a""#,
    r#"{ outPath = "o"; } + "a""#,
    r#"{ outPath = "o"; } + { outPath = "p"; }"#,
    r#"{ __toString = s: "x"; outPath = "o"; } + """#,
    "toString { __toString = s: 1; }",
    "toString { __toString = s: [ 1 2 ]; }",
    r#""${{ __toString = s: { outPath = "x"; }; }}""#,
    r#""${{ __toString = s: 1; }}""#,
    r#"toString { __toString = self: self.v; v = "w"; }"#,
    r#"builtins.stringLength { outPath = "abc"; }"#,
    r#"builtins.toJSON [ { __toString = _: "s"; } { outPath = "o"; x = 1; } ]"#,
    r#"builtins.concatStringsSep "," [ { outPath = "a"; } "b" ]"#,
    r#"builtins.replaceStrings [ "a" ] [ "b" ] { outPath = "aa"; }"#,
    r#"builtins.replaceStrings [ { outPath = "a"; } ] [ "b" ] "a""#,
    r#"builtins.match "a" { outPath = "a"; }"#,
    r#"builtins.split "a" { outPath = "a"; }"#,
    r#"builtins.hashString "md5" { outPath = "a"; }"#,
    r#"builtins.substring 0 1 { outPath = "ab"; }"#,
    r#"baseNameOf { outPath = "/x/y"; }"#,
    r#"let secret = { path = "/run/secrets/x"; __toString = s: s.path; }; in "--token-file=${secret}""#,
    r#"{ __toString = s: "x"; } == "x""#,
    r#"[ (toString 1.5) (toString [ 1 null true "a" [ 2 ] ]) (toString null) (toString false) ]"#,
    r#"{ a = 1; } + "x""#,
    r#"null + "a""#,
    r#"[ 1 ] + "a""#,
    r#"1 + "a""#,
    r#"1 + { outPath = "x"; }"#,
    // Strings carry their context without meaning here.
    r#"[ (builtins.getContext "abc") (builtins.appendContext "abc" {}) (builtins.unsafeDiscardOutputDependency "x") (builtins.hasContext "x") (builtins.unsafeDiscardStringContext "y") ]"#,
    // toPath, placeholder
    r#"builtins.toPath "/a/../b//c/""#,
    r#"builtins.toPath "a""#,
    r#"map builtins.placeholder [ "out" "dev" "" ]"#,
];

const PORTS_TOML: &str = r#"# service ports
title = "ports"
base = 8000

[services]
grafana = 3000
"prometheus.web" = 9090
enabled = [ "grafana", "prometheus" ]

[services.loki]
port = 3100
ratio = 0.75
public = false

[[funnels]]
name = "a"
port = 443

[[funnels]]
name = "b"
port = 8443
"#;

const DATA_JSON: &str =
    r#"{ "name": "svc", "ports": [80, 443], "nested": { "x": null, "f": 1.25 } }"#;

const POS_NIX: &str = r#"let v = 1; w = 2; in
{
  a = 1;
  inherit (builtins) map;
  inherit v;
  x.y = 2;
  "quoted" = 3;
  ${"dyn"} = 4;
  inherit (builtins) head tail;
  inherit
    w;
  b = { c = 5; };
}
"#;

fn write_tree(dir: &Path) {
    std::fs::write(dir.join("ports.toml"), PORTS_TOML).unwrap();
    std::fs::write(dir.join("data.json"), DATA_JSON).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello\nworld\n").unwrap();
    std::fs::write(dir.join("pos.nix"), POS_NIX).unwrap();
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a.txt"), "a").unwrap();
    std::fs::write(tree.join("sub/b.txt"), "b").unwrap();
    std::os::unix::fs::symlink("a.txt", tree.join("link")).unwrap();
    std::os::unix::fs::symlink("missing", tree.join("dangling")).unwrap();
    // A socket: `readDir` calls it "unknown".
    drop(std::os::unix::net::UnixListener::bind(tree.join("sock")).unwrap());
}

fn nix_available() -> bool {
    Command::new("nix-instantiate").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Nix's answer: `Ok(json)` or `Err(stderr)`.
fn nix_eval(dir: &Path, expr: &str) -> Result<serde_json::Value, String> {
    let out = Command::new("nix-instantiate")
        .args(["--extra-experimental-features", "flakes"])
        .args(["--eval", "--strict", "--json", "-E", expr])
        .current_dir(dir)
        .output()
        .expect("run nix-instantiate");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("nix printed invalid JSON: {e}"))
}

#[test]
fn builtins_agree_with_nix() {
    if !nix_available() {
        tailshift_util::testing::skip("nix-instantiate is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    write_tree(&dir);
    let d = dir.to_str().unwrap().to_string();
    let cases: Vec<String> = CASES.iter().map(|c| c.replace("@D@", &d)).collect();
    let name = format!("{d}/expr.nix");
    let ours: Vec<Result<serde_json::Value, String>> = with_eval_stack({
        let cases = cases.clone();
        move || cases.iter().map(|c| eval_to_json(&name, c)).collect()
    });
    let mut failures = Vec::new();
    for (expr, ours) in cases.iter().zip(ours) {
        let nix = nix_eval(&dir, expr);
        let agree = match (&ours, &nix) {
            (Ok(a), Ok(b)) => a == b,
            (Err(e), Err(_)) => !e.starts_with("unknown:"),
            _ => false,
        };
        if !agree {
            failures.push(format!("{expr}\n  tailshift: {ours:?}\n  nix:       {nix:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} expressions disagree with Nix:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
