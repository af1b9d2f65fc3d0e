//! Whole-file replacement that never leaves a half-written file: a temporary file beside the
//! target, written and fsync'd, given the old file's permissions, renamed over it, then the
//! directory fsync'd. A crash before the rename leaves the old file whole.

use crate::shim::ShimError;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tailshift-{}.tmp", std::process::id()));
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        drop(f);
        before_rename()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok::<(), std::io::Error>(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(path, e));
    }
    Ok(())
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
