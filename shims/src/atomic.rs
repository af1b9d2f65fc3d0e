//! Files the shims replace (`/etc/hosts`, records files, keep-node units) are written with the
//! one atomic writer (`tailshift_util::write_atomic`), keeping the replaced file's permissions:
//! other programs read them.

use crate::shim::ShimError;
use std::path::Path;
use tailshift_util::FileMode;

fn err(path: &Path, e: impl std::fmt::Display) -> ShimError {
    ShimError::File { path: path.display().to_string(), message: e.to_string() }
}

/// Replaces `path` with `text` atomically. `before_rename` runs after the temporary file is
/// durable and before it replaces the target (tests stop there to stand for a crash).
pub fn write_with(
    path: &Path,
    text: &str,
    before_rename: impl FnOnce() -> std::io::Result<()>,
) -> Result<(), ShimError> {
    tailshift_util::write_atomic_with(path, text.as_bytes(), FileMode::KeepOr(0o644), before_rename)
        .map_err(|e| err(path, e))
}

/// Replaces `path` with `text` atomically.
pub fn write(path: &Path, text: &str) -> Result<(), ShimError> {
    write_with(path, text, || Ok(()))
}

/// Reads a file; an absent one is `None`.
pub fn read(path: &Path) -> Result<Option<String>, ShimError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(path, e)),
    }
}
