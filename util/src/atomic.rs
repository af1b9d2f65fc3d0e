//! Whole-file replacement that never leaves a half-written file: a temporary file beside the
//! target, written with its final permissions and fsync'd, renamed over the target, then the
//! directory fsync'd. A crash before the rename leaves the old file whole; a failure removes the
//! temporary file.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The permissions the written file gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileMode {
    /// Readable by its owner only (0600): files that can hold secrets (plans, `routes.json`,
    /// keys). The temporary file is created 0600, so the content is never readable by others,
    /// not even for a moment.
    Private,
    /// The replaced file's permissions, or the given mode for a new file: files other
    /// programs read (`/etc/hosts`, a records file a DNS server serves).
    KeepOr(u32),
}

/// Replaces `path` with `bytes` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: FileMode) -> std::io::Result<()> {
    write_atomic_with(path, bytes, mode, || Ok(()))
}

/// [`write_atomic`], with `before_rename` run after the temporary file is durable and before it
/// replaces the target (tests stop there to stand for a crash).
pub fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    mode: FileMode,
    before_rename: impl FnOnce() -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tailshift-{}.tmp", std::process::id()));
    let mode = match mode {
        FileMode::Private => 0o600,
        FileMode::KeepOr(new) => {
            std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(new)
        }
    };
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        // Set explicitly: `mode` at creation is filtered by the umask.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        drop(f);
        before_rename()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_are_0600_and_replaced_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("plan.json");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&p, b"new", FileMode::Private).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(mode_of(&p), 0o600);
    }

    #[test]
    fn kept_mode_survives_and_new_files_get_the_given_one() {
        let d = tempfile::tempdir().unwrap();
        let old = d.path().join("hosts");
        std::fs::write(&old, "old").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&old, b"new", FileMode::KeepOr(0o644)).unwrap();
        assert_eq!(mode_of(&old), 0o640);
        let new = d.path().join("records");
        write_atomic(&new, b"x", FileMode::KeepOr(0o644)).unwrap();
        assert_eq!(mode_of(&new), 0o644);
    }

    #[test]
    fn a_crash_before_the_rename_leaves_the_old_file_and_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, "old").unwrap();
        let r = write_atomic_with(&p, b"half", FileMode::Private, || {
            Err(std::io::Error::other("crash"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
