//! Merging the definitions of a leaf option into one value: lists concatenate (in `mkOrder`
//! order), `attrsOf` of strings merge by key, anything else must agree; a definition under a
//! condition that cannot be known makes the value unknown.

use crate::nix::error::{ErrorKind, EvalError};
use crate::nix::modules::kinds::*;
use crate::nix::value::*;
use crate::source::Span;
use std::rc::Rc;

impl Eval {
    /// Merges the definitions of a leaf option. `None` when no module defines it.
    pub(super) fn merge_leaf(
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
}
