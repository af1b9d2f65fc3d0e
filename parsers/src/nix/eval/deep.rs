//! Walks over whole values: deep equality and the conversion to JSON (as `nix-instantiate
//! --eval --strict --json` prints it), with Nix's way of printing floats.
//!
//! Separate because both recurse through a value that may contain itself: every level is
//! counted against the depth budget (`enter`), which ordinary evaluation does not need.

use crate::nix::error::{EvalError, type_err};
use crate::nix::value::*;
use crate::source::Span;
use std::rc::Rc;

impl Eval {
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
