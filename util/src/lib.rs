//! Small helpers that every tailshift crate may use, each defined once: the atomic file writer
//! ([`write_atomic`]), line and column of a byte offset ([`LineIndex`], [`line_col`]), a TOML
//! error with its position ([`TomlError`]), a time read and written as RFC 3339
//! ([`Timestamp`]) and the exit-code table of `migrate` ([`exit::Exit`]); with the `trust`
//! feature, the TLS trust of our clients (`trust::root_store`). This crate depends on nothing
//! of ours.

mod atomic;
pub mod exit;
pub mod testing;
mod text;
mod time;
mod toml_error;
#[cfg(feature = "trust")]
pub mod trust;

pub use atomic::{FileMode, write_atomic, write_atomic_with};
pub use text::{LineIndex, count_of, line_col, plural};
pub use time::{Timestamp, TimestampError};
pub use toml_error::{TomlError, parse_toml};
