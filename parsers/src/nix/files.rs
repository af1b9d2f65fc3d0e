//! How the evaluator sees the file system: Nix sources read with bounds, paths normalised
//! lexically as Nix does, and which files of a flake's git work tree Nix can see.
//!
//! Depends on nothing else of the evaluator, so values (which hold a [`GitView`]), the builtins
//! and the module system all read files the same way.

use std::path::{Component, Path, PathBuf};

/// Largest Nix file the evaluator reads.
pub const MAX_SOURCE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads a Nix source file: regular files only (never a device or a FIFO), bounded in size.
pub fn read_source(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_SOURCE_BYTES {
        return Err(std::io::Error::other(format!("larger than {MAX_SOURCE_BYTES} bytes")));
    }
    std::fs::read_to_string(path)
}

/// Lexically normalises a path (`a/./b/../c` -> `a/c`) without touching the file system.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `p` made absolute against the current directory (as Nix resolves a relative path).
pub(crate) fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

/// The files of a flake's git work tree that Nix sees: the tracked ones.
#[derive(Debug)]
pub struct GitView {
    /// The flake's directory (canonical).
    pub root: PathBuf,
    /// Tracked files below it (canonical).
    pub tracked: std::collections::HashSet<PathBuf>,
}

impl GitView {
    /// The tracked files of `dir` when it is in a git work tree (`None` otherwise, or when git
    /// cannot tell: then every file is visible, as to `path:` flakes).
    pub fn of(dir: &Path) -> Option<GitView> {
        let root = dir.canonicalize().ok()?;
        let out = std::process::Command::new("git")
            .args(["ls-files", "-z", "--cached"])
            .current_dir(&root)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let tracked = out
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| root.join(String::from_utf8_lossy(p).as_ref()))
            .collect();
        Some(GitView { root, tracked })
    }

    /// Whether Nix would not see the directory `path`: below the flake, and holding no tracked
    /// file.
    pub fn hides_dir(&self, path: &Path) -> bool {
        let real = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        real.starts_with(&self.root)
            && real.is_dir()
            && !self.tracked.iter().any(|t| t.starts_with(&real))
    }

    /// Whether Nix would not see `path`: below the flake, and not tracked.
    pub fn hides(&self, path: &Path) -> bool {
        let real = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        real.starts_with(&self.root) && real.is_file() && !self.tracked.contains(&real)
    }
}
