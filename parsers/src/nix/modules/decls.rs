//! Option declarations of the modules read, as nixpkgs' `lib/modules.nix` evaluates them:
//! `options.<path> = mkOption { default; type; apply; }` in any module, nested namespaces, and
//! the options of submodules (`types.submodule`, `attrsOf (submodule ...)`), whose `name` is the
//! element's attribute name.
//!
//! A declaration decides how a config path merges ([`Kind`]) and gives it a default, which is a
//! definition at `mkOptionDefault` priority (1500), so any definition of the files wins over it.
//! A submodule's own `config` part defines its element like any module. Options nixpkgs itself
//! declares are not here: they stay unknown, as before.

use crate::nix::error::{ErrorKind, EvalError};
use crate::nix::modules::kinds::{Def, Kind, LeafTy};
use crate::nix::value::*;
use crate::source::Span;
use std::rc::Rc;

/// Priority of an option's default (nixpkgs `mkOptionDefault`).
const DEFAULT_PRIO: i64 = 1500;

/// One declared option.
#[derive(Debug)]
pub struct OptDecl {
    /// `default`, when given.
    pub default: Option<Thunk>,
    /// `type`, forced (an option-type set from tailshift's `lib.types`, or something unknown).
    pub ty: Option<Value>,
    /// `apply`, when given: the value read is `apply merged`.
    pub apply: Option<Thunk>,
    /// The `name = mkOption { ... };` binding.
    pub span: Option<Span>,
}

/// What the declarations say about a config path.
#[derive(Debug, Clone)]
pub enum DeclState {
    /// Not declared by the modules read.
    Nothing,
    /// Inside a namespace of declarations (the sets of `options` to look into next), with the
    /// definitions a submodule's `config` part makes here.
    Sets(Rc<Vec<Thunk>>, Rc<Vec<Def>>),
    /// Exactly a declared option.
    Option(Rc<OptDecl>),
    /// A value of this type inside an option (an `attrsOf` element, say).
    Elem(Value),
}

fn type_name(ev: &mut Eval, ty: &Value) -> Option<Rc<str>> {
    let Value::Attrs(m) = ty else { return None };
    let t = m.get("name")?.value.clone();
    match ev.force(&t) {
        Ok(Value::Str(s)) => Some(s),
        _ => None,
    }
}

fn type_field(ev: &mut Eval, ty: &Value, field: &str) -> Option<Value> {
    let Value::Attrs(m) = ty else { return None };
    let t = m.get(field)?.value.clone();
    ev.force(&t).ok()
}

fn is_option(ev: &mut Eval, v: &Value) -> bool {
    let Value::Attrs(m) = v else { return false };
    match m.get("_type").map(|e| e.value.clone()) {
        Some(t) => matches!(ev.force(&t), Ok(Value::Str(s)) if &*s == "option"),
        None => false,
    }
}

impl Eval {
    /// How a type merges.
    pub(crate) fn kind_of_type(&mut self, ty: &Value) -> Kind {
        let Some(name) = type_name(self, ty) else { return Kind::Generic };
        match &*name {
            "submodule" => Kind::Submodule,
            "attrsOf" => {
                let elem = type_field(self, ty, "elemType").unwrap_or(Value::Null);
                match self.kind_of_type(&elem) {
                    Kind::Submodule => Kind::AttrsOf,
                    Kind::Leaf(_) => Kind::Leaf(LeafTy::AttrsOfStr),
                    _ => Kind::Generic,
                }
            }
            "listOf" => Kind::Leaf(LeafTy::List),
            "nullOr" | "uniq" => {
                let elem = type_field(self, ty, "elemType").unwrap_or(Value::Null);
                self.kind_of_type(&elem)
            }
            "attrs" | "anything" | "unspecified" | "raw" | "deferredModule" | "functionTo"
            | "either" | "oneOf" => Kind::Generic,
            _ => Kind::Leaf(LeafTy::Scalar),
        }
    }

    /// What the declarations say about `path` (memoised).
    pub(crate) fn decl_state(&mut self, path: &[Rc<str>]) -> DeclState {
        if let Some(s) = self.decl_memo().get(path) {
            return s.clone();
        }
        let state = if path.is_empty() {
            let sets = self.module_option_sets();
            DeclState::Sets(Rc::new(sets), Rc::new(Vec::new()))
        } else {
            let (parent, key) = path.split_at(path.len() - 1);
            let parent_state = self.decl_state(parent);
            self.decl_step(parent_state, &key[0], path).unwrap_or(DeclState::Nothing)
        };
        self.decl_memo().insert(path.to_vec(), state.clone());
        state
    }

    fn decl_step(
        &mut self,
        parent: DeclState,
        key: &Rc<str>,
        path: &[Rc<str>],
    ) -> Result<DeclState, EvalError> {
        match parent {
            DeclState::Nothing => Ok(DeclState::Nothing),
            DeclState::Sets(sets, _) => {
                let mut next = Vec::new();
                for s in sets.iter() {
                    let v = self.force(s)?;
                    let Value::Attrs(m) = &v else { continue };
                    let Some(e) = m.get(key) else { continue };
                    let child = self.force(&e.value.clone())?;
                    if is_option(self, &child) {
                        return Ok(DeclState::Option(Rc::new(self.opt_decl(&child, e.span)?)));
                    }
                    if let Value::Attrs(_) = child {
                        next.push(e.value.clone());
                    }
                }
                if next.is_empty() {
                    Ok(DeclState::Nothing)
                } else {
                    Ok(DeclState::Sets(Rc::new(next), Rc::new(Vec::new())))
                }
            }
            DeclState::Option(o) => match &o.ty {
                Some(ty) => self.type_step(ty.clone(), key, path),
                None => Ok(DeclState::Nothing),
            },
            DeclState::Elem(ty) => self.type_step(ty, key, path),
        }
    }

    /// One path segment into a value of type `ty` (the segment is `path`'s last).
    fn type_step(
        &mut self,
        ty: Value,
        key: &Rc<str>,
        path: &[Rc<str>],
    ) -> Result<DeclState, EvalError> {
        let Some(name) = type_name(self, &ty) else { return Ok(DeclState::Nothing) };
        match &*name {
            "attrsOf" => Ok(match type_field(self, &ty, "elemType") {
                Some(elem) => self.enter_type(elem, path),
                None => DeclState::Nothing,
            }),
            "nullOr" | "uniq" => match type_field(self, &ty, "elemType") {
                Some(elem) => self.type_step(elem, key, path),
                None => Ok(DeclState::Nothing),
            },
            "submodule" => {
                let at = &path[..path.len() - 1];
                let (sets, _) = self.submodule_parts(&ty, at)?;
                self.decl_step(DeclState::Sets(Rc::new(sets), Rc::new(Vec::new())), key, path)
            }
            _ => Ok(DeclState::Nothing),
        }
    }

    /// The state of a path holding a value of type `ty`: a submodule's options (and its own
    /// definitions) are entered at once.
    fn enter_type(&mut self, ty: Value, path: &[Rc<str>]) -> DeclState {
        match type_name(self, &ty).as_deref() {
            Some("submodule") => match self.submodule_parts(&ty, path) {
                Ok((sets, defs)) => DeclState::Sets(Rc::new(sets), Rc::new(defs)),
                Err(_) => DeclState::Elem(ty),
            },
            _ => DeclState::Elem(ty),
        }
    }

    /// A submodule's option sets and the definitions of its `config` parts, for the value at
    /// `path` (its `name` is the path's last segment).
    fn submodule_parts(
        &mut self,
        ty: &Value,
        path: &[Rc<str>],
    ) -> Result<(Vec<Thunk>, Vec<Def>), EvalError> {
        let modules = match type_field(self, ty, "modules") {
            Some(Value::List(l)) => l,
            _ => return Ok((Vec::new(), Vec::new())),
        };
        let name: Rc<str> = path.last().cloned().unwrap_or_else(|| "".into());
        let mut sets = Vec::new();
        let mut defs = Vec::new();
        for t in modules.iter() {
            let mut m = self.force(t)?;
            if let Value::Path(p) = &m {
                m = self.eval_file(&p.clone())?;
            }
            if let Value::Lambda(_) | Value::PrimOp(_) = m {
                let extra = [
                    ("name", Value::Str(name.clone())),
                    ("config", Value::Config(Rc::new(path.to_vec()))),
                ];
                let args = self.module_args(&m, &extra)?;
                m = self.apply(m, Thunk::value(args), dummy_span())?;
            }
            let Value::Attrs(set) = &m else { continue };
            let has_parts = set.contains_key("options") || set.contains_key("config");
            if let Some(o) = set.get("options") {
                sets.push(o.value.clone());
            }
            let config = if has_parts {
                set.get("config").map(|e| (e.value.clone(), e.span))
            } else {
                let mut rest = (**set).clone();
                for k in ["imports", "_file", "key", "freeformType", "meta", "_class"] {
                    rest.remove(k);
                }
                Some((Thunk::value(Value::Attrs(Rc::new(rest))), None))
            };
            if let Some((value, span)) = config {
                defs.push(Def {
                    value,
                    conds: Vec::new(),
                    prio: None,
                    order: 1000,
                    span,
                    module: usize::MAX,
                    unknown_cond: None,
                });
            }
        }
        Ok((sets, defs))
    }

    fn opt_decl(&mut self, v: &Value, span: Option<Span>) -> Result<OptDecl, EvalError> {
        let Value::Attrs(m) = v else {
            return Err(EvalError::new(ErrorKind::Type, "an option is not a set", span));
        };
        let ty = match m.get("type") {
            Some(e) => Some(self.force(&e.value.clone())?),
            None => None,
        };
        Ok(OptDecl {
            default: m.get("default").map(|e| e.value.clone()),
            ty,
            apply: m.get("apply").map(|e| e.value.clone()),
            span: m.get("default").and_then(|e| e.span).or(span),
        })
    }

    /// The kind a declaration gives `path`, `None` when nothing read declares it.
    pub(crate) fn declared_kind(&mut self, path: &[Rc<str>]) -> Option<Kind> {
        match self.decl_state(path) {
            DeclState::Nothing => None,
            DeclState::Sets(..) => Some(Kind::Namespace),
            DeclState::Option(o) => Some(match &o.ty {
                Some(ty) => self.kind_of_type(&ty.clone()),
                None => Kind::Generic,
            }),
            DeclState::Elem(ty) => Some(self.kind_of_type(&ty)),
        }
    }

    /// Definitions the declarations make at `path`: an option's default (at `mkOptionDefault`
    /// priority) and a submodule's own `config` part.
    pub(crate) fn declared_defs(&mut self, path: &[Rc<str>]) -> Vec<Def> {
        match self.decl_state(path) {
            DeclState::Option(o) => {
                let mut out = Vec::new();
                if let Some(d) = &o.default {
                    out.push(Def {
                        value: d.clone(),
                        conds: Vec::new(),
                        prio: Some(DEFAULT_PRIO),
                        order: 1000,
                        span: o.span,
                        module: usize::MAX,
                        unknown_cond: None,
                    });
                }
                // A submodule option's own modules define it too.
                if let Some(ty) = &o.ty
                    && type_name(self, ty).as_deref() == Some("submodule")
                    && let Ok((_, defs)) = self.submodule_parts(&ty.clone(), path)
                {
                    out.extend(defs);
                }
                out
            }
            DeclState::Sets(_, defs) => defs.to_vec(),
            _ => Vec::new(),
        }
    }

    /// The declaration of the option at `path`, if the files declare one.
    pub(crate) fn declared_option(&mut self, path: &[Rc<str>]) -> Option<Rc<OptDecl>> {
        match self.decl_state(path) {
            DeclState::Option(o) => Some(o),
            _ => None,
        }
    }
}

/// Top-level namespaces where nixpkgs declares options: under them, `options ? x` for an `x`
/// the files do not declare cannot be answered.
pub(crate) const NIXPKGS_NAMESPACES: &[&str] = &[
    "services",
    "networking",
    "systemd",
    "boot",
    "environment",
    "users",
    "programs",
    "security",
    "hardware",
    "virtualisation",
    "nix",
    "nixpkgs",
    "system",
    "fileSystems",
    "swapDevices",
    "i18n",
    "time",
    "console",
    "fonts",
    "xdg",
    "documentation",
    "power",
    "powerManagement",
    "sound",
    "location",
    "zramSwap",
    "containers",
    "assertions",
    "warnings",
    "meta",
    "lib",
];

impl Eval {
    /// The `options` module argument at `path`: what the files declare, each option with
    /// `isDefined` and `value`; a name they do not declare where nixpkgs or a module not read
    /// might is unknown (`options ? disko`).
    pub(crate) fn options_node(&mut self, path: &[Rc<str>]) -> Result<Value, EvalError> {
        match self.decl_state(path) {
            DeclState::Option(o) => {
                let p = path.to_vec();
                let mut m = AttrMap::new();
                m.insert("_type".into(), entry(Value::string("option")));
                let p2 = p.clone();
                m.insert(
                    "value".into(),
                    AttrEntry {
                        value: Thunk::native(move |ev| {
                            let span = dummy_span();
                            let t =
                                ev.config_select(&p2[..p2.len() - 1], &p2[p2.len() - 1], span)?;
                            ev.force(&t)
                        }),
                        span: o.span,
                        cond: None,
                    },
                );
                m.insert(
                    "isDefined".into(),
                    AttrEntry {
                        value: Thunk::native(move |ev| ev.option_is_defined(&p)),
                        span: o.span,
                        cond: None,
                    },
                );
                if let Some(d) = &o.default {
                    m.insert(
                        "default".into(),
                        AttrEntry { value: d.clone(), span: o.span, cond: None },
                    );
                }
                if let Some(t) = &o.ty {
                    m.insert("type".into(), entry(t.clone()));
                }
                Ok(Value::Attrs(Rc::new(m)))
            }
            DeclState::Sets(sets, _) => {
                let mut m = AttrMap::new();
                for s in sets.iter() {
                    if let Value::Attrs(set) = self.force(s)? {
                        for k in set.keys() {
                            let mut child = path.to_vec();
                            child.push(k.clone());
                            m.entry(k.clone()).or_insert_with(|| AttrEntry {
                                value: Thunk::native(move |ev| ev.options_node(&child)),
                                span: None,
                                cond: None,
                            });
                        }
                    }
                }
                if path.is_empty() || NIXPKGS_NAMESPACES.contains(&&*path[0]) {
                    m.insert(REST_KEY.into(), entry(self.options_not_read(path)));
                }
                self.add_tsnsrv_options(path, &mut m);
                Ok(Value::Attrs(Rc::new(m)))
            }
            DeclState::Nothing if path.is_empty() || NIXPKGS_NAMESPACES.contains(&&*path[0]) => {
                let mut m = AttrMap::new();
                m.insert(REST_KEY.into(), entry(self.options_not_read(path)));
                self.add_tsnsrv_options(path, &mut m);
                Ok(Value::Attrs(Rc::new(m)))
            }
            _ => Ok(self.options_not_read(path)),
        }
    }

    /// tsnsrv's options, which tailshift declares itself (the module is there wherever
    /// `services.tsnsrv` is used): `options ? services.tsnsrv` holds.
    fn add_tsnsrv_options(&mut self, path: &[Rc<str>], m: &mut AttrMap) {
        let option = || {
            let mut o = AttrMap::new();
            o.insert("_type".into(), entry(Value::string("option")));
            entry(Value::Attrs(Rc::new(o)))
        };
        match path {
            [] => {
                m.entry("services".into()).or_insert_with(|| AttrEntry {
                    value: Thunk::native(|ev| ev.options_node(&["services".into()])),
                    span: None,
                    cond: None,
                });
            }
            [s] if &**s == "services" => {
                let mut t = AttrMap::new();
                for k in ["enable", "defaults", "services", "separateProcesses", "prometheusAddr"] {
                    t.insert(k.into(), option());
                }
                m.insert("tsnsrv".into(), entry(Value::Attrs(Rc::new(t))));
            }
            _ => {}
        }
    }

    fn options_not_read(&mut self, path: &[Rc<str>]) -> Value {
        let what = if path.is_empty() {
            "options".to_string()
        } else {
            format!("options.{}", path.iter().map(|s| &**s).collect::<Vec<_>>().join("."))
        };
        Value::Unknown(Rc::new(Unknown {
            reason: "holds the options nixpkgs and modules not read declare, which tailshift does not know".into(),
            span: None,
            what: Some(what),
        }))
    }

    fn option_is_defined(&mut self, path: &[Rc<str>]) -> EvalResult {
        // Defined by a module, or by its default (what `isDefined` means in nixpkgs).
        Ok(Value::Bool(!self.defs_at(path)?.is_empty()))
    }
}
