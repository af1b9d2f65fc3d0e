//! Small helpers that every tailshift crate may use, each defined once: the atomic file writer
//! ([`write_atomic`]), line and column of a byte offset ([`LineIndex`], [`line_col`]) and a TOML
//! error with its position ([`TomlError`]). This crate depends on nothing of ours.

mod atomic;
pub mod testing;
mod text;
mod toml_error;

pub use atomic::{FileMode, write_atomic, write_atomic_with};
pub use text::{LineIndex, count_of, line_col, plural};
pub use toml_error::{TomlError, parse_toml};
