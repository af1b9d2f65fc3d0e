//! Evaluation of one expression: the dispatch over expression kinds, variables and scopes
//! (`let`, `with`), conditionals and assertions.
//!
//! The dispatch stays one short `match` that hands each kind to the phase that evaluates it
//! (attribute sets, application, operators, strings and paths live in modules of their own).

use crate::nix::error::{ErrorKind, EvalError, type_err};
use crate::nix::syntax::*;
use crate::nix::value::*;
use crate::source::Span;
use std::rc::Rc;

impl Eval {
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

    /// One expression, by kind (depth and steps are counted by [`Eval::eval`]).
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
                self.eval_select(e, path, default.as_ref(), env, span)
            }
            ExprKind::HasAttr { expr: e, path } => self.eval_has_attr(e, path, env, span),
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
            ExprKind::If { cond, then, else_ } => self.eval_if(cond, then, else_, env),
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

    /// A variable: lexical scopes first, then `with` namespaces (innermost first), then globals.
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

    /// `if`: an unknown condition gives the union of two set branches (`conditional_sets`),
    /// else an unknown value.
    fn eval_if(
        &mut self,
        cond: &ExprRef,
        then: &ExprRef,
        else_: &ExprRef,
        env: &Env,
    ) -> EvalResult {
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
}
