//! The definitions of a config path: the modules' definitions pushed down through namespaces
//! (nixpkgs' `pushDownProperties`), then, at an option or a set of options, their conditions
//! evaluated, their properties unwrapped (`dischargeProperties`) and all but the best priority
//! dropped (`filterOverrides`).
//!
//! Separate from merging: a path's definitions are what both a set's names and a leaf's value
//! are read from, and they are cached per path.

use crate::nix::error::{ErrorKind, EvalError};
use crate::nix::modules::kinds::*;
use crate::nix::value::*;
use std::rc::Rc;

impl Eval {
    /// Expands `mkIf`/`mkMerge`/`mkOverride`/`mkOrder` around a namespace value without
    /// evaluating conditions (nixpkgs `pushDownProperties`).
    pub(super) fn pushdown(&mut self, d: Def, out: &mut Vec<Def>) -> Result<(), EvalError> {
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
    pub(super) fn discharged_at(&mut self, path: &[Rc<str>]) -> Result<Rc<Vec<Def>>, EvalError> {
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
    pub(super) fn generic_is_set(&mut self, path: &[Rc<str>]) -> Result<Option<bool>, EvalError> {
        let mut expanded = Vec::new();
        for d in self.defs_at(path)?.iter() {
            self.pushdown(d.clone(), &mut expanded)?;
        }
        let Some(first) = expanded.first() else { return Ok(None) };
        let v = self.force(&first.value.clone())?;
        Ok(Some(matches!(v, Value::Attrs(_) | Value::Config(_))))
    }
}
