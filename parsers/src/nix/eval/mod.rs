//! A small lazy evaluator for the Nix subset that NixOS configurations use.
//!
//! Values that depend on something outside the inputs (nixpkgs, secrets, flake inputs) become
//! [`Value::Unknown`](super::value::Value::Unknown) and flow through every operation instead of
//! failing the evaluation.
//!
//! The evaluator is [`Eval`] (defined with the values it computes, in [`super::value`]); each
//! phase of evaluation is a module of its own adding methods to it: `machine` (construction,
//! forcing, budgets), `parse` (text to IR), `expr` (the dispatch over expressions), `attrs`
//! (sets and selection), `apply` (function calls), `ops` (operators), `strings` (strings, paths,
//! coercion), `deep` (equality and JSON over whole values) and `import` (files and `lib`).
//! The phases call one another through those methods; they share no other names, so none of
//! them imports another.

mod apply;
mod attrs;
mod deep;
mod expr;
mod import;
mod machine;
mod ops;
mod parse;
mod strings;

// The names this module has always offered, wherever they are defined now.
pub use super::error::{ErrorKind, EvalError};
pub use super::files::{GitView, MAX_SOURCE_BYTES, normalize, read_source};
pub use super::value::{DEFAULT_FUEL, Eval, EvalResult, MAX_EVAL_DEPTH, article, entry};
pub use deep::nix_float;
pub use import::LIB_NIX;
pub use parse::MAX_SYNTAX_NESTING;
