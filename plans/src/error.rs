//! Errors of planning: bad policy, impossible constraints.

/// Why a plan cannot be made (or checked).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// `migrate.toml` is malformed or refers to something wrong.
    #[error("{file}:{line}:{column}: {message}")]
    Policy {
        /// The policy file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The policy names a service the inventory does not have.
    #[error("{key}: no service {name:?} in the inventory{hint}")]
    UnknownService {
        /// Which policy key (`pins`, `dependencies`, ...).
        key: String,
        /// The name as written.
        name: String,
        /// A suggestion.
        hint: String,
    },
    /// Dependencies form a cycle.
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// A pin puts a service before something it depends on.
    #[error(
        "pins.{service} = {wave} puts {service} before its dependency {dependency} (wave {dependency_wave})"
    )]
    PinBeforeDependency {
        /// The pinned service.
        service: String,
        /// Its wave.
        wave: usize,
        /// The dependency.
        dependency: String,
        /// Where the dependency lands.
        dependency_wave: String,
    },
    /// A plan file does not parse.
    #[error("{path}: not a tailshift plan file: {message}")]
    BadPlanFile {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}
