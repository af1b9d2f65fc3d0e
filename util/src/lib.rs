//! Small helpers that every tailshift crate may use, each defined once: the atomic file writer
//! ([`write_atomic`]), line and column of a byte offset ([`LineIndex`], [`line_col`]), a TOML
//! error with its position ([`TomlError`]) and a time read and written as RFC 3339
//! ([`Timestamp`]). This crate depends on nothing of ours.

mod atomic;
pub mod testing;
mod text;
mod time;
mod toml_error;

pub use atomic::{FileMode, write_atomic, write_atomic_with};
pub use text::{LineIndex, line_col};
pub use time::{Timestamp, TimestampError};
pub use toml_error::{TomlError, parse_toml};
