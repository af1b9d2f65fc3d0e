//! Differential suite: every snippet under `test_data/eval` is evaluated by tailshift's evaluator
//! and compared with `nix-instantiate --eval --strict --json` (Nix 2.8). The answers of Nix are
//! recorded beside each snippet (`*.json`) so the suite runs where Nix is absent; where Nix is
//! installed (CI installs `nix-bin`), each snippet is also run through it live, so a recorded
//! answer can never drift from what Nix says.

use std::path::{Path, PathBuf};
use std::process::Command;
use tailshift_parsers::nix::{Eval, with_eval_stack};
use tailshift_parsers::source::SourceMap;

fn snippets() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/eval");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("test_data/eval")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "nix") && !p.ends_with("lib_helper.nix"))
        .collect();
    out.sort();
    out
}

fn ours(path: &Path) -> Result<serde_json::Value, String> {
    let path = path.to_path_buf();
    with_eval_stack(move || {
        let mut ev = Eval::new(SourceMap::new());
        let v = ev.eval_file(&path).map_err(|e| e.message)?;
        let span = tailshift_parsers::Span {
            file: tailshift_parsers::source::FileId(0),
            start: 0,
            end: 0,
        };
        match ev.to_json(&v, span).map_err(|e| e.message)? {
            Ok(j) => Ok(j),
            Err(u) => Err(format!("unknown: {}", u.describe())),
        }
    })
}

fn nix_available() -> bool {
    Command::new("nix-instantiate").arg("--version").output().is_ok_and(|o| o.status.success())
}

fn nix_eval(path: &Path) -> serde_json::Value {
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(path)
        .output()
        .expect("run nix-instantiate");
    assert!(
        out.status.success(),
        "nix failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("nix prints JSON")
}

#[test]
fn evaluator_agrees_with_nix_on_every_snippet() {
    let files = snippets();
    assert!(files.len() >= 40, "the suite needs at least 40 snippets, has {}", files.len());
    let live = nix_available();
    if !live {
        eprintln!("nix-instantiate not installed: comparing with the recorded answers of Nix only");
    }
    let mut failures = Vec::new();
    for f in &files {
        let recorded_path = f.with_extension("json");
        let recorded: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&recorded_path)
                .unwrap_or_else(|_| panic!("{} is recorded", recorded_path.display())),
        )
        .expect("recorded JSON");
        if live {
            let now = nix_eval(f);
            if now != recorded {
                failures.push(format!("{}: recorded answer is stale; nix says {now}", f.display()));
            }
        }
        match ours(f) {
            Ok(v) if v == recorded => {}
            Ok(v) => failures.push(format!("{}:\n  nix:  {recorded}\n  ours: {v}", f.display())),
            Err(e) => failures.push(format!("{}: our evaluator failed: {e}", f.display())),
        }
    }
    assert!(failures.is_empty(), "{} disagreements:\n{}", failures.len(), failures.join("\n"));
}
