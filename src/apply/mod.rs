//! The only place that changes the world in order (design section 4): the per-host state
//! directory (`state.json`, the append-only `journal.ndjson`, the lock), and the engine that
//! applies and rolls back waves from a plan file.

pub mod admin_client;
pub mod config;
pub mod confirm;
pub mod engine;
pub mod journal;
pub mod kept_plans;
pub mod lock;
pub mod nix_adapter;
pub mod signals;
pub mod state;

use std::path::PathBuf;

/// The default state directory: `/var/lib/tailshift` as root, the XDG state directory
/// otherwise (design section 6).
pub fn default_state_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/tailshift");
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("tailshift");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/state/tailshift")
}
