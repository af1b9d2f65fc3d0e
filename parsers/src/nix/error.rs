//! What can go wrong while evaluating: the error type every layer of the evaluator returns.
//!
//! Kept apart from the values so that the lowest modules (values, files, builtins) can name
//! errors without depending on the evaluation itself.

use crate::source::Span;

/// What went wrong during evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `throw`: caught by `tryEval`.
    Throw,
    /// A failed `assert`: caught by `tryEval`.
    Assert,
    /// `abort`.
    Abort,
    /// A value of the wrong type.
    Type,
    /// An attribute that is not there.
    MissingAttr,
    /// A variable that is not bound.
    UndefinedVar,
    /// A value that needs itself.
    InfiniteRecursion,
    /// The depth or step budget ran out.
    Budget,
    /// The file does not parse.
    Syntax,
    /// Anything else.
    Other,
}

/// An evaluation error.
#[derive(Debug, Clone)]
pub struct EvalError {
    /// What kind.
    pub kind: ErrorKind,
    /// The message, in Nix's words where possible.
    pub message: String,
    /// Where.
    pub span: Option<Span>,
}

impl EvalError {
    /// A new error.
    pub fn new(kind: ErrorKind, message: impl Into<String>, span: Option<Span>) -> Self {
        EvalError { kind, message: message.into(), span }
    }
}

/// A value of the wrong type at `span`.
pub(crate) fn type_err(msg: impl Into<String>, span: Span) -> EvalError {
    EvalError::new(ErrorKind::Type, msg, Some(span))
}
