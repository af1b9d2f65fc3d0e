//! Function application: lambdas (with their argument patterns), partly applied builtins, and
//! sets with `__functor`.

use crate::nix::error::{ErrorKind, EvalError, type_err};
use crate::nix::syntax::*;
use crate::nix::value::*;
use crate::source::Span;
use std::rc::Rc;

impl Eval {
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
}
