//! Files as values: evaluating a file (cached, as `import` is), `import` itself, tailshift's own
//! `lib`, and the files of a flake that Nix does not see.

use crate::diagnostic::Diagnostic;
use crate::nix::error::{ErrorKind, EvalError, type_err};
use crate::nix::files::{normalize, read_source};
use crate::nix::value::*;
use crate::source::Span;
use std::path::{Path, PathBuf};

/// tailshift's implementation of the nixpkgs `lib` functions it knows.
pub const LIB_NIX: &str = include_str!("../lib.nix");

impl Eval {
    /// Evaluates a file (cached, as `import` is).
    pub fn eval_file(&mut self, path: &Path) -> EvalResult {
        let path = normalize(path);
        if let Some(t) = self.imports.get(&path).cloned() {
            return self.force(&t);
        }
        let text = read_source(&path).map_err(|e| {
            EvalError::new(ErrorKind::Other, format!("cannot read {}: {e}", path.display()), None)
        })?;
        let file = self.sources.add(path.clone(), text);
        let expr = self.parse(file)?;
        let t = Thunk::pending(expr, self.globals.clone());
        self.imports.insert(path, t.clone());
        self.force(&t)
    }

    /// Evaluates an expression text (tests, `--expr`).
    pub fn eval_text(&mut self, name: &str, text: &str) -> EvalResult {
        let file = self.sources.add(name, text.to_string());
        let expr = self.parse(file)?;
        self.eval(&expr, &self.globals.clone())
    }

    /// The `lib` attribute set (tailshift's own implementation of the nixpkgs functions it knows).
    pub fn lib(&mut self) -> EvalResult {
        if let Some(t) = self.lib.clone() {
            return self.force(&t);
        }
        let file = self.sources.add("<tailshift lib>", LIB_NIX.to_string());
        let expr = self.parse(file)?;
        let t = Thunk::pending(expr, self.globals.clone());
        self.lib = Some(t.clone());
        self.force(&t)
    }

    /// For a file of a flake Nix does not see (not tracked by git): a warning at `span` and the
    /// unknown it is.
    pub fn untracked(&mut self, path: &Path, span: Span) -> Option<Value> {
        if !self.git.as_ref().is_some_and(|g| g.hides(path)) {
            return None;
        }
        let msg = format!(
            "{} is not tracked by git, so Nix does not see it in the flake: `git add` it (what it defines is unknown)",
            path.display()
        );
        let loc = self.sources.location(span);
        self.diagnostics.push(Diagnostic::error("untracked_file", msg.clone()).at(Some(loc)));
        Some(Value::unknown(msg, Some(span)))
    }

    /// Imports a file named by a path value; missing files and unknown paths become unknown.
    pub fn import(&mut self, v: &Value, span: Span) -> EvalResult {
        let path = match v {
            Value::Path(p) => (**p).clone(),
            Value::Str(s) if s.starts_with('/') => PathBuf::from(&**s),
            Value::Unknown(_) => return Ok(v.clone()),
            Value::Attrs(_) => match self.coerce_to_string(v, span, false)? {
                Ok(s) => PathBuf::from(s),
                Err(u) => return Ok(u),
            },
            other => {
                return Err(type_err(format!("cannot import {}", article(other)), span));
            }
        };
        let path = if path.is_dir() { path.join("default.nix") } else { path };
        if let Some(u) = self.untracked(&path, span) {
            return Ok(u);
        }
        if !path.exists() {
            let loc = self.sources.location(span);
            self.diagnostics.push(
                Diagnostic::warning(
                    "import_not_found",
                    format!(
                        "imported file {} does not exist; what it defines is unknown",
                        path.display()
                    ),
                )
                .at(Some(loc)),
            );
            return Ok(Value::unknown(
                format!("comes from {}, which does not exist", path.display()),
                Some(span),
            ));
        }
        self.eval_file(&path)
    }
}
