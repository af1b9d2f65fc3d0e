//! Which names exist only under a condition that cannot be known, and which definitions hide
//! their names altogether: what tells a service that may not exist from one that certainly
//! does, and an inventory that may miss services from a complete one.

use crate::nix::error::EvalError;
use crate::nix::modules::kinds::Path_;
use crate::nix::value::*;
use crate::source::Span;
use std::collections::BTreeSet;
use std::rc::Rc;

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
