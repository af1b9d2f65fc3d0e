//! NixOS module merging, for the options tailshift reads.
//!
//! Follows nixpkgs' `lib/modules.nix`: modules are collected through `imports`; definitions
//! are pushed down through namespaces (`mkIf`/`mkMerge`/`mkOverride` wrapped around a set
//! apply to each attribute in it); at an option whose type merges attribute sets
//! (`attrsOf`, `submodule`) properties are discharged and overrides filtered before descending,
//! so `mkForce { ... }` on a whole service replaces the other definitions of that service while
//! `svc.x = mkForce v` only wins for `x`. `config` is lazy: a module may read
//! `config.networking.hostName` while another defines it.
//!
//! Each phase is a module of its own, adding methods to [`Eval`](super::value::Eval): `collect`
//! reads the modules (`imports`, `disabledModules`) and `args` makes their arguments; `decls`
//! reads their option declarations; `kinds` says how each path merges; `definitions` pushes
//! definitions down to a path and discharges their properties (`mkIf`, `mkMerge`,
//! `mkOverride`, `mkOrder`) and priorities; `merge` merges an option's definitions; `config`
//! reads the merged configuration; `conditions` says which names exist only under a condition
//! that cannot be known. Their shared state is `state`'s. The phases call one another through
//! those methods; the names they share (definitions, kinds, the state) are imported one way only.

mod args;
mod collect;
mod conditions;
mod config;
pub mod decls;
mod definitions;
mod kinds;
mod merge;
mod state;

// The names this module has always offered, wherever they are defined now.
pub use conditions::{Keys, Unreadable};
pub use config::Declared;
pub use kinds::{DEFAULT_PRIORITY, Def, Kind, LeafTy, OPTION_DEFAULT_PRIORITY, kind_of};
pub use state::ModuleState;
