//! What the module system keeps in the evaluator: the modules read, the merge caches, the
//! conditions assumed while a conditional service is read, and what could not be read.
//!
//! The evaluator holds it without knowing its type (it is a layer above); this module alone
//! turns it back into a [`ModuleState`].

use crate::nix::error::EvalError;
use crate::nix::modules::decls::DeclState;
use crate::nix::modules::kinds::{Def, Kind, Path_};
use crate::nix::value::*;
use crate::source::Span;
use std::collections::HashSet;
use std::path::PathBuf;
use std::rc::Rc;

/// One module read: its definitions, its declarations and its file.
pub(super) struct ModuleInfo {
    /// Its definitions: its `config`, or the module itself when it has neither `config` nor
    /// `options`.
    pub(super) defs: Thunk,
    /// The module's `options`, when it declares any.
    pub(super) options: Option<Thunk>,
    /// The file it was read from.
    pub(super) file: Option<PathBuf>,
}

/// The modules read and the merge caches.
#[derive(Default)]
pub struct ModuleState {
    pub(super) modules: Vec<ModuleInfo>,
    pub(super) loaded: HashSet<PathBuf>,
    pub(super) defs_memo: rustc_hash::FxHashMap<Path_, Rc<Vec<Def>>>,
    pub(super) discharged_memo: rustc_hash::FxHashMap<Path_, Rc<Vec<Def>>>,
    /// Conditions taken as true while reading a conditional service's values (its presence
    /// carries them instead).
    pub(super) assumed: Vec<Rc<Unknown>>,
    /// Definitions of sets that could not be evaluated, by the path they define (kept so that
    /// a definition lost there is said, not dropped).
    pub(super) failed: Vec<(Path_, EvalError)>,
    /// `specialArgs` of the host (from its flake), passed to every module.
    pub(super) special_args: std::collections::BTreeMap<Rc<str>, Thunk>,
    /// What the option declarations say about each path asked.
    pub(super) decl_memo: rustc_hash::FxHashMap<Path_, DeclState>,
    /// The file whose module is being read (for `ModuleInfo::file`).
    pub(super) reading: Option<PathBuf>,
    /// Imported modules that cannot be read (absent, or not tracked in a flake), with where.
    pub(super) missing: Vec<(String, Option<Span>)>,
    /// Module files `disabledModules` removes.
    pub(super) disabled: HashSet<PathBuf>,
    /// Whether a module read declares `services.tsnsrv.services` (see `tsnsrv_extended`).
    pub(super) tsnsrv_extended: Option<bool>,
    /// The merge kind of each path asked beyond tailshift's own table.
    pub(super) kind_memo: rustc_hash::FxHashMap<Path_, Kind>,
}

impl Eval {
    /// The module system's state, made on first use.
    pub(super) fn modules_mut(&mut self) -> &mut ModuleState {
        self.modules
            .get_or_insert_with(|| Box::new(ModuleState::default()))
            .downcast_mut()
            .expect("the evaluator keeps only the module system's state there")
    }

    /// What the declarations say about each path asked so far.
    pub(crate) fn decl_memo(&mut self) -> &mut rustc_hash::FxHashMap<Path_, DeclState> {
        &mut self.modules_mut().decl_memo
    }

    /// Every module's `options` (the roots of the declarations).
    pub(crate) fn module_option_sets(&mut self) -> Vec<Thunk> {
        self.modules_mut().modules.iter().filter_map(|m| m.options.clone()).collect()
    }

    /// Imported modules that cannot be read: each may declare services.
    pub fn missing_modules(&mut self) -> Vec<(String, Option<Span>)> {
        self.modules_mut().missing.clone()
    }

    /// Every module file read (absolute), roots and imports.
    pub fn loaded_files(&self) -> Vec<PathBuf> {
        self.modules
            .as_ref()
            .and_then(|m| m.downcast_ref::<ModuleState>())
            .map(|m| m.loaded.iter().cloned().collect())
            .unwrap_or_default()
    }
}
