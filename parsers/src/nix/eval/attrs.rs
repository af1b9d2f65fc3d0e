//! Attribute sets: building them (`rec`, `inherit`, dynamic names), selecting from them
//! (`.`, `or`, `?`), merging them (`//`), and sets whose names are not all certain (an
//! attribute under an unknown condition, a set that may hold more than it lists).
//!
//! Separate because sets carry most of what tailshift reads, and most of the care for unknowns:
//! which names are certain decides which services exist.

use crate::diagnostic::Diagnostic;
use crate::nix::error::{ErrorKind, EvalError, type_err};
use crate::nix::syntax::*;
use crate::nix::value::*;
use crate::source::Span;
use std::rc::Rc;

impl Eval {
    /// `e.a.b or d`: selects along the path, falling back to `d` where an attribute is missing.
    pub(super) fn eval_select(
        &mut self,
        e: &ExprRef,
        path: &[AttrName],
        default: Option<&ExprRef>,
        env: &Env,
        span: Span,
    ) -> EvalResult {
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

    /// `e ? a.b`: whether the path exists, without evaluating its last attribute; unknown when
    /// an attribute exists only under an unknown condition, or a set may hold more than it lists.
    pub(super) fn eval_has_attr(
        &mut self,
        e: &ExprRef,
        path: &[AttrName],
        env: &Env,
        span: Span,
    ) -> EvalResult {
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

    pub(super) fn binding_thunk(&mut self, b: &Binding, scope: &Env, outer: &Env) -> Thunk {
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

    pub(super) fn eval_attrs(&mut self, def: &Rc<AttrsDef>, env: &Env) -> EvalResult {
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

    /// `a // b`: the right side's attributes replace the left's; an attribute the right side has
    /// only under an unknown condition leaves the left's value in doubt.
    pub(super) fn update(&mut self, a: Value, b: Value, span: Span) -> EvalResult {
        if let Some(v) = self.update_uncertain(&a, &b, span)? {
            return Ok(v);
        }
        propagate!(a);
        propagate!(b);
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
                        AttrEntry { value: Thunk::value(value), span: v.span, cond: None },
                    );
                }
                _ => {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(Value::Attrs(Rc::new(m)))
    }

    /// `if c then A else B` with an unknown `c`, where both branches are sets: their union,
    /// each attribute of only one branch present under the condition (`optionalAttrs c {...}`),
    /// an attribute of both a value that depends on it. `None` when a branch is not a set (or
    /// fails): the whole value is then unknown.
    pub(super) fn conditional_sets(
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
}
