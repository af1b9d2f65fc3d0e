//! Operators: the Boolean ones (short-circuiting, unknown-aware), pipes, comparison,
//! arithmetic, `+` on strings and paths, and list concatenation. `//` is the attribute sets'
//! (in `attrs`), `==` the deep walks' (in `deep`).

use crate::nix::error::{ErrorKind, EvalError, type_err};
use crate::nix::files::normalize;
use crate::nix::syntax::*;
use crate::nix::value::*;
use crate::source::Span;
use std::path::Path;
use std::rc::Rc;

impl Eval {
    pub(super) fn eval_binop(
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
            BinOp::Update => self.update(a, b, span),
            _ => {
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
