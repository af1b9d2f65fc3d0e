//! NixOS module merging, for the options tailshift reads.
//!
//! Follows nixpkgs' `lib/modules.nix`: modules are collected through `imports`; definitions
//! are pushed down through namespaces (`mkIf`/`mkMerge`/`mkOverride` wrapped around a set
//! apply to each attribute in it); at an option whose type merges attribute sets
//! (`attrsOf`, `submodule`) properties are discharged and overrides filtered before descending,
//! so `mkForce { ... }` on a whole service replaces the other definitions of that service while
//! `svc.x = mkForce v` only wins for `x`. `config` is lazy: a module may read
//! `config.networking.hostName` while another defines it.

use super::error::{ErrorKind, EvalError};
use super::files::normalize;
pub(crate) use super::value::dummy_span;
use super::value::*;
use crate::diagnostic::Diagnostic;
use crate::source::Span;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Priority of a plain definition (nixpkgs `defaultOverridePriority`).
pub const DEFAULT_PRIORITY: i64 = 100;
/// Priority of an `mkOptionDefault` (used for `--host`).
pub const OPTION_DEFAULT_PRIORITY: i64 = 1500;
/// Priority of an `mkOrder`-less list element.
const DEFAULT_ORDER: i64 = 1000;

type Path_ = Vec<Rc<str>>;

/// One definition of a config path by one module.
#[derive(Clone, Debug)]
pub struct Def {
    /// The defined value (may still carry properties).
    pub value: Thunk,
    /// `mkIf` conditions pushed down from enclosing sets, not yet evaluated.
    pub conds: Vec<Thunk>,
    /// Override priority pushed down from an enclosing set.
    pub prio: Option<i64>,
    /// `mkOrder` priority.
    pub order: i64,
    /// The binding that made this definition.
    pub span: Option<Span>,
    /// Index of the defining module.
    pub module: usize,
    /// Set when a condition on this definition cannot be known.
    pub unknown_cond: Option<Rc<Unknown>>,
}

/// How a config path merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A set of options: definitions are pushed down.
    Namespace,
    /// `attrsOf submodule`: overrides are filtered per element.
    AttrsOf,
    /// A submodule: overrides are filtered on the whole value.
    Submodule,
    /// An option with a value.
    Leaf(LeafTy),
    /// A path tailshift has no declaration for: merged by the shape of its definitions.
    Generic,
}

/// How a leaf option merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafTy {
    /// Definitions must agree.
    Scalar,
    /// `listOf`: definitions concatenate.
    List,
    /// `attrsOf str`: definitions merge by key.
    AttrsOfStr,
}

/// Kinds of the `services.tsnsrv.services.<name>.*` / `defaults.*` options.
fn field_kind(f: &str) -> Kind {
    match f {
        "urlParts" => Kind::Submodule,
        "upstreamHeaders" | "authCopyHeaders" => Kind::Leaf(LeafTy::AttrsOfStr),
        "tags" | "prefixes" | "extraArgs" | "supplementalGroups" => Kind::Leaf(LeafTy::List),
        _ => Kind::Leaf(LeafTy::Scalar),
    }
}

/// The declared shape of the options tailshift reads; everything else is generic.
pub fn kind_of(path: &[Rc<str>]) -> Kind {
    // Nothing tailshift declares is deeper than 6; a stack buffer avoids an allocation per call.
    if path.len() > 6 {
        return Kind::Generic;
    }
    let mut buf = [""; 6];
    for (b, s) in buf.iter_mut().zip(path) {
        *b = s;
    }
    match &buf[..path.len()] {
        [] | ["services"] | ["networking"] | ["services", "tsnsrv"] => Kind::Namespace,
        ["networking", "hostName"] => Kind::Leaf(LeafTy::Scalar),
        ["services", "tsnsrv", "defaults"] => Kind::Submodule,
        ["services", "tsnsrv", "defaults", f] => field_kind(f),
        ["services", "tsnsrv", "defaults", "urlParts", _] => Kind::Leaf(LeafTy::Scalar),
        ["services", "tsnsrv", "services"] => Kind::AttrsOf,
        ["services", "tsnsrv", "services", _] => Kind::Submodule,
        ["services", "tsnsrv", "services", _, f] => field_kind(f),
        ["services", "tsnsrv", "services", _, "urlParts", _] => Kind::Leaf(LeafTy::Scalar),
        ["services", "tsnsrv", "services", _, _, _] => Kind::Leaf(LeafTy::Scalar),
        ["services", "tsnsrv", "defaults", _, _] => Kind::Leaf(LeafTy::Scalar),
        ["services", "tsnsrv", _] => Kind::Leaf(LeafTy::Scalar),
        _ => Kind::Generic,
    }
}

/// A module argument that is neither standard nor a `specialArgs` entry: read from
/// `config._module.args.<name>`, unknown when the files do not set it.
fn module_arg_thunk(name: Rc<str>) -> Thunk {
    Thunk::native(move |ev| {
        let path: Vec<Rc<str>> = vec!["_module".into(), "args".into(), name.clone()];
        let defined = !ev.defs_at(&path)?.is_empty();
        if defined {
            let t = ev.config_select(&path[..2], &name, dummy_span())?;
            return ev.force(&t);
        }
        Ok(Value::Unknown(Rc::new(Unknown {
            reason: "is a module argument that neither specialArgs nor _module.args in the files read sets".into(),
            span: None,
            what: Some(name.to_string()),
        })))
    })
}

/// A module still to read.
enum Pending {
    /// A file, and the `imports` entry that named it.
    File(PathBuf, Option<Span>),
    /// An inline module (a set or a function).
    Value(Value, Span),
}

struct ModuleInfo {
    defs: Thunk,
    /// The module's `options`, when it declares any.
    options: Option<Thunk>,
    /// The file it was read from.
    file: Option<PathBuf>,
}

/// The modules read and the merge caches.
#[derive(Default)]
pub struct ModuleState {
    modules: Vec<ModuleInfo>,
    loaded: HashSet<PathBuf>,
    defs_memo: rustc_hash::FxHashMap<Path_, Rc<Vec<Def>>>,
    discharged_memo: rustc_hash::FxHashMap<Path_, Rc<Vec<Def>>>,
    /// Conditions taken as true while reading a conditional service's values (its presence
    /// carries them instead).
    assumed: Vec<Rc<Unknown>>,
    /// Definitions of sets that could not be evaluated, by the path they define (kept so that
    /// a definition lost there is said, not dropped).
    failed: Vec<(Path_, EvalError)>,
    /// `specialArgs` of the host (from its flake), passed to every module.
    special_args: std::collections::BTreeMap<Rc<str>, Thunk>,
    /// What the option declarations say about each path asked.
    decl_memo: rustc_hash::FxHashMap<Path_, super::decls::DeclState>,
    /// The file whose module is being read (for `ModuleInfo::file`).
    reading: Option<PathBuf>,
    /// Imported modules that cannot be read (absent, or not tracked in a flake), with where.
    missing: Vec<(String, Option<Span>)>,
    /// Module files `disabledModules` removes.
    disabled: HashSet<PathBuf>,
    /// Whether a module read declares `services.tsnsrv.services` (see `tsnsrv_extended`).
    tsnsrv_extended: Option<bool>,
    /// The merge kind of each path asked beyond tailshift's own table.
    kind_memo: rustc_hash::FxHashMap<Path_, Kind>,
}

/// A definition of an attribute set whose attribute names cannot all be known.
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// Why.
    pub reason: String,
    /// The definition (or where the unknown arose).
    pub span: Option<Span>,
}

/// The names defined under a config path, each with the condition it exists under (when that
/// cannot be known), and the definitions whose names cannot be known.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// Names, sorted; `Some(condition)` for a name present only under an unknown condition.
    pub names: Vec<(Rc<str>, Option<Rc<Unknown>>)>,
    /// Definitions contributing names that cannot be known.
    pub unreadable: Vec<Unreadable>,
}

/// A value read from the merged configuration, with where it was defined.
#[derive(Debug, Clone)]
pub struct Declared {
    /// The value as JSON, or why it cannot be known.
    pub value: Result<serde_json::Value, Rc<Unknown>>,
    /// The binding of the winning definition.
    pub span: Option<Span>,
}

fn dotted(path: &[Rc<str>]) -> String {
    path.iter().map(|s| &**s).collect::<Vec<_>>().join(".")
}

fn str_path(path: &[&str]) -> Path_ {
    path.iter().map(|s| Rc::from(*s)).collect()
}

impl Eval {
    fn modules_mut(&mut self) -> &mut ModuleState {
        self.modules
            .get_or_insert_with(|| Box::new(ModuleState::default()))
            .downcast_mut()
            .expect("the evaluator keeps only the module system's state there")
    }

    pub(crate) fn decl_memo(
        &mut self,
    ) -> &mut rustc_hash::FxHashMap<Path_, super::decls::DeclState> {
        &mut self.modules_mut().decl_memo
    }

    /// Every module's `options` (the roots of the declarations).
    pub(crate) fn module_option_sets(&mut self) -> Vec<Thunk> {
        self.modules_mut().modules.iter().filter_map(|m| m.options.clone()).collect()
    }

    /// How a config path merges: tailshift's own table for tsnsrv, else the declarations of
    /// the modules read, else by the shape of its definitions.
    pub(crate) fn kind_at(&mut self, path: &[Rc<str>]) -> Kind {
        let k = kind_of(path);
        if is_tsnsrv(path) {
            // A service's own additions (`dashboard.public`) merge as their declarations say.
            if path.len() >= 5
                && self.tsnsrv_extended()
                && crate::options::spec(&path[4]).is_none()
                && let Some(d) = self.declared_kind(path)
            {
                return d;
            }
            return k;
        }
        if k != Kind::Generic {
            return k;
        }
        if let Some(k) = self.modules_mut().kind_memo.get(path) {
            return *k;
        }
        let k = self.declared_kind(path).unwrap_or(Kind::Generic);
        self.modules_mut().kind_memo.insert(path.to_vec(), k);
        k
    }

    /// Imported modules that cannot be read: each may declare services.
    pub fn missing_modules(&mut self) -> Vec<(String, Option<Span>)> {
        self.modules_mut().missing.clone()
    }

    /// Whether a module read declares `services.tsnsrv.services` itself (extending tsnsrv's
    /// submodule, e.g. with `config.funnel = mkDefault true` for every service): then its
    /// declarations and definitions reach tsnsrv's paths too.
    pub(crate) fn tsnsrv_extended(&mut self) -> bool {
        if let Some(b) = self.modules_mut().tsnsrv_extended {
            return b;
        }
        let path: Vec<Rc<str>> = vec!["services".into(), "tsnsrv".into(), "services".into()];
        let b = self.declared_option(&path).is_some();
        self.modules_mut().tsnsrv_extended = Some(b);
        b
    }

    /// Whether `path` is an option a module read declares inside a tsnsrv service (its own
    /// addition, such as `public`), not one of tsnsrv's.
    pub fn is_user_suboption(&mut self, path: &[Rc<str>]) -> bool {
        self.tsnsrv_extended() && self.declared_kind(path).is_some()
    }

    /// Every module file read (absolute), roots and imports.
    pub fn loaded_files(&self) -> Vec<PathBuf> {
        self.modules
            .as_ref()
            .and_then(|m| m.downcast_ref::<ModuleState>())
            .map(|m| m.loaded.iter().cloned().collect())
            .unwrap_or_default()
    }

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
        let text = super::files::read_source(&abs).map_err(|e| {
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

    /// The arguments a module function is called with (`config`, `lib`, `options`, ...);
    /// `extra` (a submodule's own `config` and `name`) comes first.
    pub(crate) fn module_args(
        &mut self,
        f: &Value,
        extra: &[(&str, Value)],
    ) -> Result<Value, EvalError> {
        let wanted: Option<Vec<(Rc<str>, bool)>> = match f {
            Value::Lambda(c) => match &c.def.param {
                super::syntax::Param::Pattern { entries, ellipsis: false, .. } => {
                    Some(entries.iter().map(|(n, d)| (n.clone(), d.is_some())).collect())
                }
                super::syntax::Param::Pattern { entries, .. } => {
                    Some(entries.iter().map(|(n, d)| (n.clone(), d.is_some())).collect())
                }
                _ => None,
            },
            _ => None,
        };
        let lib = self.lib()?;
        let known: Vec<(&str, Value)> = vec![
            ("config", Value::Config(Rc::new(Vec::new()))),
            ("lib", lib),
            ("pkgs", Value::unknown("comes from nixpkgs, which tailshift does not read", None)),
            // Replaced below by the declarations, read lazily (all modules are loaded by then).
            ("options", Value::Null),
            (
                "modulesPath",
                Value::unknown(
                    "is the nixpkgs modules directory, which tailshift does not read",
                    None,
                ),
            ),
            ("utils", Value::unknown("comes from nixpkgs, which tailshift does not read", None)),
        ];
        // What the caller gives (a submodule's own `config` and `name`) comes first.
        let known: Vec<(&str, Value)> = extra.iter().cloned().chain(known).collect::<Vec<_>>();
        let mut m = AttrMap::new();
        match wanted {
            Some(names) => {
                for (name, has_default) in names {
                    let given = extra.iter().any(|(k, _)| **k == *name);
                    let special = (!given && !matches!(&*name, "config" | "options"))
                        .then(|| self.modules_mut().special_args.get(&name).cloned())
                        .flatten();
                    if let Some(t) = special {
                        m.insert(name.clone(), AttrEntry { value: t, span: None, cond: None });
                    } else if let Some((_, v)) = known.iter().find(|(k, _)| **k == *name) {
                        m.insert(name.clone(), entry(v.clone()));
                    } else if !has_default {
                        m.insert(
                            name.clone(),
                            AttrEntry {
                                value: module_arg_thunk(name.clone()),
                                span: None,
                                cond: None,
                            },
                        );
                    }
                }
            }
            None => {
                for (k, v) in known {
                    m.insert(k.into(), entry(v));
                }
                let special: Vec<(Rc<str>, Thunk)> = self
                    .modules_mut()
                    .special_args
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                for (k, t) in special {
                    if !matches!(&*k, "config" | "options") && !extra.iter().any(|(e, _)| **e == *k)
                    {
                        m.insert(k, AttrEntry { value: t, span: None, cond: None });
                    }
                }
            }
        }
        if let Some(e) = m.get_mut("options") {
            e.value = Thunk::native(|ev| ev.options_node(&[]));
        }
        Ok(Value::Attrs(Rc::new(m)))
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

    /// Expands `mkIf`/`mkMerge`/`mkOverride`/`mkOrder` around a namespace value without
    /// evaluating conditions (nixpkgs `pushDownProperties`).
    fn pushdown(&mut self, d: Def, out: &mut Vec<Def>) -> Result<(), EvalError> {
        let v = self.force(&d.value)?;
        if let Value::Attrs(m) = &v
            && let Some(t) = m.get("_type")
        {
            let ty = self.force(&t.value.clone())?;
            let field = |k: &str| m.get(k).map(|e| e.value.clone());
            match &ty {
                Value::Str(s) if &**s == "if" => {
                    if let (Some(c), Some(content)) = (field("condition"), field("content")) {
                        let mut d2 = d.clone();
                        d2.conds.push(c);
                        d2.value = content;
                        return self.pushdown(d2, out);
                    }
                }
                Value::Str(s) if &**s == "merge" => {
                    if let Some(contents) = field("contents") {
                        let l = self.force(&contents)?;
                        if let Value::List(items) = l {
                            for t in items.iter() {
                                let mut d2 = d.clone();
                                d2.value = t.clone();
                                self.pushdown(d2, out)?;
                            }
                            return Ok(());
                        }
                    }
                }
                Value::Str(s) if &**s == "override" || &**s == "order" => {
                    if let (Some(p), Some(content)) = (field("priority"), field("content")) {
                        let p = self.force(&p)?;
                        let mut d2 = d.clone();
                        if let Value::Int(p) = p {
                            if &**s == "override" {
                                d2.prio = Some(p);
                            } else {
                                d2.order = p;
                            }
                        }
                        d2.value = content;
                        return self.pushdown(d2, out);
                    }
                }
                _ => {}
            }
        }
        out.push(d);
        Ok(())
    }

    /// Evaluates conditions and unwraps properties at an option (nixpkgs `dischargeProperties`).
    /// A submodule given as a function is called with its module arguments.
    fn discharge(
        &mut self,
        mut d: Def,
        path: &[Rc<str>],
        out: &mut Vec<Def>,
    ) -> Result<(), EvalError> {
        for c in std::mem::take(&mut d.conds) {
            match self.force(&c)? {
                Value::Bool(true) => {}
                Value::Bool(false) => return Ok(()),
                Value::Unknown(u) => d.unknown_cond = Some(u),
                other => {
                    return Err(EvalError::new(
                        ErrorKind::Type,
                        format!(
                            "mkIf condition is {} while a Boolean was expected",
                            article(&other)
                        ),
                        d.span,
                    ));
                }
            }
        }
        let v = self.force(&d.value)?;
        match &v {
            Value::Attrs(m) if m.contains_key("_type") => {
                let ty = self.force(&m["_type"].value.clone())?;
                let field = |k: &str| m.get(k).map(|e| e.value.clone());
                let kind = if let Value::Str(s) = &ty { s.to_string() } else { String::new() };
                match kind.as_str() {
                    "if" => {
                        if let (Some(c), Some(content)) = (field("condition"), field("content")) {
                            let mut d2 = d.clone();
                            d2.conds = vec![c];
                            d2.value = content;
                            return self.discharge(d2, path, out);
                        }
                    }
                    "merge" => {
                        if let Some(contents) = field("contents")
                            && let Value::List(items) = self.force(&contents)?
                        {
                            for t in items.iter() {
                                let mut d2 = d.clone();
                                d2.value = t.clone();
                                self.discharge(d2, path, out)?;
                            }
                            return Ok(());
                        }
                    }
                    "override" | "order" => {
                        if let (Some(p), Some(content)) = (field("priority"), field("content")) {
                            let mut d2 = d.clone();
                            if let Value::Int(p) = self.force(&p)? {
                                if kind == "override" {
                                    d2.prio = Some(p);
                                } else {
                                    d2.order = p;
                                }
                            }
                            d2.value = content;
                            return self.discharge(d2, path, out);
                        }
                    }
                    _ => {}
                }
            }
            Value::Lambda(_) if self.kind_at(path) == Kind::Submodule => {
                let name = path.last().cloned().unwrap_or_else(|| "".into());
                let extra =
                    [("name", Value::Str(name)), ("config", Value::Config(Rc::new(path.to_vec())))];
                let args = self.module_args(&v, &extra)?;
                let r =
                    self.apply(v.clone(), Thunk::value(args), d.span.unwrap_or(dummy_span()))?;
                let mut d2 = d.clone();
                // A submodule function may return `{ config = ...; }`.
                d2.value = match &r {
                    Value::Attrs(m) if m.contains_key("config") || m.contains_key("options") => m
                        .get("config")
                        .map(|e| e.value.clone())
                        .unwrap_or_else(|| Thunk::value(Value::Attrs(Rc::new(AttrMap::new())))),
                    _ => Thunk::value(r),
                };
                return self.discharge(d2, path, out);
            }
            _ => {}
        }
        out.push(d);
        Ok(())
    }

    /// The definitions reaching `path`, before its own properties are discharged.
    pub(crate) fn defs_at(&mut self, path: &[Rc<str>]) -> Result<Rc<Vec<Def>>, EvalError> {
        if let Some(d) = self.modules_mut().defs_memo.get(path) {
            return Ok(d.clone());
        }
        let defs = if path.is_empty() {
            let ms = self.modules_mut();
            ms.modules
                .iter()
                .enumerate()
                .map(|(i, m)| Def {
                    value: m.defs.clone(),
                    conds: Vec::new(),
                    prio: None,
                    order: DEFAULT_ORDER,
                    span: None,
                    module: i,
                    unknown_cond: None,
                })
                .collect()
        } else {
            let (parent, key) = path.split_at(path.len() - 1);
            let key = &key[0];
            let parents: Vec<Def> = match self.kind_at(parent) {
                Kind::AttrsOf | Kind::Submodule => self.discharged_at(parent)?.to_vec(),
                _ => {
                    let mut out = Vec::new();
                    for d in self.defs_at(parent)?.iter() {
                        self.pushdown(d.clone(), &mut out)?;
                    }
                    out
                }
            };
            let mut out = Vec::new();
            for d in parents {
                let v = self.force(&d.value)?;
                match &v {
                    Value::Attrs(m) => {
                        if let Some(e) = m.get(key) {
                            let mut d2 = d.clone();
                            d2.value = e.value.clone();
                            d2.span = e.span.or(d.span);
                            if d2.unknown_cond.is_none() {
                                d2.unknown_cond = e.cond.clone();
                            }
                            out.push(d2);
                        } else if let Some(rest) = m.get(REST_KEY)
                            && self.kind_at(parent) != Kind::AttrsOf
                        {
                            // The set may define this name too: what it defines is unknown.
                            let mut d2 = d.clone();
                            d2.value = rest.value.clone();
                            out.push(d2);
                        }
                    }
                    Value::Config(_) => {
                        let m = self.attrs_of(&v, d.span.unwrap_or(dummy_span()))?;
                        if let Some(e) = m.get(key) {
                            let mut d2 = d.clone();
                            d2.value = e.value.clone();
                            out.push(d2);
                        }
                    }
                    // Under an `attrsOf`, a definition whose names cannot be known is said by
                    // `config_keys_full`; the elements that are known are read without it.
                    Value::Unknown(_) if self.kind_at(parent) == Kind::AttrsOf => {}
                    Value::Unknown(_) => {
                        let mut d2 = d.clone();
                        d2.value = Thunk::value(v.clone());
                        out.push(d2);
                    }
                    other => {
                        return Err(EvalError::new(
                            ErrorKind::Type,
                            format!(
                                "the definition of `{}` is {} while a set was expected",
                                dotted(parent),
                                article(other)
                            ),
                            d.span,
                        ));
                    }
                }
            }
            out
        };
        let mut defs = defs;
        if !is_tsnsrv(path) || self.tsnsrv_extended() {
            defs.extend(self.declared_defs(path));
        }
        let defs = Rc::new(defs);
        // Leaf paths are read once (config self-references aside): caching them costs more
        // than it saves.
        if !matches!(self.kind_at(path), Kind::Leaf(_)) {
            self.modules_mut().defs_memo.insert(path.to_vec(), defs.clone());
        }
        Ok(defs)
    }

    /// The definitions of an option after discharging properties and filtering overrides.
    fn discharged_at(&mut self, path: &[Rc<str>]) -> Result<Rc<Vec<Def>>, EvalError> {
        if let Some(d) = self.modules_mut().discharged_memo.get(path) {
            return Ok(d.clone());
        }
        let mut out = Vec::new();
        for d in self.defs_at(path)?.iter() {
            if let Err(e) = self.discharge(d.clone(), path, &mut out) {
                if matches!(self.kind_at(path), Kind::Leaf(_)) {
                    return Err(e);
                }
                // One definition that fails does not hide the others; it is kept to be said.
                let e = EvalError { span: e.span.or(d.span), ..e };
                self.modules_mut().failed.push((path.to_vec(), e));
            }
        }
        let best = out.iter().map(|d| d.prio.unwrap_or(DEFAULT_PRIORITY)).min();
        if let Some(best) = best {
            out.retain(|d| d.prio.unwrap_or(DEFAULT_PRIORITY) == best);
        }
        let out = Rc::new(out);
        if !matches!(self.kind_at(path), Kind::Leaf(_)) {
            self.modules_mut().discharged_memo.insert(path.to_vec(), out.clone());
        }
        Ok(out)
    }

    /// Whether the definitions at a generic path are attribute sets (a namespace).
    fn generic_is_set(&mut self, path: &[Rc<str>]) -> Result<Option<bool>, EvalError> {
        let mut expanded = Vec::new();
        for d in self.defs_at(path)?.iter() {
            self.pushdown(d.clone(), &mut expanded)?;
        }
        let Some(first) = expanded.first() else { return Ok(None) };
        let v = self.force(&first.value.clone())?;
        Ok(Some(matches!(v, Value::Attrs(_) | Value::Config(_))))
    }

    /// Merges the definitions of a leaf option. `None` when no module defines it.
    fn merge_leaf(
        &mut self,
        path: &[Rc<str>],
        ty: LeafTy,
    ) -> Result<Option<(Value, Option<Span>)>, EvalError> {
        let defs = self.discharged_at(path)?;
        let Some(first) = defs.first() else { return Ok(None) };
        let span = first.span;
        let assumed = &self.modules_mut().assumed;
        let doubted = defs.iter().find_map(|d| {
            d.unknown_cond.clone().filter(|c| !assumed.iter().any(|a| Rc::ptr_eq(a, c)))
        });
        if let Some(u) = doubted {
            return Ok(Some((
                Value::Unknown(Rc::new(Unknown {
                    reason: format!(
                        "is defined under a condition that cannot be known: {}",
                        u.describe()
                    ),
                    span: u.span,
                    what: None,
                })),
                span,
            )));
        }
        let mut values = Vec::new();
        for d in defs.iter() {
            values.push((self.force(&d.value)?, d.clone()));
        }
        if let Some((u, _)) = values.iter().find(|(v, _)| matches!(v, Value::Unknown(_))) {
            return Ok(Some((u.clone(), span)));
        }
        let all_lists = values.iter().all(|(v, _)| matches!(v, Value::List(_)));
        if ty == LeafTy::List || (ty == LeafTy::Scalar && all_lists && values.len() > 1) {
            let mut sorted = values.clone();
            sorted.sort_by_key(|(_, d)| d.order);
            let mut items = Vec::new();
            for (v, d) in &sorted {
                match v {
                    Value::List(l) => items.extend(l.iter().cloned()),
                    other => {
                        return Err(EvalError::new(
                            ErrorKind::Type,
                            format!(
                                "`{}` is {} while a list was expected",
                                dotted(path),
                                article(other)
                            ),
                            d.span,
                        ));
                    }
                }
            }
            return Ok(Some((Value::List(Rc::new(items)), span)));
        }
        if ty == LeafTy::AttrsOfStr && values.len() > 1 {
            let mut merged = AttrMap::new();
            for (v, d) in &values {
                let m = self.attrs_of(v, d.span.unwrap_or(dummy_span()))?;
                for (k, e) in m.iter() {
                    if let Some(prev) = merged.get(k) {
                        let a = self.force(&prev.value.clone())?;
                        let b = self.force(&e.value.clone())?;
                        if self.equal(&a, &b, d.span.unwrap_or(dummy_span()))? == Some(false) {
                            return Err(
                                self.conflict(&[path, std::slice::from_ref(k)].concat(), &values)
                            );
                        }
                    }
                    merged.insert(k.clone(), e.clone());
                }
            }
            return Ok(Some((Value::Attrs(Rc::new(merged)), span)));
        }
        let (v0, _) = values[0].clone();
        for (v, d) in values.iter().skip(1) {
            if self.equal(&v0, v, d.span.unwrap_or(dummy_span()))? == Some(false) {
                return Err(self.conflict(path, &values));
            }
        }
        Ok(Some((v0, span)))
    }

    fn conflict(&mut self, path: &[Rc<str>], values: &[(Value, Def)]) -> EvalError {
        let mut msg = format!("the option `{}` has conflicting definition values:", dotted(path));
        for (v, d) in values {
            let shown = match self.to_json(v, d.span.unwrap_or(dummy_span())) {
                Ok(Ok(j)) => j.to_string(),
                _ => article(v),
            };
            let at = d.span.map(|s| self.sources.location(s).to_string()).unwrap_or_default();
            msg.push_str(&format!(" {shown} (at {at});"));
        }
        msg.pop();
        EvalError::new(ErrorKind::Other, msg, values.first().and_then(|(_, d)| d.span))
    }

    /// `config.<path>.<key>` as a thunk.
    pub(crate) fn config_select(
        &mut self,
        path: &[Rc<str>],
        key: &str,
        span: Span,
    ) -> Result<Thunk, EvalError> {
        let mut child = path.to_vec();
        child.push(key.into());
        let v = self.config_value(&child, span)?;
        Ok(Thunk::value(v))
    }

    fn config_value(&mut self, path: &[Rc<str>], span: Span) -> Result<Value, EvalError> {
        let v = self.config_value_unapplied(path, span)?;
        if is_tsnsrv(path) {
            return Ok(v);
        }
        match self.declared_option(path) {
            Some(o) if o.apply.is_some() && !matches!(v, Value::Unknown(_)) => {
                let f = self.force(&o.apply.clone().expect("checked"))?;
                self.apply(f, Thunk::value(v), span)
            }
            _ => Ok(v),
        }
    }

    /// What `config.<path>` is for an option nothing defines: unknown, saying whether the
    /// files declare it (without a default) or nixpkgs presumably does.
    fn undefined_option(&mut self, path: &[Rc<str>], span: Span) -> Value {
        match self.declared_option(path) {
            Some(o) => Value::Unknown(Rc::new(Unknown {
                reason: "is declared without a default and not defined in the files read (NixOS would refuse to read it)".into(),
                span: o.span.or(Some(span)),
                what: Some(format!("config.{}", dotted(path))),
            })),
            None => option_default(path),
        }
    }

    fn config_value_unapplied(&mut self, path: &[Rc<str>], span: Span) -> Result<Value, EvalError> {
        match self.kind_at(path) {
            Kind::Leaf(ty) => match self.merge_leaf(path, ty)? {
                Some((v, _)) => Ok(v),
                None => Ok(self.undefined_option(path, span)),
            },
            Kind::Namespace | Kind::AttrsOf | Kind::Submodule => {
                Ok(Value::Config(Rc::new(path.to_vec())))
            }
            Kind::Generic => match self.generic_is_set(path)? {
                None if self.declared_option(path).is_some() => {
                    Ok(self.undefined_option(path, span))
                }
                None => Ok(Value::Unknown(Rc::new(Unknown {
                    reason: undeclared_reason(path),
                    span: Some(span),
                    what: Some(format!("config.{}", dotted(path))),
                }))),
                Some(true) => Ok(Value::Config(Rc::new(path.to_vec()))),
                Some(false) => Ok(self
                    .merge_leaf(path, LeafTy::Scalar)?
                    .map(|(v, _)| v)
                    .unwrap_or(Value::Null)),
            },
        }
    }

    /// The attribute names defined under a config path.
    pub fn config_keys(&mut self, path: &[Rc<str>]) -> Result<Vec<Rc<str>>, EvalError> {
        let kind = self.kind_at(path);
        let defs: Vec<Def> = match kind {
            Kind::AttrsOf | Kind::Submodule => self.discharged_at(path)?.to_vec(),
            _ => {
                let mut out = Vec::new();
                for d in self.defs_at(path)?.iter() {
                    self.pushdown(d.clone(), &mut out)?;
                }
                out
            }
        };
        let mut keys = BTreeSet::new();
        for d in &defs {
            let v = self.force(&d.value)?;
            if let Value::Attrs(_) | Value::Config(_) = v {
                let m = self.attrs_of(&v, d.span.unwrap_or(dummy_span()))?;
                keys.extend(m.keys().cloned());
            }
        }
        let mut out = Vec::new();
        for k in keys {
            if kind == Kind::AttrsOf {
                // An element all of whose definitions are switched off by mkIf does not exist.
                let mut child = path.to_vec();
                child.push(k.clone());
                if self.discharged_at(&child)?.is_empty() {
                    continue;
                }
            }
            out.push(k);
        }
        Ok(out)
    }

    pub(crate) fn config_materialize(
        &mut self,
        path: &[Rc<str>],
        span: Span,
    ) -> Result<Rc<AttrMap>, EvalError> {
        let keys = self.config_keys(path)?;
        let mut m = AttrMap::new();
        for k in keys {
            let p = path.to_vec();
            let key = k.clone();
            let t = Thunk::native(move |ev| {
                let t = ev.config_select(&p, &key, span)?;
                ev.force(&t)
            });
            m.insert(k, AttrEntry { value: t, span: None, cond: None });
        }
        Ok(Rc::new(m))
    }

    /// Reads a config path as JSON with the location of its definition; `None` if undefined.
    /// Sets (a submodule such as `urlParts`, or a generic namespace) are read key by key.
    pub fn config_read(&mut self, path: &[&str]) -> Result<Option<Declared>, EvalError> {
        let p = str_path(path);
        self.config_read_path(&p)
    }

    /// [`Eval::config_read`] for a path already made of shared segments (no allocation).
    pub fn config_read_path(&mut self, p: &[Rc<str>]) -> Result<Option<Declared>, EvalError> {
        let kind = self.kind_at(p);
        let is_set = match kind {
            Kind::Leaf(_) => false,
            Kind::Generic => match self.generic_is_set(p)? {
                None => return Ok(None),
                Some(b) => b,
            },
            _ => true,
        };
        if !is_set {
            let ty = if let Kind::Leaf(t) = kind { t } else { LeafTy::Scalar };
            let Some((v, span)) = self.merge_leaf(p, ty)? else { return Ok(None) };
            let value = self.to_json(&v, span.unwrap_or(dummy_span()))?;
            return Ok(Some(Declared { value, span }));
        }
        let defs = self.defs_at(p)?;
        if defs.is_empty() {
            return Ok(None);
        }
        let span = defs.iter().find_map(|d| d.span);
        let mut obj = serde_json::Map::new();
        for k in self.config_keys(p)? {
            let mut child = p.to_vec();
            child.push(k.clone());
            if let Some(d) = self.config_read_path(&child)? {
                match d.value {
                    Ok(j) => {
                        obj.insert(k.to_string(), j);
                    }
                    Err(u) => return Ok(Some(Declared { value: Err(u), span: d.span })),
                }
            }
        }
        Ok(Some(Declared { value: Ok(serde_json::Value::Object(obj)), span }))
    }

    /// The binding of the first definition of a config path (for locating a service's name).
    pub fn config_span(&mut self, path: &[&str]) -> Result<Option<Span>, EvalError> {
        let p = str_path(path);
        Ok(self.defs_at(&p)?.iter().find_map(|d| d.span))
    }

    /// [`Eval::config_span`] for a path of shared segments.
    pub fn config_span_path(&mut self, p: &[Rc<str>]) -> Result<Option<Span>, EvalError> {
        Ok(self.defs_at(p)?.iter().find_map(|d| d.span))
    }

    /// Every binding that defines a config path (for locating each attribute a service sets).
    pub fn config_def_spans(&mut self, path: &[&str]) -> Result<Vec<Span>, EvalError> {
        let p = str_path(path);
        Ok(self.defs_at(&p)?.iter().filter_map(|d| d.span).collect())
    }
}

impl Eval {
    /// The names under an `attrsOf` config path (`services.tsnsrv.services`), each with the
    /// condition it exists under, and every definition whose names cannot be known: an unknown
    /// value, a set that may hold more than it lists, or a definition that fails to evaluate.
    pub fn config_keys_full(&mut self, path: &[Rc<str>]) -> Result<Keys, EvalError> {
        let mut keys = Keys::default();
        let defs = self.discharged_at(path)?.to_vec();
        let failed: Vec<(Path_, EvalError)> = self.modules_mut().failed.clone();
        for (p, e) in failed {
            if path.starts_with(&p) {
                keys.unreadable.push(Unreadable {
                    reason: format!("a definition cannot be evaluated: {}", e.message),
                    span: e.span,
                });
            }
        }
        let mut names = BTreeSet::new();
        for d in &defs {
            let v = match self.force(&d.value) {
                Ok(v) => v,
                Err(e) => {
                    keys.unreadable.push(Unreadable {
                        reason: format!("a definition cannot be evaluated: {}", e.message),
                        span: e.span.or(d.span),
                    });
                    continue;
                }
            };
            match &v {
                Value::Unknown(u) => keys
                    .unreadable
                    .push(Unreadable { reason: u.describe(), span: d.span.or(u.span) }),
                Value::Attrs(m) => {
                    if let Some(rest) = m.get(REST_KEY)
                        && let Some(Value::Unknown(u)) = rest.value.peek()
                    {
                        keys.unreadable.push(Unreadable {
                            reason: format!(
                                "it is merged (`//`) with what cannot be read: {}",
                                u.describe()
                            ),
                            span: d.span.or(u.span),
                        });
                    }
                    names.extend(m.keys().filter(|k| &***k != REST_KEY).cloned());
                }
                Value::Config(_) => {
                    let m = self.attrs_of(&v, d.span.unwrap_or(dummy_span()))?;
                    names.extend(m.keys().cloned());
                }
                _ => {}
            }
        }
        for k in names {
            let mut child = path.to_vec();
            child.push(k.clone());
            let child_defs = match self.discharged_at(&child) {
                Ok(d) => d,
                Err(e) => {
                    keys.unreadable.push(Unreadable {
                        reason: format!("`{k}` cannot be evaluated: {}", e.message),
                        span: e.span,
                    });
                    continue;
                }
            };
            if child_defs.is_empty() {
                continue;
            }
            let certain = child_defs.iter().any(|d| d.unknown_cond.is_none());
            let cond = if certain { None } else { child_defs[0].unknown_cond.clone() };
            keys.names.push((k, cond));
        }
        Ok(keys)
    }

    /// Conditions to take as true while reading values (a conditional service's own), until
    /// replaced.
    pub fn assume_conditions(&mut self, conds: Vec<Rc<Unknown>>) {
        self.modules_mut().assumed = conds;
    }

    /// Every condition a config path's definitions exist under (for a conditional service: the
    /// ones to assume while reading its values).
    pub fn conditions_at(&mut self, path: &[Rc<str>]) -> Result<Vec<Rc<Unknown>>, EvalError> {
        Ok(self.discharged_at(path)?.iter().filter_map(|d| d.unknown_cond.clone()).collect())
    }
}

/// Why a path no module read declares or defines is unknown: nixpkgs' default where nixpkgs
/// declares options, else whatever module not read declares it.
fn undeclared_reason(path: &[Rc<str>]) -> String {
    if path.first().is_some_and(|p| super::decls::NIXPKGS_NAMESPACES.contains(&&**p)) {
        "is not set in the files read; its value is the default of the NixOS option that declares it (nixpkgs)".into()
    } else {
        "is not declared by any module read; a module not read (a flake input's) may declare and set it".into()
    }
}

/// Paths under `services.tsnsrv`, which tailshift's own table declares.
fn is_tsnsrv(path: &[Rc<str>]) -> bool {
    path.len() >= 2 && &*path[0] == "services" && &*path[1] == "tsnsrv"
}

/// What `config.<path>` is when no file defines it.
fn option_default(path: &[Rc<str>]) -> Value {
    let p: Vec<&str> = path.iter().map(|s| &**s).collect();
    let known = |v: Value| v;
    match p.as_slice() {
        ["services", "tsnsrv", "enable"] => known(Value::Bool(false)),
        ["services", "tsnsrv", "services", _, f] | ["services", "tsnsrv", "defaults", f] => match *f {
            "funnel" | "plaintext" | "insecureHTTPS" | "suppressWhois" | "suppressTailnetDialer"
            | "tsnetVerbose" | "upstreamAllowInsecureCiphers" | "authInsecureHTTPS"
            | "authBypassForTailnet" => Value::Bool(false),
            "stripPrefix" => Value::Bool(true),
            "upstreamUnixAddr" | "whoisTimeout" | "readHeaderTimeout" | "urlParts" => Value::Null,
            "prefixes" | "extraArgs" => Value::List(Rc::new(Vec::new())),
            "upstreamHeaders" | "authCopyHeaders" => Value::Attrs(Rc::new(AttrMap::new())),
            "authPath" => Value::string("/api/authz/forward-auth"),
            _ => Value::Unknown(Rc::new(Unknown {
                reason: "is not set in the files read; its default comes from services.tsnsrv.defaults or the tsnsrv module".into(),
                span: None,
                what: Some(format!("config.{}", dotted(path))),
            })),
        },
        _ => Value::Unknown(Rc::new(Unknown {
            reason: "is not set in the files read; its default comes from the module that declares it".into(),
            span: None,
            what: Some(format!("config.{}", dotted(path))),
        })),
    }
}
