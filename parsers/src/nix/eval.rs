//! A small lazy evaluator for the Nix subset that NixOS configurations use.
//!
//! Values that depend on something outside the inputs (nixpkgs, secrets, flake inputs) become
//! [`Value::Unknown`] and flow through every operation instead of failing the evaluation.

use super::lower::Lowerer;
use super::syntax::*;
use super::value::*;
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, SourceMap, Span};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

/// How deep evaluation may nest before it is stopped (a guard against runaway recursion).
pub const MAX_EVAL_DEPTH: usize = 3_000;
/// How many evaluation steps one run may take (a guard against hangs).
pub const DEFAULT_FUEL: u64 = 200_000_000;
/// Bracket nesting above which a file is refused before parsing.
pub const MAX_SYNTAX_NESTING: usize = 500;

/// What went wrong during evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `throw`: caught by `tryEval`.
    Throw,
    /// A failed `assert`: caught by `tryEval`.
    Assert,
    /// `abort`.
    Abort,
    /// A value of the wrong type.
    Type,
    /// An attribute that is not there.
    MissingAttr,
    /// A variable that is not bound.
    UndefinedVar,
    /// A value that needs itself.
    InfiniteRecursion,
    /// The depth or step budget ran out.
    Budget,
    /// The file does not parse.
    Syntax,
    /// Anything else.
    Other,
}

/// An evaluation error.
#[derive(Debug, Clone)]
pub struct EvalError {
    /// What kind.
    pub kind: ErrorKind,
    /// The message, in Nix's words where possible.
    pub message: String,
    /// Where.
    pub span: Option<Span>,
}

impl EvalError {
    /// A new error.
    pub fn new(kind: ErrorKind, message: impl Into<String>, span: Option<Span>) -> Self {
        EvalError { kind, message: message.into(), span }
    }
}

/// The result of evaluating to weak head normal form.
pub type EvalResult = Result<Value, EvalError>;

fn type_err(msg: impl Into<String>, span: Span) -> EvalError {
    EvalError::new(ErrorKind::Type, msg, Some(span))
}

/// Returns early with the value when it is unknown.
macro_rules! propagate {
    ($v:expr) => {
        if let Value::Unknown(_) = &$v {
            return Ok($v.clone());
        }
    };
}
pub(crate) use propagate;

/// A list kept alive beside the hash set of its strings (`None`: not all strings).
type StringIndex = (Rc<Vec<Thunk>>, Option<Rc<std::collections::HashSet<Rc<str>>>>);

/// The evaluator: its files, caches and budgets.
pub struct Eval {
    /// Every file read.
    pub sources: SourceMap,
    /// Diagnostics raised while reading and evaluating (syntax errors, missing imports).
    pub diagnostics: Vec<Diagnostic>,
    pub(crate) globals: Env,
    imports: HashMap<PathBuf, Thunk>,
    depth: usize,
    fuel: u64,
    pub(crate) lib: Option<Thunk>,
    pub(crate) modules: Option<super::modules::ModuleState>,
    /// Hash sets of string lists searched by `elem`, keyed by the list's address (the list is
    /// kept alive beside its set, so the address cannot be reused).
    string_indexes: HashMap<usize, StringIndex>,
    /// Every variable scope created, emptied on drop (see [`EnvRegistryInner`]).
    registry: EnvRegistry,
    /// `builtins`, which contains itself (`builtins.builtins`).
    builtins: Thunk,
    /// For a flake in a git work tree: the files Nix sees (git-tracked ones).
    pub git: Option<Rc<GitView>>,
}

/// The files of a flake's git work tree that Nix sees: the tracked ones.
#[derive(Debug)]
pub struct GitView {
    /// The flake's directory (canonical).
    pub root: PathBuf,
    /// Tracked files below it (canonical).
    pub tracked: std::collections::HashSet<PathBuf>,
}

impl GitView {
    /// The tracked files of `dir` when it is in a git work tree (`None` otherwise, or when git
    /// cannot tell: then every file is visible, as to `path:` flakes).
    pub fn of(dir: &Path) -> Option<GitView> {
        let root = dir.canonicalize().ok()?;
        let out = std::process::Command::new("git")
            .args(["ls-files", "-z", "--cached"])
            .current_dir(&root)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let tracked = out
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| root.join(String::from_utf8_lossy(p).as_ref()))
            .collect();
        Some(GitView { root, tracked })
    }

    /// Whether Nix would not see the directory `path`: below the flake, and holding no tracked
    /// file.
    pub fn hides_dir(&self, path: &Path) -> bool {
        let real = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        real.starts_with(&self.root)
            && real.is_dir()
            && !self.tracked.iter().any(|t| t.starts_with(&real))
    }

    /// Whether Nix would not see `path`: below the flake, and not tracked.
    pub fn hides(&self, path: &Path) -> bool {
        let real = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        real.starts_with(&self.root) && real.is_file() && !self.tracked.contains(&real)
    }
}

impl Drop for Eval {
    fn drop(&mut self) {
        // Break the reference cycles a lazy language builds out of `Rc`s.
        self.registry.borrow_mut().clear_all();
        *self.builtins.0.borrow_mut() = ThunkState::Done(Value::Null);
        self.imports.clear();
        self.string_indexes.clear();
        self.lib = None;
        self.modules = None;
    }
}

impl Eval {
    /// A fresh evaluator sharing `sources`.
    pub fn new(sources: SourceMap) -> Self {
        let mut ev = Eval {
            sources,
            diagnostics: Vec::new(),
            globals: Env::root(),
            imports: HashMap::new(),
            depth: 0,
            fuel: DEFAULT_FUEL,
            lib: None,
            modules: None,
            string_indexes: HashMap::new(),
            registry: EnvRegistry::default(),
            builtins: Thunk::value(Value::Null),
            git: None,
        };
        let (globals, builtins) = super::builtins::global_env(ev.registry.clone());
        ev.globals = globals;
        ev.builtins = builtins;
        ev
    }

    /// Limits the number of evaluation steps (fuzzing uses a small budget).
    pub fn set_fuel(&mut self, fuel: u64) {
        self.fuel = fuel;
    }

    /// A hash set of a list's elements when every element is a string, built once per list.
    /// `None` when an element is not a string or cannot be forced (then `elem` searches the
    /// list itself, forcing only what it reaches, as Nix does).
    pub(crate) fn string_index(
        &mut self,
        list: &Rc<Vec<Thunk>>,
    ) -> Option<Rc<std::collections::HashSet<Rc<str>>>> {
        let key = Rc::as_ptr(list) as usize;
        if let Some((_, set)) = self.string_indexes.get(&key) {
            return set.clone();
        }
        let mut set = std::collections::HashSet::with_capacity(list.len());
        let mut ok = true;
        for t in list.iter() {
            match self.force(t) {
                Ok(Value::Str(s)) => {
                    set.insert(s);
                }
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        let set = ok.then(|| Rc::new(set));
        self.string_indexes.insert(key, (list.clone(), set.clone()));
        set
    }

    /// Parses and lowers text. Syntax errors become diagnostics and an `Err`.
    pub fn parse(&mut self, file: FileId) -> Result<ExprRef, EvalError> {
        let src = self.sources.get(file);
        let whole = Span { file, start: 0, end: src.text.len() as u32 };
        if let Some(offset) = excessive_nesting(&src.text) {
            let span = Span { file, start: offset, end: offset + 1 };
            let msg = format!("brackets nested more than {MAX_SYNTAX_NESTING} deep");
            self.diagnostics.push(
                Diagnostic::error("syntax_error", msg.clone())
                    .at(Some(self.sources.location(span)))
                    .len(1),
            );
            return Err(EvalError::new(ErrorKind::Syntax, msg, Some(span)));
        }
        let parse = rnix::Root::parse(&src.text);
        let mut first: Option<(Span, String)> = None;
        for err in parse.errors() {
            let (range, msg) = describe_parse_error(err, src.text.len());
            let span = Span { file, start: range.0, end: range.1 };
            self.diagnostics.push(
                Diagnostic::error("syntax_error", msg.clone())
                    .at(Some(self.sources.location(span)))
                    .len(range.1.saturating_sub(range.0).max(1)),
            );
            first.get_or_insert((span, msg));
        }
        if let Some((span, msg)) = first {
            return Err(EvalError::new(ErrorKind::Syntax, msg, Some(span)));
        }
        let mut lowerer = Lowerer::new(file);
        let root = parse.tree();
        let expr = match root.expr() {
            Some(e) => lowerer.expr(e),
            None => Rc::new(Expr { kind: ExprKind::Error("empty file".into()), span: whole }),
        };
        if let Some(err) = lowerer.errors.first() {
            for e in &lowerer.errors {
                self.diagnostics.push(
                    Diagnostic::error("syntax_error", e.message.clone())
                        .at(Some(self.sources.location(e.span)))
                        .len(e.span.end - e.span.start),
                );
            }
            return Err(EvalError::new(ErrorKind::Syntax, err.message.clone(), Some(err.span)));
        }
        Ok(expr)
    }

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

    /// Forces a thunk to weak head normal form.
    pub fn force(&mut self, t: &Thunk) -> EvalResult {
        let state = {
            let mut cell = t.0.borrow_mut();
            match &*cell {
                ThunkState::Done(v) => return Ok(v.clone()),
                ThunkState::Running => {
                    return Err(EvalError::new(
                        ErrorKind::InfiniteRecursion,
                        "infinite recursion encountered",
                        None,
                    ));
                }
                _ => std::mem::replace(&mut *cell, ThunkState::Running),
            }
        };
        let result = match state {
            ThunkState::Pending(expr, env) => {
                let r = self.eval(&expr, &env);
                if r.is_err() {
                    *t.0.borrow_mut() = ThunkState::Pending(expr, env);
                }
                r
            }
            ThunkState::Native(f) => {
                let r = f(self);
                if let Err(e) = &r {
                    let e = e.clone();
                    *t.0.borrow_mut() = ThunkState::Native(Box::new(move |_| Err(e)));
                }
                r
            }
            _ => unreachable!("checked above"),
        };
        if let Ok(v) = &result {
            *t.0.borrow_mut() = ThunkState::Done(v.clone());
        }
        result
    }

    /// Charges work proportional to a size (list elements, string bytes) against the step
    /// budget, so doubling strings or `genList` of a huge count cannot exhaust memory.
    pub fn charge(&mut self, units: usize, span: Span) -> Result<(), EvalError> {
        let units = units as u64;
        if self.fuel < units {
            self.fuel = 0;
            return Err(EvalError::new(
                ErrorKind::Budget,
                "evaluation step budget exhausted",
                Some(span),
            ));
        }
        self.fuel -= units;
        Ok(())
    }

    /// Enters a recursive walk over a value (equality, JSON): guards the stack.
    fn enter(&mut self, span: Span) -> Result<(), EvalError> {
        if self.depth >= MAX_EVAL_DEPTH {
            return Err(EvalError::new(
                ErrorKind::Budget,
                "value nested too deeply (a value that contains itself?)",
                Some(span),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn step(&mut self, span: Span) -> Result<(), EvalError> {
        if self.fuel == 0 {
            return Err(EvalError::new(
                ErrorKind::Budget,
                "evaluation step budget exhausted",
                Some(span),
            ));
        }
        self.fuel -= 1;
        Ok(())
    }

    /// Evaluates an expression in a scope to weak head normal form.
    pub fn eval(&mut self, expr: &ExprRef, env: &Env) -> EvalResult {
        self.step(expr.span)?;
        if self.depth >= MAX_EVAL_DEPTH {
            return Err(EvalError::new(
                ErrorKind::Budget,
                "evaluation nested too deeply (infinite recursion?)",
                Some(expr.span),
            ));
        }
        self.depth += 1;
        let r = self.eval_inner(expr, env);
        self.depth -= 1;
        r
    }

    fn eval_inner(&mut self, expr: &ExprRef, env: &Env) -> EvalResult {
        let span = expr.span;
        match &expr.kind {
            ExprKind::Int(i) => Ok(Value::Int(*i)),
            ExprKind::Float(f) => Ok(Value::Float(*f)),
            ExprKind::Uri(u) => Ok(Value::string(u.as_str())),
            ExprKind::Str(parts) => self.eval_string(parts, env),
            ExprKind::Path(parts) => self.eval_path(parts, env, span),
            ExprKind::SearchPath(p) => Ok(Value::unknown(
                format!(
                    "search path <{p}> is not read: tailshift reads only the files it is given"
                ),
                Some(span),
            )),
            ExprKind::Var(name) => self.lookup(name, env, span),
            ExprKind::Select { expr: e, path, default } => {
                let mut v = self.eval(e, env)?;
                for name in path {
                    let key = match self.attr_name(name, env)? {
                        Ok(k) => k,
                        Err(u) => return Ok(u),
                    };
                    match self.select(&v, &key, span)? {
                        Some(t) => v = self.force(&t)?,
                        None => {
                            return match default {
                                Some(d) => self.eval(d, env),
                                None => Err(EvalError::new(
                                    ErrorKind::MissingAttr,
                                    format!("attribute '{key}' missing"),
                                    Some(span),
                                )),
                            };
                        }
                    }
                }
                Ok(v)
            }
            ExprKind::HasAttr { expr: e, path } => {
                let mut v = self.eval(e, env)?;
                for (i, name) in path.iter().enumerate() {
                    let key = match self.attr_name(name, env)? {
                        Ok(k) => k,
                        Err(u) => return Ok(u),
                    };
                    let found = match &v {
                        Value::Attrs(m) => match m.get(&key) {
                            Some(e) if e.cond.is_some() => {
                                let u = e.cond.clone().expect("checked");
                                return Ok(Value::Unknown(u));
                            }
                            Some(e) => Some(e.value.clone()),
                            None if m.contains_key(REST_KEY) => {
                                let u = uncertain_names(m).expect("a set with a rest is uncertain");
                                return Ok(Value::Unknown(Rc::new(Unknown {
                                    reason: u.reason.clone(),
                                    span: Some(span),
                                    what: Some(match &u.what {
                                        Some(w) => format!("{w} ? {key}"),
                                        None => format!("? {key}"),
                                    }),
                                })));
                            }
                            None => None,
                        },
                        Value::Config(_) | Value::Unknown(_) => self.select(&v, &key, span)?,
                        _ => return Ok(Value::Bool(false)),
                    };
                    match found {
                        // As in Nix, the attribute's own value is not evaluated (it may throw
                        // or be unknown: `builtins ? currentSystem` is still true).
                        Some(_) if i + 1 == path.len() && matches!(v, Value::Attrs(_)) => {
                            return Ok(Value::Bool(true));
                        }
                        Some(t) => v = self.force(&t)?,
                        None => return Ok(Value::Bool(false)),
                    }
                }
                propagate!(v);
                Ok(Value::Bool(true))
            }
            ExprKind::Attrs(def) => self.eval_attrs(def, env),
            ExprKind::Let { bindings, body } => {
                let scope = env.with_vars(VarMap::default());
                for (name, b) in &bindings.statics {
                    let t = self.binding_thunk(b, &scope, env);
                    scope.define(name.clone(), t);
                }
                self.eval(body, &scope)
            }
            ExprKind::With { ns, body } => {
                let t = Thunk::pending(ns.clone(), env.clone());
                self.eval(body, &env.with_namespace(t))
            }
            ExprKind::Lambda(def) => {
                Ok(Value::Lambda(Rc::new(Closure { def: def.clone(), env: env.clone(), span })))
            }
            ExprKind::Apply { func, arg } => {
                let f = self.eval(func, env)?;
                let a = Thunk::pending(arg.clone(), env.clone());
                self.apply(f, a, span)
            }
            ExprKind::If { cond, then, else_ } => {
                let c = self.eval(cond, env)?;
                match c {
                    Value::Bool(true) => self.eval(then, env),
                    Value::Bool(false) => self.eval(else_, env),
                    Value::Unknown(u) => {
                        if let Some(v) = self.conditional_sets(&u, then, else_, env)? {
                            return Ok(v);
                        }
                        Ok(Value::Unknown(Rc::new(Unknown {
                            reason: format!(
                                "depends on a condition that cannot be known: {}",
                                u.describe()
                            ),
                            span: u.span.or(Some(cond.span)),
                            what: None,
                        })))
                    }
                    other => Err(type_err(
                        format!("value is {} while a Boolean was expected", article(&other)),
                        cond.span,
                    )),
                }
            }
            ExprKind::Assert { cond, body } => {
                let c = self.eval(cond, env)?;
                match c {
                    Value::Bool(true) => self.eval(body, env),
                    Value::Bool(false) => {
                        Err(EvalError::new(ErrorKind::Assert, "assertion failed", Some(cond.span)))
                    }
                    Value::Unknown(_) => self.eval(body, env),
                    other => Err(type_err(
                        format!("value is {} while a Boolean was expected", article(&other)),
                        cond.span,
                    )),
                }
            }
            ExprKind::BinOp { op, lhs, rhs } => self.eval_binop(*op, lhs, rhs, env, span),
            ExprKind::Not(e) => match self.eval(e, env)? {
                Value::Bool(b) => Ok(Value::Bool(!b)),
                v @ Value::Unknown(_) => Ok(v),
                other => Err(type_err(
                    format!("value is {} while a Boolean was expected", article(&other)),
                    e.span,
                )),
            },
            ExprKind::Neg(e) => match self.eval(e, env)? {
                Value::Int(i) => Ok(Value::Int(i.wrapping_neg())),
                Value::Float(f) => Ok(Value::Float(-f)),
                v @ Value::Unknown(_) => Ok(v),
                other => Err(type_err(format!("cannot negate {}", article(&other)), e.span)),
            },
            ExprKind::List(items) => Ok(Value::List(Rc::new(
                items.iter().map(|i| Thunk::pending(i.clone(), env.clone())).collect(),
            ))),
            ExprKind::CurPos => {
                let loc = self.sources.location(span);
                let mut m = AttrMap::new();
                m.insert("file".into(), entry(Value::string(&*loc.file)));
                m.insert("line".into(), entry(Value::Int(loc.line as i64)));
                m.insert("column".into(), entry(Value::Int(loc.column as i64)));
                Ok(Value::Attrs(Rc::new(m)))
            }
            ExprKind::Error(msg) => Err(EvalError::new(ErrorKind::Syntax, msg.clone(), Some(span))),
        }
    }

    fn lookup(&mut self, name: &str, env: &Env, span: Span) -> EvalResult {
        if let Some(t) = env.lookup_lexical(name) {
            return self.force(&t);
        }
        for ns in env.namespaces() {
            let v = self.force(&ns)?;
            if let Value::Unknown(u) = &v {
                let mut u = (**u).clone();
                u.what = Some(match &u.what {
                    Some(w) => format!("{w}.{name}"),
                    None => name.to_string(),
                });
                return Ok(Value::Unknown(Rc::new(u)));
            }
            if let Some(t) = self.select(&v, name, span)? {
                return self.force(&t);
            }
        }
        if let Some(t) = self.globals.lookup_lexical(name) {
            return self.force(&t);
        }
        Err(EvalError::new(
            ErrorKind::UndefinedVar,
            format!("undefined variable '{name}'"),
            Some(span),
        ))
    }

    /// Evaluates an attribute name: `Ok(Ok(name))`, or `Ok(Err(unknown))` when it cannot be known.
    fn attr_name(
        &mut self,
        name: &AttrName,
        env: &Env,
    ) -> Result<Result<Rc<str>, Value>, EvalError> {
        match name {
            AttrName::Static(s) => Ok(Ok(s.clone())),
            AttrName::Dynamic(e) => {
                let v = self.eval(e, env)?;
                match v {
                    Value::Str(s) => Ok(Ok(s)),
                    Value::Unknown(_) => Ok(Err(v)),
                    other => Err(type_err(
                        format!("value is {} while a string was expected", article(&other)),
                        e.span,
                    )),
                }
            }
        }
    }

    /// Selects an attribute from a value. `None` when the set lacks it.
    pub fn select(&mut self, v: &Value, key: &str, span: Span) -> Result<Option<Thunk>, EvalError> {
        match v {
            Value::Attrs(m) => match m.get(key) {
                Some(e) => Ok(Some(e.value.clone())),
                None if m.contains_key(REST_KEY) => {
                    let u = uncertain_names(m).expect("a set with a rest is uncertain");
                    Ok(Some(Thunk::value(Value::Unknown(Rc::new(Unknown {
                        reason: format!("may be defined by what cannot be read: {}", u.describe()),
                        span: Some(span),
                        what: Some(key.to_string()),
                    })))))
                }
                None => match m.get("__tailshiftOpen").map(|e| e.value.clone()) {
                    Some(t) => match self.force(&t)? {
                        // tailshift's `lib` answers names it does not implement with an unknown.
                        Value::Str(reason) => {
                            Ok(Some(Thunk::value(Value::Unknown(Rc::new(Unknown {
                                reason: reason.to_string(),
                                span: Some(span),
                                what: Some(format!("lib.{key}")),
                            })))))
                        }
                        _ => Ok(None),
                    },
                    None => Ok(None),
                },
            },
            Value::Config(path) => {
                let path = path.clone();
                self.config_select(&path, key, span).map(Some)
            }
            Value::Unknown(u) => {
                let mut u = (**u).clone();
                u.what = Some(match &u.what {
                    Some(w) => format!("{w}.{key}"),
                    None => key.to_string(),
                });
                Ok(Some(Thunk::value(Value::Unknown(Rc::new(u)))))
            }
            other => Err(type_err(
                format!("value is {} while a set was expected (selecting '{key}')", article(other)),
                span,
            )),
        }
    }

    /// The attributes of a set value; a module `config` node is materialised.
    pub fn attrs_of(&mut self, v: &Value, span: Span) -> Result<Rc<AttrMap>, EvalError> {
        match v {
            Value::Attrs(m) => Ok(m.clone()),
            Value::Config(path) => {
                let path = path.clone();
                self.config_materialize(&path, span)
            }
            other => {
                Err(type_err(format!("value is {} while a set was expected", article(other)), span))
            }
        }
    }

    fn binding_thunk(&mut self, b: &Binding, scope: &Env, outer: &Env) -> Thunk {
        match &b.value {
            BindingValue::Expr(e) => Thunk::pending(e.clone(), scope.clone()),
            BindingValue::Inherit(name) => {
                let e = Rc::new(Expr { kind: ExprKind::Var(name.clone()), span: b.span });
                Thunk::pending(e, outer.clone())
            }
            BindingValue::InheritFrom(from, name) => {
                let e = Rc::new(Expr {
                    kind: ExprKind::Select {
                        expr: from.clone(),
                        path: vec![AttrName::Static(name.clone())],
                        default: None,
                    },
                    span: b.span,
                });
                Thunk::pending(e, scope.clone())
            }
            BindingValue::Nested(def) => {
                let e = Rc::new(Expr { kind: ExprKind::Attrs(def.clone()), span: b.span });
                Thunk::pending(e, scope.clone())
            }
        }
    }

    fn eval_attrs(&mut self, def: &Rc<AttrsDef>, env: &Env) -> EvalResult {
        let scope = if def.rec { env.with_vars(VarMap::default()) } else { env.clone() };
        let mut map = AttrMap::new();
        for (name, b) in &def.statics {
            let t = self.binding_thunk(b, &scope, env);
            if def.rec {
                scope.define(name.clone(), t.clone());
            }
            map.insert(name.clone(), AttrEntry { value: t, span: Some(b.span), cond: None });
        }
        for (key, b) in &def.dynamics {
            let k = self.eval(key, &scope)?;
            let name: Rc<str> = match k {
                Value::Null => continue,
                Value::Str(s) => s,
                Value::Unknown(u) => {
                    self.diagnostics.push(
                        Diagnostic::warning(
                            "unknown_attribute_name",
                            format!("an attribute name cannot be known: {}", u.describe()),
                        )
                        .at(Some(self.sources.location(key.span))),
                    );
                    continue;
                }
                other => {
                    return Err(type_err(
                        format!("value is {} while a string was expected", article(&other)),
                        key.span,
                    ));
                }
            };
            if map.contains_key(&name) {
                return Err(EvalError::new(
                    ErrorKind::Other,
                    format!("dynamic attribute '{name}' already defined"),
                    Some(b.span),
                ));
            }
            let t = self.binding_thunk(b, &scope, env);
            map.insert(name, AttrEntry { value: t, span: Some(b.span), cond: None });
        }
        Ok(Value::Attrs(Rc::new(map)))
    }

    fn eval_string(&mut self, parts: &[StrPart], env: &Env) -> EvalResult {
        if let [StrPart::Lit(s)] = parts {
            return Ok(Value::string(s.as_str()));
        }
        let mut out = String::new();
        for p in parts {
            match p {
                StrPart::Lit(s) => out.push_str(s),
                StrPart::Interp(e) => {
                    let v = self.eval(e, env)?;
                    match self.coerce_to_string(&v, e.span, false)? {
                        Ok(s) => {
                            self.charge(s.len() / 16, e.span)?;
                            out.push_str(&s)
                        }
                        Err(u) => return Ok(u),
                    }
                }
            }
        }
        Ok(Value::string(out))
    }

    fn eval_path(&mut self, parts: &[StrPart], env: &Env, span: Span) -> EvalResult {
        let mut text = String::new();
        for p in parts {
            match p {
                StrPart::Lit(s) => text.push_str(s),
                StrPart::Interp(e) => {
                    let v = self.eval(e, env)?;
                    match self.coerce_to_string(&v, e.span, false)? {
                        Ok(s) => text.push_str(&s),
                        Err(u) => return Ok(u),
                    }
                }
            }
        }
        if let Some(rest) = text.strip_prefix("~/") {
            return Ok(Value::unknown(
                format!("the home-relative path ~/{rest} depends on the user running Nix"),
                Some(span),
            ));
        }
        let p = Path::new(&text);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            let base = self.sources.get(span.file).path.clone();
            let dir = base.parent().map(Path::to_path_buf).unwrap_or_default();
            absolute(&dir.join(p))
        };
        Ok(Value::Path(Rc::new(normalize(&full))))
    }

    /// Coerces to a string as interpolation (`to_string == false`) or `toString` does.
    /// `Ok(Err(v))` carries an unknown value.
    pub fn coerce_to_string(
        &mut self,
        v: &Value,
        span: Span,
        to_string: bool,
    ) -> Result<Result<String, Value>, EvalError> {
        Ok(Ok(match v {
            Value::Str(s) => s.to_string(),
            Value::Unknown(_) => return Ok(Err(v.clone())),
            Value::Path(p) => {
                if to_string {
                    p.to_string_lossy().into_owned()
                } else {
                    return Ok(Err(Value::unknown(
                        format!(
                            "is the Nix store path of {}, known only once Nix copies it",
                            p.display()
                        ),
                        Some(span),
                    )));
                }
            }
            Value::Attrs(_) | Value::Config(_) => {
                // As Nix: `__toString` is called with the set itself, else `outPath` is used.
                let m = self.attrs_of(v, span)?;
                if let Some(f) = m.get("__toString") {
                    let f = self.force(&f.value.clone())?;
                    let r = self.apply(f, Thunk::value(v.clone()), span)?;
                    return self.coerce_to_string(&r, span, to_string);
                }
                if let Some(o) = m.get("outPath") {
                    let o = self.force(&o.value.clone())?;
                    return self.coerce_to_string(&o, span, to_string);
                }
                return Err(type_err("cannot coerce a set to a string", span));
            }
            Value::Int(i) if to_string => i.to_string(),
            Value::Float(f) if to_string => format!("{f:.6}"),
            Value::Bool(b) if to_string => {
                if *b {
                    "1".into()
                } else {
                    String::new()
                }
            }
            Value::Null if to_string => String::new(),
            Value::List(items) if to_string => {
                let mut parts = Vec::new();
                for t in items.iter() {
                    let v = self.force(t)?;
                    match self.coerce_to_string(&v, span, true)? {
                        Ok(s) => parts.push(s),
                        Err(u) => return Ok(Err(u)),
                    }
                }
                parts.join(" ")
            }
            other => {
                return Err(type_err(
                    format!("cannot coerce {} to a string", article(other)),
                    span,
                ));
            }
        }))
    }

    /// Applies a function value to an argument.
    pub fn apply(&mut self, f: Value, arg: Thunk, span: Span) -> EvalResult {
        self.step(span)?;
        match f {
            Value::Lambda(c) => self.call_closure(&c, arg, span),
            Value::PrimOp(p) => {
                let mut p = (*p).clone();
                p.args.push(arg);
                if p.args.len() == p.arity {
                    if self.depth >= MAX_EVAL_DEPTH {
                        return Err(EvalError::new(
                            ErrorKind::Budget,
                            "evaluation nested too deeply (infinite recursion?)",
                            Some(span),
                        ));
                    }
                    self.depth += 1;
                    let r = (p.func)(self, &p.args, span);
                    self.depth -= 1;
                    r
                } else {
                    Ok(Value::PrimOp(Rc::new(p)))
                }
            }
            Value::Attrs(ref m) if m.contains_key("__functor") => {
                let functor = self.force(&m["__functor"].value.clone())?;
                let partial = self.apply(functor, Thunk::value(f.clone()), span)?;
                self.apply(partial, arg, span)
            }
            Value::Unknown(u) => Ok(Value::Unknown(u)),
            other => Err(type_err(
                format!(
                    "attempt to call something which is not a function but {}",
                    article(&other)
                ),
                span,
            )),
        }
    }

    fn call_closure(&mut self, c: &Closure, arg: Thunk, span: Span) -> EvalResult {
        match &c.def.param {
            Param::Ident(name) => {
                let mut vars = VarMap::default();
                vars.insert(name.clone(), arg);
                let env = c.env.with_vars(vars);
                self.eval(&c.def.body, &env)
            }
            Param::Pattern { entries, ellipsis, bind } => {
                let v = self.force(&arg)?;
                let env = c.env.with_vars(VarMap::default());
                if let Value::Unknown(u) = &v {
                    // Destructuring something unknown: every formal is unknown for the same reason.
                    for (name, _) in entries {
                        env.define(name.clone(), Thunk::value(Value::Unknown(u.clone())));
                    }
                } else {
                    let attrs = self.attrs_of(&v, span)?;
                    for (name, default) in entries {
                        match (attrs.get(name), default) {
                            (Some(e), _) => env.define(name.clone(), e.value.clone()),
                            (None, Some(d)) => {
                                env.define(name.clone(), Thunk::pending(d.clone(), env.clone()))
                            }
                            (None, None) => {
                                return Err(EvalError::new(
                                    ErrorKind::Type,
                                    format!("function called without required argument '{name}'"),
                                    Some(span),
                                ));
                            }
                        }
                    }
                    if !ellipsis {
                        for key in attrs.keys() {
                            if !entries.iter().any(|(n, _)| n == key) {
                                return Err(EvalError::new(
                                    ErrorKind::Type,
                                    format!("function called with unexpected argument '{key}'"),
                                    Some(span),
                                ));
                            }
                        }
                    }
                }
                if let Some(b) = bind {
                    env.define(b.clone(), arg);
                }
                self.eval(&c.def.body, &env)
            }
        }
    }

    fn eval_binop(
        &mut self,
        op: BinOp,
        lhs: &ExprRef,
        rhs: &ExprRef,
        env: &Env,
        span: Span,
    ) -> EvalResult {
        match op {
            BinOp::And | BinOp::Or | BinOp::Implication => {
                let a = self.eval(lhs, env)?;
                let a = match a {
                    Value::Bool(b) => b,
                    Value::Unknown(_) => return Ok(a),
                    other => {
                        return Err(type_err(
                            format!("value is {} while a Boolean was expected", article(&other)),
                            lhs.span,
                        ));
                    }
                };
                let short = match op {
                    BinOp::And => (!a).then_some(false),
                    BinOp::Or => a.then_some(true),
                    _ => (!a).then_some(true),
                };
                if let Some(r) = short {
                    return Ok(Value::Bool(r));
                }
                match self.eval(rhs, env)? {
                    Value::Bool(b) => Ok(Value::Bool(b)),
                    v @ Value::Unknown(_) => Ok(v),
                    other => Err(type_err(
                        format!("value is {} while a Boolean was expected", article(&other)),
                        rhs.span,
                    )),
                }
            }
            BinOp::PipeRight => {
                let x = Thunk::pending(lhs.clone(), env.clone());
                let f = self.eval(rhs, env)?;
                self.apply(f, x, span)
            }
            BinOp::PipeLeft => {
                let x = Thunk::pending(rhs.clone(), env.clone());
                let f = self.eval(lhs, env)?;
                self.apply(f, x, span)
            }
            _ => {
                let a = self.eval(lhs, env)?;
                let b = self.eval(rhs, env)?;
                self.binop_values(op, a, b, span)
            }
        }
    }

    /// Applies a strict binary operator to two values.
    pub fn binop_values(&mut self, op: BinOp, a: Value, b: Value, span: Span) -> EvalResult {
        match op {
            BinOp::Eq | BinOp::NotEq => {
                let eq = self.equal(&a, &b, span)?;
                Ok(match eq {
                    Some(e) => Value::Bool(if op == BinOp::Eq { e } else { !e }),
                    None => unknown_of(&a, &b),
                })
            }
            _ => {
                if op == BinOp::Update
                    && let Some(v) = self.update_uncertain(&a, &b, span)?
                {
                    return Ok(v);
                }
                propagate!(a);
                propagate!(b);
                match op {
                    BinOp::Concat => match (&a, &b) {
                        (Value::List(x), Value::List(y)) => {
                            self.charge(x.len() + y.len(), span)?;
                            let mut v = Vec::with_capacity(x.len() + y.len());
                            v.extend(x.iter().cloned());
                            v.extend(y.iter().cloned());
                            Ok(Value::List(Rc::new(v)))
                        }
                        _ => Err(type_err(
                            format!("cannot concatenate {} and {}", article(&a), article(&b)),
                            span,
                        )),
                    },
                    BinOp::Update => {
                        let x = self.attrs_of(&a, span)?;
                        let y = self.attrs_of(&b, span)?;
                        if y.is_empty() {
                            return Ok(Value::Attrs(x));
                        }
                        self.charge(x.len() + y.len(), span)?;
                        let mut m = (*x).clone();
                        for (k, v) in y.iter() {
                            match (v.cond.as_ref(), m.get(k)) {
                                // Present on the left, maybe replaced on the right: the name is
                                // certain, its value is not.
                                (Some(c), Some(old)) if old.cond.is_none() => {
                                    let value = Value::Unknown(Rc::new(Unknown {
                                        reason: format!(
                                            "is replaced by `//` under a condition that cannot be known: {}",
                                            c.describe()
                                        ),
                                        span: c.span,
                                        what: Some(k.to_string()),
                                    }));
                                    m.insert(
                                        k.clone(),
                                        AttrEntry {
                                            value: Thunk::value(value),
                                            span: v.span,
                                            cond: None,
                                        },
                                    );
                                }
                                _ => {
                                    m.insert(k.clone(), v.clone());
                                }
                            }
                        }
                        Ok(Value::Attrs(Rc::new(m)))
                    }
                    BinOp::Add => self.add(a, b, span),
                    BinOp::Sub | BinOp::Mul | BinOp::Div => arith(op, &a, &b, span),
                    BinOp::Less => self.less_than(&a, &b, span).map(Value::Bool),
                    BinOp::More => self.less_than(&b, &a, span).map(Value::Bool),
                    BinOp::LessEq => self.less_than(&b, &a, span).map(|r| Value::Bool(!r)),
                    BinOp::MoreEq => self.less_than(&a, &b, span).map(|r| Value::Bool(!r)),
                    _ => unreachable!("handled by eval_binop"),
                }
            }
        }
    }

    /// `if c then A else B` with an unknown `c`, where both branches are sets: their union,
    /// each attribute of only one branch present under the condition (`optionalAttrs c {...}`),
    /// an attribute of both a value that depends on it. `None` when a branch is not a set (or
    /// fails): the whole value is then unknown.
    fn conditional_sets(
        &mut self,
        cond: &Rc<Unknown>,
        then: &ExprRef,
        else_: &ExprRef,
        env: &Env,
    ) -> Result<Option<Value>, EvalError> {
        let (Ok(Value::Attrs(x)), Ok(Value::Attrs(y))) =
            (self.eval(then, env), self.eval(else_, env))
        else {
            return Ok(None);
        };
        let cond = cond.clone();
        let mut m = AttrMap::new();
        for (side, other) in [(&x, &y), (&y, &x)] {
            for (k, e) in side.iter() {
                if other.contains_key(k) {
                    if !m.contains_key(k) {
                        let value = Value::Unknown(Rc::new(Unknown {
                            reason: format!(
                                "depends on a condition that cannot be known: {}",
                                cond.describe()
                            ),
                            span: cond.span,
                            what: Some(k.to_string()),
                        }));
                        m.insert(
                            k.clone(),
                            AttrEntry { value: Thunk::value(value), span: e.span, cond: None },
                        );
                    }
                } else {
                    m.insert(
                        k.clone(),
                        AttrEntry {
                            value: e.value.clone(),
                            span: e.span,
                            cond: e.cond.clone().or(Some(cond.clone())),
                        },
                    );
                }
            }
        }
        Ok(Some(Value::Attrs(Rc::new(m))))
    }

    /// `a // b` where one side is unknown and the other a set: the set's names are certain
    /// (`//` only adds), and the result may hold more (kept under [`REST_KEY`]). `None` when
    /// neither side is unknown.
    fn update_uncertain(
        &mut self,
        a: &Value,
        b: &Value,
        span: Span,
    ) -> Result<Option<Value>, EvalError> {
        match (a, b) {
            (Value::Unknown(u), Value::Attrs(_) | Value::Config(_)) => {
                let y = self.attrs_of(b, span)?;
                let mut m = (*y).clone();
                m.entry(REST_KEY.into()).or_insert_with(|| entry(Value::Unknown(u.clone())));
                Ok(Some(Value::Attrs(Rc::new(m))))
            }
            (Value::Attrs(_) | Value::Config(_), Value::Unknown(u)) => {
                let x = self.attrs_of(a, span)?;
                let mut m = AttrMap::new();
                for (k, e) in x.iter() {
                    let value = if &**k == REST_KEY {
                        e.value.clone()
                    } else {
                        Thunk::value(Value::Unknown(Rc::new(Unknown {
                            reason: format!(
                                "may be replaced by `//` with what cannot be read: {}",
                                u.describe()
                            ),
                            span: u.span,
                            what: Some(k.to_string()),
                        })))
                    };
                    m.insert(k.clone(), AttrEntry { value, span: e.span, cond: e.cond.clone() });
                }
                m.insert(REST_KEY.into(), entry(Value::Unknown(u.clone())));
                Ok(Some(Value::Attrs(Rc::new(m))))
            }
            _ => Ok(None),
        }
    }

    fn add(&mut self, a: Value, b: Value, span: Span) -> EvalResult {
        match (&a, &b) {
            (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
                arith(BinOp::Add, &a, &b, span)
            }
            (Value::Path(p), _) => {
                let s = match self.coerce_to_string(&b, span, false)? {
                    Ok(s) => s,
                    Err(u) => return Ok(u),
                };
                let joined = format!("{}{}", p.display(), s);
                Ok(Value::Path(Rc::new(normalize(Path::new(&joined)))))
            }
            (Value::Str(x), _) => {
                let s = match self.coerce_to_string(&b, span, false)? {
                    Ok(s) => s,
                    Err(u) => return Ok(u),
                };
                self.charge((x.len() + s.len()) / 16, span)?;
                Ok(Value::string(format!("{x}{s}")))
            }
            (Value::Int(_) | Value::Float(_), _) => {
                Err(type_err(format!("cannot add {} to {}", article(&b), article(&a)), span))
            }
            _ => {
                // Anything else concatenates as strings, as in Nix: a set with `__toString` or
                // `outPath` on either side is coerced; other values are a coercion error.
                let x = match self.coerce_to_string(&a, span, false)? {
                    Ok(s) => s,
                    Err(u) => return Ok(u),
                };
                let y = match self.coerce_to_string(&b, span, false)? {
                    Ok(s) => s,
                    Err(u) => return Ok(u),
                };
                self.charge((x.len() + y.len()) / 16, span)?;
                Ok(Value::string(format!("{x}{y}")))
            }
        }
    }

    /// Nix's `<` on numbers, strings, paths and lists.
    pub fn less_than(&mut self, a: &Value, b: &Value, span: Span) -> Result<bool, EvalError> {
        match (a, b) {
            (Value::Int(x), Value::Int(y)) => Ok(x < y),
            (Value::Int(x), Value::Float(y)) => Ok((*x as f64) < *y),
            (Value::Float(x), Value::Int(y)) => Ok(*x < (*y as f64)),
            (Value::Float(x), Value::Float(y)) => Ok(x < y),
            (Value::Str(x), Value::Str(y)) => Ok(x.as_bytes() < y.as_bytes()),
            (Value::Path(x), Value::Path(y)) => Ok(x < y),
            (Value::List(x), Value::List(y)) => {
                for (i, j) in x.iter().zip(y.iter()) {
                    let vi = self.force(i)?;
                    let vj = self.force(j)?;
                    if self.equal(&vi, &vj, span)? == Some(true) {
                        continue;
                    }
                    return self.less_than(&vi, &vj, span);
                }
                Ok(x.len() < y.len())
            }
            _ => Err(type_err(format!("cannot compare {} with {}", article(a), article(b)), span)),
        }
    }

    /// Deep equality; `None` when an unknown value decides it.
    pub fn equal(&mut self, a: &Value, b: &Value, span: Span) -> Result<Option<bool>, EvalError> {
        self.enter(span)?;
        let r = self.equal_inner(a, b, span);
        self.depth -= 1;
        r
    }

    fn equal_inner(&mut self, a: &Value, b: &Value, span: Span) -> Result<Option<bool>, EvalError> {
        Ok(Some(match (a, b) {
            (Value::Unknown(_), _) | (_, Value::Unknown(_)) => return Ok(None),
            (Value::Null, Value::Null) => true,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => {
                (*x as f64) == *y
            }
            (Value::Float(x), Value::Float(y)) => x == y,
            (Value::Str(x), Value::Str(y)) => x == y,
            (Value::Path(x), Value::Path(y)) => x == y,
            (Value::List(x), Value::List(y)) => {
                if x.len() != y.len() {
                    return Ok(Some(false));
                }
                for (i, j) in x.iter().zip(y.iter()) {
                    let vi = self.force(i)?;
                    let vj = self.force(j)?;
                    match self.equal(&vi, &vj, span)? {
                        Some(true) => {}
                        other => return Ok(other),
                    }
                }
                true
            }
            (Value::Attrs(_) | Value::Config(_), Value::Attrs(_) | Value::Config(_)) => {
                let x = self.attrs_of(a, span)?;
                let y = self.attrs_of(b, span)?;
                if Rc::ptr_eq(&x, &y) {
                    return Ok(Some(true));
                }
                if uncertain_names(&x).is_some() || uncertain_names(&y).is_some() {
                    return Ok(None);
                }
                if let (Some(o1), Some(o2)) = (x.get("outPath"), y.get("outPath"))
                    && x.get("type").is_some()
                {
                    let v1 = self.force(&o1.value.clone())?;
                    let v2 = self.force(&o2.value.clone())?;
                    return self.equal(&v1, &v2, span);
                }
                if x.len() != y.len() || !x.keys().eq(y.keys()) {
                    return Ok(Some(false));
                }
                for (k, e) in x.iter() {
                    let vi = self.force(&e.value.clone())?;
                    let vj = self.force(&y[k].value.clone())?;
                    match self.equal(&vi, &vj, span)? {
                        Some(true) => {}
                        other => return Ok(other),
                    }
                }
                true
            }
            _ => false,
        }))
    }

    /// Forces a value completely and converts it to JSON, as `nix-instantiate --eval --strict
    /// --json` prints it. The inner `Err` carries the first unknown value met.
    pub fn to_json(
        &mut self,
        v: &Value,
        span: Span,
    ) -> Result<Result<serde_json::Value, Rc<Unknown>>, EvalError> {
        self.enter(span)?;
        let r = self.json_of(v, span);
        self.depth -= 1;
        r
    }

    fn json_of(
        &mut self,
        v: &Value,
        span: Span,
    ) -> Result<Result<serde_json::Value, Rc<Unknown>>, EvalError> {
        use serde_json::Value as J;
        Ok(Ok(match v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::from_str::<J>(&nix_float(*f)).unwrap_or(J::Null),
            Value::Str(s) => J::String(s.to_string()),
            Value::Path(p) => J::String(p.to_string_lossy().into_owned()),
            Value::Unknown(u) => return Ok(Err(u.clone())),
            Value::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for t in items.iter() {
                    let v = self.force(t)?;
                    match self.to_json(&v, span)? {
                        Ok(j) => out.push(j),
                        Err(u) => return Ok(Err(u)),
                    }
                }
                J::Array(out)
            }
            Value::Attrs(_) | Value::Config(_) => {
                let m = self.attrs_of(v, span)?;
                if m.contains_key("__toString") {
                    return match self.coerce_to_string(v, span, false)? {
                        Ok(s) => Ok(Ok(J::String(s))),
                        Err(Value::Unknown(u)) => Ok(Err(u)),
                        Err(_) => unreachable!("coercion only defers unknowns"),
                    };
                }
                if let Some(o) = m.get("outPath") {
                    let o = self.force(&o.value.clone())?;
                    return self.to_json(&o, span);
                }
                if let Some(u) = uncertain_names(&m) {
                    return Ok(Err(u));
                }
                let mut out = serde_json::Map::new();
                for (k, e) in m.iter() {
                    let v = self.force(&e.value.clone())?;
                    match self.to_json(&v, e.span.unwrap_or(span))? {
                        Ok(j) => {
                            out.insert(k.to_string(), j);
                        }
                        Err(u) => return Ok(Err(u)),
                    }
                }
                J::Object(out)
            }
            Value::Lambda(_) | Value::PrimOp(_) => {
                return Err(type_err("cannot convert a function to JSON", span));
            }
        }))
    }

    /// The `lib` attribute set (tailshift's own implementation of the nixpkgs functions it knows).
    pub fn lib(&mut self) -> EvalResult {
        if let Some(t) = self.lib.clone() {
            return self.force(&t);
        }
        let file = self.sources.add("<tailshift lib>", super::LIB_NIX.to_string());
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

/// Largest Nix file the evaluator reads.
pub const MAX_SOURCE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads a Nix source file: regular files only (never a device or a FIFO), bounded in size.
pub fn read_source(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_SOURCE_BYTES {
        return Err(std::io::Error::other(format!("larger than {MAX_SOURCE_BYTES} bytes")));
    }
    std::fs::read_to_string(path)
}

/// A set entry without a source binding.
pub fn entry(v: Value) -> AttrEntry {
    AttrEntry { value: Thunk::value(v), span: None, cond: None }
}

fn unknown_of(a: &Value, b: &Value) -> Value {
    if let Value::Unknown(_) = a { a.clone() } else { b.clone() }
}

fn arith(op: BinOp, a: &Value, b: &Value, span: Span) -> EvalResult {
    Ok(match (a, b) {
        (Value::Int(x), Value::Int(y)) => Value::Int(match op {
            BinOp::Add => x.wrapping_add(*y),
            BinOp::Sub => x.wrapping_sub(*y),
            BinOp::Mul => x.wrapping_mul(*y),
            BinOp::Div => {
                if *y == 0 {
                    return Err(EvalError::new(ErrorKind::Other, "division by zero", Some(span)));
                }
                x.wrapping_div(*y)
            }
            _ => unreachable!(),
        }),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let x = as_f64(a);
            let y = as_f64(b);
            Value::Float(match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div => {
                    if y == 0.0 {
                        return Err(EvalError::new(
                            ErrorKind::Other,
                            "division by zero",
                            Some(span),
                        ));
                    }
                    x / y
                }
                _ => unreachable!(),
            })
        }
        _ => {
            return Err(type_err(
                format!("cannot do arithmetic on {} and {}", article(a), article(b)),
                span,
            ));
        }
    })
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => 0.0,
    }
}

/// A float as Nix prints it (C++ stream default: `%g` with 6 significant digits).
pub fn nix_float(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "nan".into()
        } else if f > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if f == 0.0 {
        return "0".into();
    }
    let exp = f.abs().log10().floor() as i32;
    // Rounding to 6 significant digits may carry into the next power of ten.
    let sci = format!("{f:.5e}");
    let (mant, e) = sci.split_once('e').expect("exponent");
    let e: i32 = e.parse().unwrap_or(exp);
    let trim = |s: &str| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if (-4..6).contains(&e) {
        let decimals = (5 - e).max(0) as usize;
        trim(&format!("{f:.decimals$}"))
    } else {
        format!("{}e{}{:02}", trim(mant), if e < 0 { '-' } else { '+' }, e.abs())
    }
}

/// "an integer", "a set": for messages.
pub fn article(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "a Boolean".into(),
        Value::Int(_) => "an integer".into(),
        Value::Float(_) => "a float".into(),
        Value::Str(_) => "a string".into(),
        Value::Path(_) => "a path".into(),
        Value::Attrs(_) | Value::Config(_) => "a set".into(),
        Value::List(_) => "a list".into(),
        Value::Lambda(_) | Value::PrimOp(_) => "a function".into(),
        Value::Unknown(_) => "an unknown value".into(),
    }
}

/// Lexically normalises a path (`a/./b/../c` -> `a/c`) without touching the file system.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

/// The offset where bracket nesting first exceeds [`MAX_SYNTAX_NESTING`], if it does.
fn excessive_nesting(text: &str) -> Option<u32> {
    let mut depth = 0usize;
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_SYNTAX_NESTING {
                    return Some(i as u32);
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn describe_parse_error(err: &rnix::ParseError, len: usize) -> ((u32, u32), String) {
    use rnix::ParseError as P;
    let eof = (len as u32, len as u32);
    let r = |t: &rnix::TextRange| (u32::from(t.start()), u32::from(t.end()));
    match err {
        P::Unexpected(t) => (r(t), "unexpected input".into()),
        P::UnexpectedExtra(t) => (r(t), "unexpected input after the end of the expression".into()),
        P::UnexpectedWanted(got, t, want) => {
            (r(t), format!("unexpected {}, expected {}", kind_name(*got), kinds_list(want)))
        }
        P::UnexpectedDoubleBind(t) => (r(t), "pattern is bound twice".into()),
        P::UnexpectedEOF => (eof, "unexpected end of file".into()),
        P::UnexpectedEOFWanted(want) => {
            (eof, format!("unexpected end of file, expected {}", kinds_list(want)))
        }
        P::DuplicatedArgs(t, name) => {
            (r(t), format!("duplicate formal function argument '{name}'"))
        }
        P::RecursionLimitExceeded => (eof, "expression nested too deeply".into()),
        other => (eof, other.to_string()),
    }
}

fn kind_name(k: rnix::SyntaxKind) -> String {
    use rnix::SyntaxKind::*;
    match k {
        TOKEN_SEMICOLON => "';'".into(),
        TOKEN_L_BRACE => "'{'".into(),
        TOKEN_R_BRACE => "'}'".into(),
        TOKEN_L_BRACK => "'['".into(),
        TOKEN_R_BRACK => "']'".into(),
        TOKEN_L_PAREN => "'('".into(),
        TOKEN_R_PAREN => "')'".into(),
        TOKEN_ASSIGN => "'='".into(),
        TOKEN_COLON => "':'".into(),
        TOKEN_COMMA => "','".into(),
        TOKEN_IDENT => "an identifier".into(),
        TOKEN_STRING_START | TOKEN_STRING_END => "'\"'".into(),
        TOKEN_IN => "'in'".into(),
        TOKEN_THEN => "'then'".into(),
        TOKEN_ELSE => "'else'".into(),
        other => format!("{other:?}")
            .trim_start_matches("TOKEN_")
            .trim_start_matches("NODE_")
            .to_lowercase(),
    }
}

fn kinds_list(ks: &[rnix::SyntaxKind]) -> String {
    let names: Vec<String> = ks.iter().map(|k| kind_name(*k)).collect();
    match names.len() {
        0 => "more input".into(),
        1 => names[0].clone(),
        _ => format!("one of {}", names.join(", ")),
    }
}
