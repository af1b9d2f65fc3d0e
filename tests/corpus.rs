//! The differential corpus: tailshift's static evaluator against the real NixOS module system.
//!
//! Each directory of `tests/corpus/` is a multi-file NixOS configuration written the way people
//! write their homelab repositories (flakes, flake-parts, Colmena, plain module trees), with
//! `tests/corpus/_expect/<name>.json` saying how to evaluate it (kept outside the configuration,
//! which tailshift reads as a whole directory). For each one, `migrate inventory` reads it and the
//! oracle evaluates it with real Nix 2.8 and nixpkgs' real `lib` (`../shared/nixpkgs-lib`,
//! `tests/corpus/_oracle/`), then every (service, option) pair the configuration's files define
//! is compared:
//!
//! * **wrong**: tailshift knows a value and it differs from the module system's (must be 0);
//! * **missing**: a service Nix has and tailshift does not list (must be 0 unless tailshift says
//!   `services_unreadable`); **extra**: the other way round (must be 0);
//! * **presence**: a service tailshift lists as `conditional` must come and go with its condition
//!   (the oracle runs with every `conditions` entry forced true, then false); one it lists
//!   unconditionally must be there in both (must be 0);
//! * **known**: pairs where tailshift has a value, at least 95% of the pairs that do not depend
//!   on an opaque input (`opaque` in the expectations: `"service.option"` or `"service.*"`).
//!   Each service's `host` counts as one pair too (known and equal to `networking.hostName`).
//!
//! A pair is an option of a service that the files define: it evaluates when tsnsrv's options
//! lose their constant defaults (a default taken from another option the files set, such as
//! `defaults.tags` or `toURL` from `urlParts`, counts), or tailshift lists it under `declared`.
//! Its expected value is the module system's value with every default. tailshift's value is its
//! `declared` entry, else its `effective` one.
//!
//! The expectations: `kind` (`flake` | `modules`), `flavour` (`upstream` | `fork`: which tsnsrv
//! option tree the oracle declares), `targets` (flake: attribute paths of evaluated systems;
//! modules: host files, each read by tailshift on its own), `inputs` (flake inputs the oracle
//! replaces: `oracle:<dir of _oracle>` or `shared:<dir of ../shared>`), `conditions` (option paths
//! of nixpkgs options the configuration tests), `opaque`.
//!
//! `tests/corpus/oracle.sh <dir>` runs the oracle by hand. Without Nix or `../shared/nixpkgs-lib`
//! the tests print `SKIPPED: ...` and pass, except with `CI=true`, where they fail.

use crate::util::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How one corpus configuration is evaluated (`_expect/<name>.json`).
struct Expect {
    kind: String,
    flavour: String,
    targets: Vec<String>,
    inputs: Vec<(String, String)>,
    conditions: Vec<String>,
    opaque: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn read_expect(name: &str) -> Expect {
    let text =
        std::fs::read_to_string(corpus_dir().join("_expect").join(format!("{name}.json"))).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    Expect {
        kind: v["kind"].as_str().unwrap().to_string(),
        flavour: v["flavour"].as_str().unwrap().to_string(),
        targets: strings(&v["targets"]),
        inputs: v["inputs"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect())
            .unwrap_or_default(),
        conditions: strings(&v["conditions"]),
        opaque: strings(&v["opaque"]),
    }
}

fn corpus_dir() -> PathBuf {
    root().join("tests/corpus")
}

fn shared() -> PathBuf {
    root().join("../shared")
}

/// Why the oracle cannot run here, if it cannot.
fn oracle_missing(exp: &Expect) -> Option<String> {
    let nix = Command::new("nix-instantiate").arg("--version").output();
    if !nix.map(|o| o.status.success()).unwrap_or(false) {
        return Some("nix-instantiate is not installed".into());
    }
    if exp.kind == "flake" {
        let nix = Command::new("nix").arg("--version").output();
        if !nix.map(|o| o.status.success()).unwrap_or(false) {
            return Some("nix is not installed".into());
        }
    }
    let lib = shared().join("nixpkgs-lib/lib");
    if !lib.is_dir() {
        return Some(format!("{} is absent", lib.display()));
    }
    for (_, src) in &exp.inputs {
        if let Some(p) = src.strip_prefix("shared:")
            && !shared().join(p).is_dir()
        {
            return Some(format!("../shared/{p} is absent"));
        }
    }
    None
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn run_ok(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed (a corpus or oracle bug, not tailshift's):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// One oracle result: `{ hostName, full, defined, errors }` per target (see `_oracle/lib.nix`).
fn oracle(dir: &Path, exp: &Expect, conditions: &Value) -> Vec<Value> {
    let oracle_dir = corpus_dir().join("_oracle");
    let env = json!({
        "oracleDir": oracle_dir.canonicalize().unwrap(),
        "nixpkgsLib": shared().join("nixpkgs-lib").canonicalize().unwrap(),
        "flavour": exp.flavour,
        "conditions": conditions,
    })
    .to_string();
    let mut results = Vec::new();
    if exp.kind == "flake" {
        // Nix reads a flake from git: a copy of the configuration, git-tracked.
        let tmp = tempfile::tempdir().unwrap();
        let flake = tmp.path().join("flake");
        copy_tree(dir, &flake);
        run_ok(Command::new("git").args(["init", "-q", "."]).current_dir(&flake), "git init");
        run_ok(Command::new("git").args(["add", "-A"]).current_dir(&flake), "git add");
        for target in &exp.targets {
            let mut cmd = Command::new("nix");
            cmd.args(["--extra-experimental-features", "nix-command flakes", "eval", "--json"])
                .args(["--impure", "--no-write-lock-file"])
                .env("TAILSHIFT_ORACLE", &env);
            for (name, src) in &exp.inputs {
                let path = if let Some(p) = src.strip_prefix("oracle:") {
                    oracle_dir.join(p)
                } else if let Some(p) = src.strip_prefix("shared:") {
                    shared().join(p)
                } else {
                    panic!("input {name}: {src} is neither oracle: nor shared:")
                };
                let path = path.canonicalize().unwrap();
                cmd.args(["--override-input", name, &format!("path:{}", path.display())]);
            }
            cmd.arg(format!("{}#{target}.tailshiftOracle", flake.display()));
            let out = run_ok(&mut cmd, &format!("nix eval {target}"));
            results.push(serde_json::from_slice(&out).unwrap());
        }
    } else {
        let lib = oracle_dir.join("lib.nix");
        for target in &exp.targets {
            let file = dir.join(target).canonicalize().unwrap();
            let expr = format!(
                "let o = import {} (builtins.fromJSON (builtins.getEnv \"TAILSHIFT_ORACLE\")); \
                 in (o.nixosSystem {{ modules = [ {} ]; }}).tailshiftOracle",
                lib.display(),
                file.display()
            );
            let out = run_ok(
                Command::new("nix-instantiate")
                    .args(["--eval", "--strict", "--json", "-E", &expr])
                    .env("TAILSHIFT_ORACLE", &env),
                &format!("nix-instantiate {target}"),
            );
            results.push(serde_json::from_slice(&out).unwrap());
        }
    }
    results
}

/// tailshift's inventory of the configuration: its services and diagnostics, with a note
/// when a run failed.
fn tailshift(name: &str, exp: &Expect) -> (Vec<Value>, Vec<Value>, Vec<String>) {
    let runs: Vec<String> = if exp.kind == "flake" {
        vec![format!("tests/corpus/{name}")]
    } else {
        exp.targets.iter().map(|t| format!("tests/corpus/{name}/{t}")).collect()
    };
    let (mut services, mut diagnostics, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    for path in runs {
        let out = migrate(&["inventory", &path, "--format", "json"]);
        match serde_json::from_slice::<Value>(&out.stdout) {
            Ok(inv) => {
                services.extend(inv["services"].as_array().cloned().unwrap_or_default());
                diagnostics.extend(inv["diagnostics"].as_array().cloned().unwrap_or_default());
                if out.status.code() != Some(0) {
                    notes
                        .push(format!("`migrate inventory {path}` exited {:?}", out.status.code()));
                }
            }
            Err(e) => notes.push(format!(
                "`migrate inventory {path}` gave no JSON ({e}), exit {:?}: {}",
                out.status.code(),
                stderr(&out).lines().take(5).collect::<Vec<_>>().join(" | ")
            )),
        }
    }
    (services, diagnostics, notes)
}

/// The figures and the differences of one configuration.
#[derive(Default)]
struct Report {
    name: String,
    nix_services: usize,
    pairs: usize,
    known: usize,
    wrong: usize,
    missing: usize,
    extra: usize,
    presence: usize,
    opaque: usize,
    unreadable: bool,
    lines: Vec<String>,
}

impl Report {
    fn unknown(&self) -> usize {
        self.pairs - self.known
    }

    fn known_pct(&self) -> f64 {
        if self.pairs == 0 { 100.0 } else { 100.0 * self.known as f64 / self.pairs as f64 }
    }

    fn row(&self) -> String {
        format!(
            "{:<18} {:>8} {:>6} {:>6} {:>6} {:>7} {:>6} {:>6} {:>8} {:>6} {:>6.1}%",
            self.name,
            self.nix_services,
            self.pairs,
            self.known,
            self.unknown(),
            self.wrong,
            self.missing,
            self.extra,
            self.presence,
            self.opaque,
            self.known_pct()
        )
    }

    fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.wrong > 0 {
            f.push(format!("{} wrong values", self.wrong));
        }
        if self.missing > 0 && !self.unreadable {
            f.push(format!("{} services missing (no services_unreadable error)", self.missing));
        }
        if self.extra > 0 {
            f.push(format!("{} services tailshift lists that Nix does not", self.extra));
        }
        if self.presence > 0 {
            f.push(format!("{} presence differences", self.presence));
        }
        if self.known * 100 < self.pairs * 95 {
            f.push(format!("only {:.1}% of pairs known (need 95%)", self.known_pct()));
        }
        f
    }
}

const HEADER: &str = "config             services  pairs  known unknown  wrong missing  extra presence opaque  known%";

fn is_opaque(exp: &Expect, svc: &str, opt: &str) -> bool {
    exp.opaque.iter().any(|o| *o == format!("{svc}.{opt}") || *o == format!("{svc}.*"))
}

fn is_conditional(svc: &Value) -> bool {
    let p = &svc["presence"];
    p == "conditional"
        || p.get("conditional").is_some()
        || p["kind"] == "conditional"
        || p["presence"] == "conditional"
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 160 { format!("{}...", &s[..160]) } else { s }
}

/// A service as the oracle gives it: (every option with defaults, the options the files define).
type NixService = (Value, Value);

/// Runs tailshift and the oracle on `tests/corpus/<name>` and compares them.
fn compare(name: &str) -> Option<Report> {
    let dir = corpus_dir().join(name);
    let exp = read_expect(name);
    if let Some(why) = oracle_missing(&exp) {
        tailshift_util::testing::skip(&format!("corpus::{name}: {why}"));
        return None;
    }
    // Variants of the oracle: every condition true, then every condition false.
    let variants: Vec<Value> = if exp.conditions.is_empty() {
        vec![json!({})]
    } else {
        [true, false]
            .iter()
            .map(|b| Value::Object(exp.conditions.iter().map(|c| (c.clone(), json!(b))).collect()))
            .collect()
    };
    // (host, service) -> per variant: Some((full, defined)).
    let mut nix: BTreeMap<(String, String), Vec<Option<NixService>>> = BTreeMap::new();
    let mut r = Report { name: name.to_string(), ..Default::default() };
    for (i, cond) in variants.iter().enumerate() {
        for result in oracle(&dir, &exp, cond) {
            let host = result["hostName"].as_str().unwrap_or("?").to_string();
            for e in result["errors"].as_array().unwrap() {
                r.lines.push(format!("oracle: {host}: {e} does not evaluate (left out)"));
            }
            for (svc, full) in result["full"].as_object().unwrap() {
                let defined = result["defined"][svc].clone();
                let slot = nix.entry((host.clone(), svc.clone())).or_default();
                slot.resize(variants.len(), None);
                slot[i] = Some((full.clone(), defined));
            }
        }
    }
    r.nix_services = nix.len();

    let (ts_services, diagnostics, notes) = tailshift(name, &exp);
    r.lines.extend(notes.into_iter().map(|n| format!("tailshift: {n}")));
    r.unreadable =
        diagnostics.iter().any(|d| d["code"] == "services_unreadable" && d["severity"] == "error");
    for d in diagnostics.iter().filter(|d| d["severity"] == "error") {
        r.lines.push(format!(
            "tailshift error diagnostic {}: {} ({})",
            d["code"],
            d["message"].as_str().unwrap_or(""),
            d["service"].as_str().unwrap_or("-")
        ));
    }
    let ts_host = |s: &Value| s["host"]["known"]["value"].as_str().unwrap_or("?").to_string();
    let mut matched = vec![false; ts_services.len()];

    for ((host, svc), slots) in &nix {
        let present: Vec<bool> = slots.iter().map(|s| s.is_some()).collect();
        let (full, defined) = slots.iter().flatten().next().unwrap();
        let defined_opts: BTreeSet<&String> =
            defined.as_object().map(|m| m.keys().collect()).unwrap_or_default();
        // The same host and name; else the same name on a host Nix does not have it on.
        let found = ts_services
            .iter()
            .enumerate()
            .position(|(i, s)| !matched[i] && s["name"] == **svc && ts_host(s) == *host)
            .or_else(|| {
                ts_services.iter().enumerate().position(|(i, s)| {
                    !matched[i]
                        && s["name"] == **svc
                        && !nix.contains_key(&(ts_host(s), svc.clone()))
                })
            });
        let Some(idx) = found else {
            r.missing += 1;
            r.pairs += 1; // its host
            let mut opaque = 0;
            for o in &defined_opts {
                if is_opaque(&exp, svc, o) {
                    opaque += 1;
                } else {
                    r.pairs += 1;
                }
            }
            r.opaque += opaque;
            r.lines.push(format!(
                "missing: {host}/{svc} ({} defined options: {})",
                defined_opts.len(),
                defined_opts.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
            continue;
        };
        matched[idx] = true;
        let ts = &ts_services[idx];
        r.pairs += 1;
        if let Some(known) = ts["host"]["known"]["value"].as_str() {
            r.known += 1;
            if known != host {
                r.wrong += 1;
                r.lines.push(format!("wrong: {host}/{svc} host: tailshift {known:?}"));
            }
        } else {
            r.lines.push(format!(
                "unknown: {host}/{svc} host: {}",
                ts["host"]["unknown"]["reason"].as_str().unwrap_or("not reported")
            ));
        }
        // Presence.
        if is_conditional(ts) {
            if present.iter().all(|p| *p) || variants.len() < 2 {
                r.presence += 1;
                r.lines.push(format!(
                    "presence: {host}/{svc}: tailshift says conditional, Nix has it {}",
                    if variants.len() < 2 {
                        "(no condition tested)".into()
                    } else {
                        "whatever the conditions".to_string()
                    }
                ));
            }
        } else if !present.iter().all(|p| *p) {
            r.presence += 1;
            r.lines.push(format!(
                "presence: {host}/{svc}: tailshift lists it unconditionally, Nix has it only with \
                 the conditions {}",
                if present[0] { "true" } else { "false" }
            ));
        }
        // Values.
        let declared = ts["declared"].as_object().cloned().unwrap_or_default();
        let full_obj = full.as_object().unwrap();
        let mut opts: BTreeSet<String> = defined_opts.iter().map(|s| s.to_string()).collect();
        for k in declared.keys() {
            if full_obj.contains_key(k) {
                opts.insert(k.clone());
            } else if k != "package" {
                r.lines.push(format!(
                    "note: {host}/{svc}: tailshift declares `{k}`, which the {} module has not",
                    exp.flavour
                ));
            }
        }
        for opt in &opts {
            let want = &full_obj[opt];
            if is_opaque(&exp, svc, opt) {
                r.opaque += 1;
                continue;
            }
            r.pairs += 1;
            let (entry, part) = match declared.get(opt) {
                Some(e) => (e.clone(), "declared"),
                None => (ts["effective"][opt].clone(), "effective"),
            };
            if let Some(known) = entry.get("known") {
                r.known += 1;
                if known["value"] != *want {
                    r.wrong += 1;
                    r.lines.push(format!(
                        "wrong: {host}/{svc}.{opt}: tailshift ({part}) {} , Nix {}",
                        short(&known["value"]),
                        short(want)
                    ));
                }
            } else {
                let why = entry["unknown"]["reason"]
                    .as_str()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "not reported".into());
                r.lines.push(format!(
                    "unknown: {host}/{svc}.{opt} (Nix {}): {}",
                    short(want),
                    why.chars().take(200).collect::<String>()
                ));
            }
        }
    }
    for (i, s) in ts_services.iter().enumerate() {
        if !matched[i] {
            r.extra += 1;
            r.lines.push(format!(
                "extra: {}/{}: tailshift lists it, Nix does not{}",
                ts_host(s),
                s["name"].as_str().unwrap_or("?"),
                if is_conditional(s) { " (conditional)" } else { "" }
            ));
        }
    }
    Some(r)
}

fn print(r: &Report) {
    let mut out = String::new();
    writeln!(out, "{HEADER}").unwrap();
    writeln!(out, "{}", r.row()).unwrap();
    for l in &r.lines {
        writeln!(out, "  {l}").unwrap();
    }
    eprintln!("{out}");
}

/// The differential test of one configuration.
fn check(name: &str) {
    let Some(r) = compare(name) else { return };
    print(&r);
    let failures = r.failures();
    assert!(failures.is_empty(), "corpus::{name}: {}", failures.join("; "));
}

macro_rules! corpus {
    ($($test:ident => $dir:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                check($dir);
            }
        )*
        const ALL: &[&str] = &[$($dir),*];
    };
}

corpus! {
    flake_basic => "flake-basic",
    flake_readdir => "flake-readdir",
    flake_genattrs => "flake-genattrs",
    flake_parts => "flake-parts",
    colmena_hive => "colmena-hive",
    opaque_inputs => "opaque-inputs",
    module_options => "module-options",
    toml_json_data => "toml-json-data",
    secrets_tostring => "secrets-tostring",
    conditional_enable => "conditional-enable",
    options_probe => "options-probe",
    fork_auth => "fork-auth",
    upstream_tls => "upstream-tls",
    homelab_flake => "homelab-flake",
}

/// The homelab scenario as a flake (`tests/corpus/homelab-flake`): every one of the 71 services
/// of `../shared/scenarios/homelab/expected/*.json`, exactly, as `inventory.rs` checks the flat
/// files: the same options under `declared` with the same values and a location each, the
/// module's defaults on top.
#[test]
fn homelab_flake_gives_exactly_the_71_expected_services() {
    let Some(homelab) = homelab() else { return };
    let out = migrate(&["inventory", "tests/corpus/homelab-flake", "--format", "json"]);
    let inv = json(&out);
    let services = inv["services"].as_array().unwrap();
    let mut problems = Vec::new();
    let mut total = 0;
    for (host, count) in [("storage", 57), ("cloud", 14)] {
        let path = root().join(homelab).join(format!("expected/{host}.json"));
        let exp: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let want = exp["services"].as_object().unwrap();
        assert_eq!(want.len(), count);
        total += count;
        let mine: Vec<&Value> =
            services.iter().filter(|s| s["host"]["known"]["value"] == host).collect();
        if mine.len() != count {
            problems.push(format!("{host}: {} services, want {count}", mine.len()));
        }
        for (name, attrs) in want {
            let Some(svc) = mine.iter().find(|s| s["name"] == **name) else {
                problems.push(format!("{host}/{name}: missing"));
                continue;
            };
            let declared = svc["declared"].as_object().cloned().unwrap_or_default();
            let attrs = attrs.as_object().unwrap();
            let extra: Vec<&String> = declared.keys().filter(|k| !attrs.contains_key(*k)).collect();
            if !extra.is_empty() {
                problems.push(format!("{host}/{name}: declared also has {extra:?}"));
            }
            for (k, v) in attrs {
                if value(svc, "declared", k) != v {
                    let got = &svc["declared"][k];
                    let got = if got.is_null() { "not declared".into() } else { short(got) };
                    problems.push(format!("{host}/{name}.{k}: {got} , want {v}"));
                } else if svc["declared"][k]["known"]["source"]["location"]["line"]
                    .as_u64()
                    .is_none()
                {
                    problems.push(format!("{host}/{name}.{k}: no location"));
                }
            }
            for (k, v) in exp["defaults"].as_object().unwrap() {
                if value(svc, "effective", k) != v {
                    problems.push(format!(
                        "{host}/{name}: effective {k} {} , defaults.{k} is {v}",
                        short(&svc["effective"][k])
                    ));
                }
            }
        }
    }
    if services.len() != total {
        problems.push(format!("{} services in all, want {total}", services.len()));
    }
    for p in &problems {
        eprintln!("  {p}");
    }
    assert!(problems.is_empty(), "homelab-flake: {} differences (above)", problems.len());
}

/// Every configuration's figures in one table (no assertions; the per-configuration tests
/// assert): `cargo test --test integration corpus::table -- --ignored --nocapture`.
#[test]
#[ignore = "prints the corpus table for the notes; the per-configuration tests assert"]
fn table() {
    let reports: Vec<Report> = ALL.iter().filter_map(|n| compare(n)).collect();
    let mut out = format!("{HEADER}\n");
    for r in &reports {
        writeln!(out, "{}", r.row()).unwrap();
    }
    let total = |f: fn(&Report) -> usize| reports.iter().map(f).sum::<usize>();
    writeln!(
        out,
        "{:<18} {:>8} {:>6} {:>6} {:>6} {:>7} {:>6} {:>6} {:>8} {:>6}",
        "total",
        total(|r| r.nix_services),
        total(|r| r.pairs),
        total(|r| r.known),
        total(|r| r.unknown()),
        total(|r| r.wrong),
        total(|r| r.missing),
        total(|r| r.extra),
        total(|r| r.presence),
        total(|r| r.opaque)
    )
    .unwrap();
    eprintln!("{out}");
    for r in &reports {
        print(r);
    }
}

/// A pure stand-in for nixpkgs that `migrate inventory --evaluator nix` can give Nix with
/// `--override-input` (Nix evaluates flakes purely, so everything the oracle reads is copied into
/// it: nixpkgs' lib and the oracle's files).
fn pure_nixpkgs_stub(into: &Path, flavour: &str) -> PathBuf {
    let stub = into.join("nixpkgs");
    copy_tree(&corpus_dir().join("_oracle"), &stub.join("oracle"));
    copy_tree(&corpus_dir().join("_oracle/nixpkgs-stub"), &stub);
    copy_tree(&shared().join("nixpkgs-lib/lib"), &stub.join("nixpkgs-lib/lib"));
    std::fs::write(
        stub.join("cfg.nix"),
        format!("{{ oracle = import ./oracle/lib.nix {{ nixpkgsLib = ./nixpkgs-lib; flavour = \"{flavour}\"; }}; }}\n"),
    )
    .unwrap();
    // The oracle's own stand-ins read their settings from the environment (impure); these read
    // them from cfg.nix.
    let impure = "  cfg = builtins.fromJSON (builtins.getEnv \"TAILSHIFT_ORACLE\");\n  oracle = import (cfg.oracleDir + \"/lib.nix\") cfg;\n";
    for (file, cfg) in
        [("default.nix", "./cfg.nix"), ("nixos/lib/eval-config.nix", "../../cfg.nix")]
    {
        let text = std::fs::read_to_string(stub.join(file)).unwrap();
        assert!(text.contains(impure), "{file} changed: update the pure stub");
        let text = text.replace(impure, &format!("  oracle = (import {cfg}).oracle;\n"));
        std::fs::write(stub.join(file), text).unwrap();
    }
    std::fs::write(
        stub.join("flake.nix"),
        format!(
            r#"{{
  outputs = {{ self }}:
    let oracle = import ./oracle/lib.nix {{ nixpkgsLib = ./nixpkgs-lib; flavour = "{flavour}"; }};
    in {{ inherit (oracle) lib; nixosModules.notDetected = {{ }}; }};
}}
"#
        ),
    )
    .unwrap();
    stub
}

/// Every flake of the corpus read by both evaluators (`--cross-check`): no difference in
/// presence or in known values, and the user's tree unchanged (no `flake.lock` written).
#[test]
fn flakes_cross_check_with_real_nix() {
    let mut problems = Vec::new();
    for name in ALL {
        let exp = read_expect(name);
        if exp.kind != "flake" {
            continue;
        }
        if let Some(why) = oracle_missing(&exp) {
            tailshift_util::testing::skip(&why);
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let flake = tmp.path().join("flake");
        copy_tree(&corpus_dir().join(name), &flake);
        run_ok(Command::new("git").args(["init", "-q", "."]).current_dir(&flake), "git init");
        run_ok(Command::new("git").args(["add", "-A"]).current_dir(&flake), "git add");
        let before = tree_listing(&flake);
        let stub = pure_nixpkgs_stub(tmp.path(), &exp.flavour);
        let mut args: Vec<String> = vec![
            "inventory".into(),
            flake.display().to_string(),
            "--cross-check".into(),
            "--format".into(),
            "json".into(),
        ];
        for (input, src) in &exp.inputs {
            let path = if input == "nixpkgs" {
                stub.clone()
            } else if let Some(p) = src.strip_prefix("oracle:") {
                corpus_dir().join("_oracle").join(p)
            } else {
                shared().join(src.strip_prefix("shared:").unwrap())
            };
            let path = path.canonicalize().unwrap();
            args.extend([
                "--override-input".into(),
                input.clone(),
                format!("path:{}", path.display()),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = migrate(&args);
        let err = stderr(&out);
        let summary = err.lines().find(|l| l.starts_with("cross-check")).unwrap_or("").to_string();
        eprintln!("{name}: {summary}");
        if !summary.ends_with(" 0 difference(s)") {
            problems.push(format!("{name}: {summary}\n{err}"));
        }
        if tree_listing(&flake) != before {
            problems.push(format!("{name}: the tree changed (flake.lock written?)"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn tree_listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_name() == ".git" {
            continue;
        }
        out.push(e.file_name().to_string_lossy().into_owned());
        if e.file_type().unwrap().is_dir() {
            out.extend(
                tree_listing(&e.path())
                    .into_iter()
                    .map(|s| format!("{}/{s}", e.file_name().to_string_lossy())),
            );
        }
    }
    out.sort();
    out
}
