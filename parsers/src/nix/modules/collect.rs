//! Reading the modules of a host: files and inline modules, followed through `imports`
//! breadth-first (the order nixpkgs' `collectModules` gives, which list definitions keep),
//! without the ones `disabledModules` removes. A module that cannot be read is said, and does
//! not hide the others.

use crate::diagnostic::Diagnostic;
use crate::nix::error::{ErrorKind, EvalError};
use crate::nix::files::{normalize, read_source};
use crate::nix::modules::kinds::OPTION_DEFAULT_PRIORITY;
use crate::nix::modules::state::ModuleInfo;
use crate::nix::value::*;
use crate::source::Span;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// A module still to read.
enum Pending {
    /// A file, and the `imports` entry that named it.
    File(PathBuf, Option<Span>),
    /// An inline module (a set or a function).
    Value(Value, Span),
}

impl Eval {
    /// Reads NixOS modules from files (following `imports`). `host` defines
    /// `networking.hostName` at option-default priority, so the files' own value wins.
    pub fn load_modules(&mut self, roots: &[PathBuf], host: Option<&str>) -> Result<(), EvalError> {
        self.modules_mut();
        if let Some(h) = host {
            let mut o = AttrMap::new();
            o.insert("_type".into(), entry(Value::string("override")));
            o.insert("priority".into(), entry(Value::Int(OPTION_DEFAULT_PRIORITY)));
            o.insert("content".into(), entry(Value::string(h)));
            let mut net = AttrMap::new();
            net.insert("hostName".into(), entry(Value::Attrs(Rc::new(o))));
            let mut top = AttrMap::new();
            top.insert("networking".into(), entry(Value::Attrs(Rc::new(net))));
            self.modules_mut().modules.push(ModuleInfo {
                defs: Thunk::value(Value::Attrs(Rc::new(top))),
                options: None,
                file: None,
            });
        }
        // Breadth-first, parents before their imports, as nixpkgs' `collectModules`
        // (genericClosure) orders them: list definitions concatenate in that order.
        let mut queue: std::collections::VecDeque<Pending> =
            roots.iter().map(|r| Pending::File(r.clone(), None)).collect();
        let mut first_err = None;
        while let Some(next) = queue.pop_front() {
            let (result, root, at) = match next {
                Pending::File(p, from) => (self.load_module_file(&p, from), from.is_none(), from),
                Pending::Value(v, at) => (self.load_module_value(v, at), false, Some(at)),
            };
            match result {
                Ok(imports) => queue.extend(imports),
                Err(e) if root => {
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    // One broken import does not hide the other modules.
                    if e.kind != ErrorKind::Syntax {
                        let span = e.span.or(at);
                        self.diagnostics.push(
                            Diagnostic::error("eval_error", e.message.clone())
                                .at(span.map(|s| self.sources.location(s))),
                        );
                    }
                }
            }
        }
        self.apply_disabled();
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Reads a host's modules given as values (a flake's `nixosSystem { modules; specialArgs; }`):
    /// `specialArgs` reach every module; `host` is the host's name at option-default priority.
    pub fn load_module_values(
        &mut self,
        modules: Vec<(Thunk, Span)>,
        special_args: Vec<(Rc<str>, Thunk)>,
        host: Option<&str>,
    ) -> Result<(), EvalError> {
        self.modules_mut().special_args = special_args.into_iter().collect();
        self.load_modules(&[], host)?;
        let mut queue: std::collections::VecDeque<Pending> = std::collections::VecDeque::new();
        for (t, span) in modules {
            match self.force(&t) {
                Ok(Value::Path(p)) => queue.push_back(Pending::File((*p).clone(), Some(span))),
                Ok(Value::Str(s)) if s.starts_with('/') => {
                    queue.push_back(Pending::File(PathBuf::from(&*s), Some(span)))
                }
                Ok(v) => queue.push_back(Pending::Value(v, span)),
                Err(e) => {
                    let span = e.span.or(Some(span));
                    self.diagnostics.push(
                        Diagnostic::error(
                            "eval_error",
                            format!("a module of the host cannot be evaluated: {}", e.message),
                        )
                        .at(span.map(|s| self.sources.location(s))),
                    );
                }
            }
        }
        self.drain_modules(queue);
        self.apply_disabled();
        Ok(())
    }

    /// Removes the modules `disabledModules` names that were read before it was seen.
    fn apply_disabled(&mut self) {
        let ms = self.modules_mut();
        if ms.disabled.is_empty() {
            return;
        }
        let disabled = ms.disabled.clone();
        for m in ms.modules.iter_mut() {
            if m.file.as_ref().is_some_and(|f| disabled.contains(f)) {
                m.defs = Thunk::value(Value::Attrs(Rc::new(AttrMap::new())));
                m.options = None;
            }
        }
        ms.loaded.retain(|f| !disabled.contains(f));
    }

    /// Reads queued modules breadth-first; a broken one is said and does not hide the others.
    fn drain_modules(&mut self, mut queue: std::collections::VecDeque<Pending>) {
        while let Some(next) = queue.pop_front() {
            let (result, at) = match next {
                Pending::File(p, from) => (self.load_module_file(&p, from), from),
                Pending::Value(v, at) => (self.load_module_value(v, at), Some(at)),
            };
            match result {
                Ok(imports) => queue.extend(imports),
                Err(e) if e.kind != ErrorKind::Syntax => {
                    let span = e.span.or(at);
                    self.diagnostics.push(
                        Diagnostic::error("eval_error", e.message.clone())
                            .at(span.map(|s| self.sources.location(s))),
                    );
                }
                Err(_) => {}
            }
        }
    }

    fn load_module_file(
        &mut self,
        path: &Path,
        from: Option<Span>,
    ) -> Result<Vec<Pending>, EvalError> {
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(path)
        };
        let mut abs = normalize(&abs);
        if abs.is_dir() {
            abs = abs.join("default.nix");
        }
        if self.modules_mut().disabled.contains(&abs) {
            return Ok(Vec::new());
        }
        if !self.modules_mut().loaded.insert(abs.clone()) {
            return Ok(Vec::new());
        }
        if let Some(at) = from
            && let Some(Value::Unknown(u)) = self.untracked(&abs, at)
        {
            // Nix would refuse the configuration: what the module declares cannot be known.
            self.modules_mut().missing.push((u.reason.clone(), Some(at)));
            return Ok(Vec::new());
        }
        if !abs.exists() {
            let msg = format!(
                "module {} does not exist (NixOS would refuse the configuration); what it declares cannot be known",
                abs.display()
            );
            let loc = from.map(|s| self.sources.location(s));
            self.diagnostics.push(Diagnostic::error("import_not_found", msg.clone()).at(loc));
            self.modules_mut().missing.push((msg, from));
            return Ok(Vec::new());
        }
        // Keep the path as the user wrote it for roots, so locations read naturally.
        let shown = if from.is_none() { path.to_path_buf() } else { abs.clone() };
        let text = read_source(&abs).map_err(|e| {
            EvalError::new(ErrorKind::Other, format!("cannot read {}: {e}", abs.display()), from)
        })?;
        let file = self.sources.add(shown, text);
        let expr = self.parse(file)?;
        let v = self.eval(&expr, &self.globals.clone())?;
        self.modules_mut().reading = Some(abs.clone());
        let r = self.load_module_value(v, expr.span);
        self.modules_mut().reading = None;
        r
    }

    fn load_module_value(&mut self, v: Value, span: Span) -> Result<Vec<Pending>, EvalError> {
        let v = match &v {
            Value::Lambda(_) | Value::PrimOp(_) => {
                let args = self.module_args(&v, &[])?;
                self.apply(v.clone(), Thunk::value(args), span)?
            }
            _ => v,
        };
        let m = match &v {
            Value::Unknown(u) => {
                self.diagnostics.push(
                    Diagnostic::warning(
                        "unknown_module",
                        format!("a module is not read, and may declare services: {}", u.describe()),
                    )
                    .at(Some(
                        self.sources.location(
                            // Where the module is used, when the unknown arose inside tailshift's own
                            // Nix (an opaque flake input).
                            u.span
                                .filter(|s| {
                                    !self.sources.location(*s).file.starts_with("<tailshift")
                                })
                                .unwrap_or(span),
                        ),
                    )),
                );
                return Ok(Vec::new());
            }
            other => self.attrs_of(other, span)?,
        };
        if let Some(d) = m.get("disabledModules") {
            // Files of the tree, removed from the configuration; nixpkgs' own modules (named by
            // strings relative to its modules directory) are not read anyway.
            if let Value::List(items) = self.force(&d.value.clone())? {
                for t in items.iter() {
                    let p = match self.force(t)? {
                        Value::Path(p) => Some((*p).clone()),
                        Value::Str(s) if s.starts_with('/') => Some(PathBuf::from(&*s)),
                        _ => None,
                    };
                    if let Some(p) = p {
                        let p = if p.is_dir() { p.join("default.nix") } else { p };
                        self.modules_mut().disabled.insert(normalize(&p));
                    }
                }
            }
        }
        let mut pending = Vec::new();
        if let Some(imports) = m.get("imports") {
            let list = self.force(&imports.value.clone())?;
            let items = match &list {
                Value::List(l) => l.clone(),
                Value::Unknown(u) => {
                    self.diagnostics.push(
                        Diagnostic::warning(
                            "unknown_module",
                            format!("the imports list cannot be known: {}", u.describe()),
                        )
                        .at(imports.span.map(|s| self.sources.location(s))),
                    );
                    Rc::new(Vec::new())
                }
                _ => {
                    return Err(EvalError::new(
                        ErrorKind::Type,
                        "imports must be a list",
                        imports.span,
                    ));
                }
            };
            for t in items.iter() {
                let item = self.force(t)?;
                let at = imports.span.unwrap_or(span);
                pending.push(match &item {
                    Value::Path(p) => Pending::File((**p).clone(), Some(at)),
                    Value::Str(s) if s.starts_with('/') => {
                        Pending::File(PathBuf::from(&**s), Some(at))
                    }
                    _ => Pending::Value(item.clone(), at),
                });
            }
        }
        let defs = if m.contains_key("config") || m.contains_key("options") {
            match m.get("config") {
                Some(e) => e.value.clone(),
                None => Thunk::value(Value::Attrs(Rc::new(AttrMap::new()))),
            }
        } else {
            let mut rest = (*m).clone();
            for k in
                ["imports", "_file", "key", "disabledModules", "meta", "freeformType", "_class"]
            {
                rest.remove(k);
            }
            Thunk::value(Value::Attrs(Rc::new(rest)))
        };
        let options = m.get("options").map(|e| e.value.clone());
        let file = self.modules_mut().reading.take();
        self.modules_mut().modules.push(ModuleInfo { defs, options, file });
        Ok(pending)
    }
}
