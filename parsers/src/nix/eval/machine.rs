//! The evaluator's machinery: making an evaluator (its global scope, with the builtins),
//! forcing thunks, and the step and depth budgets that bound every run.
//!
//! Separate from the expression dispatch because builtins and the module system force values
//! and spend budget too, without evaluating expressions.

use crate::nix::builtins::global_env;
use crate::nix::error::{ErrorKind, EvalError};
use crate::nix::value::*;
use crate::source::{SourceMap, Span};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

impl Eval {
    /// A fresh evaluator sharing `sources`.
    pub fn new(sources: SourceMap) -> Self {
        let mut ev = Eval {
            sources,
            diagnostics: Vec::new(),
            globals: Env::root(),
            imports: HashMap::new(),
            depth: 0,
            fuel: DEFAULT_FUEL,
            lib: None,
            modules: None,
            string_indexes: HashMap::new(),
            registry: EnvRegistry::default(),
            builtins: Thunk::value(Value::Null),
            git: None,
        };
        let (globals, builtins) = global_env(ev.registry.clone());
        ev.globals = globals;
        ev.builtins = builtins;
        ev
    }

    /// Limits the number of evaluation steps (fuzzing uses a small budget).
    pub fn set_fuel(&mut self, fuel: u64) {
        self.fuel = fuel;
    }

    /// A hash set of a list's elements when every element is a string, built once per list.
    /// `None` when an element is not a string or cannot be forced (then `elem` searches the
    /// list itself, forcing only what it reaches, as Nix does).
    pub(crate) fn string_index(&mut self, list: &Rc<Vec<Thunk>>) -> Option<Rc<HashSet<Rc<str>>>> {
        let key = Rc::as_ptr(list) as usize;
        if let Some((_, set)) = self.string_indexes.get(&key) {
            return set.clone();
        }
        let mut set = HashSet::with_capacity(list.len());
        let mut ok = true;
        for t in list.iter() {
            match self.force(t) {
                Ok(Value::Str(s)) => {
                    set.insert(s);
                }
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        let set = ok.then(|| Rc::new(set));
        self.string_indexes.insert(key, (list.clone(), set.clone()));
        set
    }

    /// Forces a thunk to weak head normal form.
    pub fn force(&mut self, t: &Thunk) -> EvalResult {
        let state = {
            let mut cell = t.0.borrow_mut();
            match &*cell {
                ThunkState::Done(v) => return Ok(v.clone()),
                ThunkState::Running => {
                    return Err(EvalError::new(
                        ErrorKind::InfiniteRecursion,
                        "infinite recursion encountered",
                        None,
                    ));
                }
                _ => std::mem::replace(&mut *cell, ThunkState::Running),
            }
        };
        let result = match state {
            ThunkState::Pending(expr, env) => {
                let r = self.eval(&expr, &env);
                if r.is_err() {
                    *t.0.borrow_mut() = ThunkState::Pending(expr, env);
                }
                r
            }
            ThunkState::Native(f) => {
                let r = f(self);
                if let Err(e) = &r {
                    let e = e.clone();
                    *t.0.borrow_mut() = ThunkState::Native(Box::new(move |_| Err(e)));
                }
                r
            }
            _ => unreachable!("checked above"),
        };
        if let Ok(v) = &result {
            *t.0.borrow_mut() = ThunkState::Done(v.clone());
        }
        result
    }

    /// Charges work proportional to a size (list elements, string bytes) against the step
    /// budget, so doubling strings or `genList` of a huge count cannot exhaust memory.
    pub fn charge(&mut self, units: usize, span: Span) -> Result<(), EvalError> {
        let units = units as u64;
        if self.fuel < units {
            self.fuel = 0;
            return Err(EvalError::new(
                ErrorKind::Budget,
                "evaluation step budget exhausted",
                Some(span),
            ));
        }
        self.fuel -= units;
        Ok(())
    }

    /// Enters a recursive walk over a value (equality, JSON): guards the stack.
    pub(super) fn enter(&mut self, span: Span) -> Result<(), EvalError> {
        if self.depth >= MAX_EVAL_DEPTH {
            return Err(EvalError::new(
                ErrorKind::Budget,
                "value nested too deeply (a value that contains itself?)",
                Some(span),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    pub(super) fn step(&mut self, span: Span) -> Result<(), EvalError> {
        if self.fuel == 0 {
            return Err(EvalError::new(
                ErrorKind::Budget,
                "evaluation step budget exhausted",
                Some(span),
            ));
        }
        self.fuel -= 1;
        Ok(())
    }
}
