//! Static reading of Nix: rnix's lossless tree lowered into a small IR, a lazy evaluator for the
//! subset configurations use, tailshift's own `lib`, and NixOS module merging.

pub mod builtins;
pub mod error;
pub mod eval;
pub mod files;
pub mod lower;
pub mod modules;
pub mod syntax;
pub mod value;

pub use error::{ErrorKind, EvalError};
pub use eval::LIB_NIX;
pub use value::{Eval, EvalResult, Unknown, Value};

/// Stack size for threads that evaluate (deep recursion in debug builds needs room).
pub const EVAL_STACK_BYTES: usize = 512 * 1024 * 1024;

/// Runs `f` on a thread with a stack large enough for [`eval::MAX_EVAL_DEPTH`].
pub fn with_eval_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .name("nix-eval".into())
        .stack_size(EVAL_STACK_BYTES)
        .spawn(f)
        .expect("spawn evaluation thread")
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Evaluates Nix source text strictly and returns it as JSON, as
/// `nix-instantiate --eval --strict --json` prints it. Paths in the text resolve against `dir`.
pub fn eval_to_json(name: &str, text: &str) -> Result<serde_json::Value, String> {
    let mut ev = Eval::new(crate::source::SourceMap::new());
    let v = ev.eval_text(name, text).map_err(|e| e.message)?;
    let span = crate::source::Span { file: crate::source::FileId(0), start: 0, end: 0 };
    match ev.to_json(&v, span).map_err(|e| e.message)? {
        Ok(j) => Ok(j),
        Err(u) => Err(format!("unknown: {}", u.describe())),
    }
}
