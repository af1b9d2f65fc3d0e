//! Runtime values of the evaluator: lazy thunks, attribute sets that remember where each
//! attribute was bound, `Unknown` for what the inputs cannot tell, and the evaluator state
//! ([`Eval`]) they are computed in.
//!
//! Values and the evaluator name each other (a builtin and a native thunk are functions of
//! `&mut Eval`; the evaluator holds scopes, caches and the builtins as values), so both are
//! defined here, at the bottom of the evaluator: every other module builds on this one. How
//! the evaluator evaluates is elsewhere, as methods of [`Eval`] (`eval`, `modules`) and as the
//! builtins' functions (`builtins`).

use super::error::EvalError;
use super::files::GitView;
use super::syntax::{ExprRef, LambdaDef};
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, SourceMap, Span};
use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::rc::Rc;

/// Variable scopes hash names with FxHash: short keys, no untrusted input to guard against.
pub type VarMap = rustc_hash::FxHashMap<Rc<str>, Thunk>;

/// The result of evaluating to weak head normal form.
pub type EvalResult = Result<Value, EvalError>;

/// How deep evaluation may nest before it is stopped (a guard against runaway recursion).
pub const MAX_EVAL_DEPTH: usize = 3_000;
/// How many evaluation steps one run may take (a guard against hangs).
pub const DEFAULT_FUEL: u64 = 200_000_000;

/// A value that cannot be known from the inputs, with the reason and where it arose.
#[derive(Debug, Clone)]
pub struct Unknown {
    /// Why it cannot be known, e.g. "comes from nixpkgs, which is not read".
    pub reason: String,
    /// The expression that produced it.
    pub span: Option<Span>,
    /// The access path that led here (`pkgs.jellyfin.outPath`), for the message.
    pub what: Option<String>,
}

impl Unknown {
    /// The full reason, naming what was accessed.
    pub fn describe(&self) -> String {
        match &self.what {
            Some(w) => format!("`{w}` {}", self.reason),
            None => self.reason.clone(),
        }
    }
}

/// A built-in function, possibly partly applied.
#[derive(Clone)]
pub struct PrimOp {
    /// Its name, for messages.
    pub name: &'static str,
    /// How many arguments it takes.
    pub arity: usize,
    /// The implementation.
    pub func: fn(&mut Eval, &[Thunk], Span) -> EvalResult,
    /// Arguments collected so far.
    pub args: Vec<Thunk>,
}

impl fmt::Debug for PrimOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<primop {}>", self.name)
    }
}

/// A function value: its definition and the scope it closes over.
#[derive(Debug)]
pub struct Closure {
    /// Parameter and body.
    pub def: Rc<LambdaDef>,
    /// Captured scope.
    pub env: Env,
    /// Where the lambda was written.
    pub span: Span,
}

/// One attribute: its (lazy) value and the binding that defined it, when it was written in a file.
#[derive(Debug, Clone)]
pub struct AttrEntry {
    /// The value.
    pub value: Thunk,
    /// The `name = value;` that bound it.
    pub span: Option<Span>,
    /// Set when the attribute exists only under a condition that cannot be known
    /// (`optionalAttrs c { x = ...; }`, `if c then { x = ...; } else { }`): its value is read as
    /// if present, and its presence is in doubt.
    pub cond: Option<Rc<Unknown>>,
}

/// The key under which a set that may hold more attributes than it lists keeps why
/// (`import "${inputs.private}/x.nix" { } // { z = ...; }`). A NUL byte cannot appear in a Nix
/// string, so no program can name, define or see it.
pub const REST_KEY: &str = "\0rest";

/// Why a set's attribute names are not all certain: some exist only under an unknown condition,
/// or it may hold more than it lists. `None` for an ordinary set.
pub fn uncertain_names(m: &AttrMap) -> Option<Rc<Unknown>> {
    if let Some(e) = m.get(REST_KEY)
        && let Some(Value::Unknown(u)) = e.value.peek()
    {
        return Some(u);
    }
    m.values().find_map(|e| e.cond.clone())
}

/// Attribute sets are sorted by name, as Nix sorts them.
pub type AttrMap = BTreeMap<Rc<str>, AttrEntry>;

/// A Nix value in weak head normal form.
#[derive(Debug, Clone)]
pub enum Value {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// 64-bit integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// String (string context is not tracked).
    Str(Rc<str>),
    /// Absolute path.
    Path(Rc<PathBuf>),
    /// Attribute set.
    Attrs(Rc<AttrMap>),
    /// List.
    List(Rc<Vec<Thunk>>),
    /// Function.
    Lambda(Rc<Closure>),
    /// Built-in function.
    PrimOp(Rc<PrimOp>),
    /// A NixOS module system `config` node: selecting from it asks the module system.
    Config(Rc<Vec<Rc<str>>>),
    /// Something the inputs cannot tell.
    Unknown(Rc<Unknown>),
}

impl Value {
    /// Nix's `builtins.typeOf` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Path(_) => "path",
            Value::Attrs(_) | Value::Config(_) => "set",
            Value::List(_) => "list",
            Value::Lambda(_) | Value::PrimOp(_) => "lambda",
            Value::Unknown(_) => "unknown",
        }
    }

    /// A string value.
    pub fn string(s: impl Into<Rc<str>>) -> Value {
        Value::Str(s.into())
    }

    /// An unknown value.
    pub fn unknown(reason: impl Into<String>, span: Option<Span>) -> Value {
        Value::Unknown(Rc::new(Unknown { reason: reason.into(), span, what: None }))
    }
}

/// The state of a lazy value.
pub enum ThunkState {
    /// Not yet evaluated: an expression in a scope.
    Pending(ExprRef, Env),
    /// Not yet computed by native code.
    Native(Box<dyn FnOnce(&mut Eval) -> EvalResult>),
    /// Being evaluated: forcing it again is infinite recursion.
    Running,
    /// Evaluated.
    Done(Value),
}

impl fmt::Debug for ThunkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThunkState::Pending(e, _) => write!(f, "<thunk {:?}>", e.span),
            ThunkState::Native(_) => f.write_str("<native thunk>"),
            ThunkState::Running => f.write_str("<running>"),
            ThunkState::Done(v) => write!(f, "{v:?}"),
        }
    }
}

/// A shared lazy value.
#[derive(Clone, Debug)]
pub struct Thunk(pub Rc<RefCell<ThunkState>>);

impl Thunk {
    /// An already evaluated value.
    pub fn value(v: Value) -> Thunk {
        Thunk(Rc::new(RefCell::new(ThunkState::Done(v))))
    }

    /// An expression to evaluate later in `env`.
    pub fn pending(e: ExprRef, env: Env) -> Thunk {
        Thunk(Rc::new(RefCell::new(ThunkState::Pending(e, env))))
    }

    /// Native code to run later.
    pub fn native(f: impl FnOnce(&mut Eval) -> EvalResult + 'static) -> Thunk {
        Thunk(Rc::new(RefCell::new(ThunkState::Native(Box::new(f)))))
    }

    /// The value, if already evaluated.
    pub fn peek(&self) -> Option<Value> {
        match &*self.0.borrow() {
            ThunkState::Done(v) => Some(v.clone()),
            _ => None,
        }
    }
}

/// A lexical scope: variables, or a `with` namespace.
#[derive(Debug)]
pub enum Scope {
    /// Bound variables (let, rec, function arguments).
    Vars(RefCell<VarMap>),
    /// A `with` namespace, searched after every lexical variable.
    With(Thunk),
}

/// A chain of scopes.
#[derive(Debug, Clone)]
pub struct Env(pub Option<Rc<EnvNode>>);

/// One link of the scope chain.
#[derive(Debug)]
pub struct EnvNode {
    /// This scope.
    pub scope: Scope,
    /// The enclosing one.
    pub parent: Env,
    /// The evaluator's list of variable scopes, to break reference cycles when it is dropped.
    registry: Option<EnvRegistry>,
}

/// Every variable scope an evaluator created. Recursive scopes (`let`, `rec`, defaults of
/// function patterns) hold thunks that hold the scope: `Rc` cannot free such cycles, so the
/// evaluator empties every scope when it is dropped.
#[derive(Debug, Default)]
pub struct EnvRegistryInner {
    scopes: Vec<std::rc::Weak<EnvNode>>,
    live_after_prune: usize,
}

/// Shared handle to an [`EnvRegistryInner`].
pub type EnvRegistry = Rc<RefCell<EnvRegistryInner>>;

impl EnvRegistryInner {
    fn register(&mut self, node: &Rc<EnvNode>) {
        self.scopes.push(Rc::downgrade(node));
        // Forget scopes that are gone, so the list grows with live scopes only.
        if self.scopes.len() > 2 * self.live_after_prune.max(1024) {
            self.scopes.retain(|w| w.strong_count() > 0);
            self.live_after_prune = self.scopes.len();
        }
    }

    /// Empties every live scope, breaking the cycles through them.
    pub fn clear_all(&mut self) {
        for w in self.scopes.drain(..) {
            if let Some(node) = w.upgrade()
                && let Scope::Vars(v) = &node.scope
            {
                let vars = std::mem::take(&mut *v.borrow_mut());
                drop(vars);
            }
        }
    }
}

impl Env {
    /// The empty scope chain.
    pub fn root() -> Env {
        Env(None)
    }

    /// The outermost scope of an evaluator: its variables, registered in `registry`.
    pub fn top(vars: VarMap, registry: EnvRegistry) -> Env {
        let node = Rc::new(EnvNode {
            scope: Scope::Vars(RefCell::new(vars)),
            parent: Env(None),
            registry: Some(registry.clone()),
        });
        registry.borrow_mut().register(&node);
        Env(Some(node))
    }

    fn registry(&self) -> Option<EnvRegistry> {
        self.0.as_ref().and_then(|n| n.registry.clone())
    }

    /// A new variable scope inside this one.
    pub fn with_vars(&self, vars: VarMap) -> Env {
        let registry = self.registry();
        let node = Rc::new(EnvNode {
            scope: Scope::Vars(RefCell::new(vars)),
            parent: self.clone(),
            registry: registry.clone(),
        });
        if let Some(r) = registry {
            r.borrow_mut().register(&node);
        }
        Env(Some(node))
    }

    /// A new `with` scope inside this one.
    pub fn with_namespace(&self, ns: Thunk) -> Env {
        Env(Some(Rc::new(EnvNode {
            scope: Scope::With(ns),
            parent: self.clone(),
            registry: self.registry(),
        })))
    }

    /// Adds a variable to the innermost variable scope (used to tie recursive bindings).
    pub fn define(&self, name: Rc<str>, t: Thunk) {
        if let Some(node) = &self.0
            && let Scope::Vars(v) = &node.scope
        {
            v.borrow_mut().insert(name, t);
        }
    }

    /// Looks up a lexically bound variable.
    pub fn lookup_lexical(&self, name: &str) -> Option<Thunk> {
        let mut cur = &self.0;
        while let Some(node) = cur {
            if let Scope::Vars(v) = &node.scope
                && let Some(t) = v.borrow().get(name)
            {
                return Some(t.clone());
            }
            cur = &node.parent.0;
        }
        None
    }

    /// The `with` namespaces, innermost first.
    pub fn namespaces(&self) -> Vec<Thunk> {
        let mut out = Vec::new();
        let mut cur = &self.0;
        while let Some(node) = cur {
            if let Scope::With(t) = &node.scope {
                out.push(t.clone());
            }
            cur = &node.parent.0;
        }
        out
    }
}

/// A list kept alive beside the hash set of its strings (`None`: not all strings).
pub(super) type StringIndex = (Rc<Vec<Thunk>>, Option<Rc<HashSet<Rc<str>>>>);

/// The evaluator: its files, caches and budgets.
pub struct Eval {
    /// Every file read.
    pub sources: SourceMap,
    /// Diagnostics raised while reading and evaluating (syntax errors, missing imports).
    pub diagnostics: Vec<Diagnostic>,
    pub(crate) globals: Env,
    pub(super) imports: HashMap<PathBuf, Thunk>,
    pub(super) depth: usize,
    pub(super) fuel: u64,
    pub(crate) lib: Option<Thunk>,
    /// The NixOS module system's state, made when modules are first read. The module system is
    /// a layer above the evaluator that its native thunks reach through `&mut Eval`: it is kept
    /// as `Any` so that the evaluator does not depend on that layer.
    pub(super) modules: Option<Box<dyn Any>>,
    /// Hash sets of string lists searched by `elem`, keyed by the list's address (the list is
    /// kept alive beside its set, so the address cannot be reused).
    pub(super) string_indexes: HashMap<usize, StringIndex>,
    /// Every variable scope created, emptied on drop (see [`EnvRegistryInner`]).
    pub(super) registry: EnvRegistry,
    /// `builtins`, which contains itself (`builtins.builtins`).
    pub(super) builtins: Thunk,
    /// For a flake in a git work tree: the files Nix sees (git-tracked ones).
    pub git: Option<Rc<GitView>>,
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

/// Returns early with the value when it is unknown.
macro_rules! propagate {
    ($v:expr) => {
        if let Value::Unknown(_) = &$v {
            return Ok($v.clone());
        }
    };
}
pub(crate) use propagate;

/// A set entry without a source binding.
pub fn entry(v: Value) -> AttrEntry {
    AttrEntry { value: Thunk::value(v), span: None, cond: None }
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

/// A span for values that have no place in a file.
pub(crate) fn dummy_span() -> Span {
    Span { file: FileId(0), start: 0, end: 0 }
}
