//! The vocabulary of merging: a definition with the properties pushed down to it, the
//! priorities, and how each config path merges ([`Kind`]): tailshift's own table for tsnsrv's
//! options, else what the declarations of the modules read say, else the shape of the
//! definitions.
//!
//! At the bottom of the module system: every other phase speaks of definitions and kinds.

use crate::nix::value::*;
use crate::source::Span;
use std::rc::Rc;

/// Priority of a plain definition (nixpkgs `defaultOverridePriority`).
pub const DEFAULT_PRIORITY: i64 = 100;
/// Priority of an `mkOptionDefault` (used for `--host`).
pub const OPTION_DEFAULT_PRIORITY: i64 = 1500;
/// Priority of an `mkOrder`-less list element.
pub(super) const DEFAULT_ORDER: i64 = 1000;

/// A config path, as the caches key it.
pub(super) type Path_ = Vec<Rc<str>>;

/// One definition of a config path by one module.
#[derive(Clone, Debug)]
pub struct Def {
    /// The defined value (may still carry properties).
    pub value: Thunk,
    /// `mkIf` conditions pushed down from enclosing sets, not yet evaluated.
    pub conds: Vec<Thunk>,
    /// Override priority pushed down from an enclosing set.
    pub prio: Option<i64>,
    /// `mkOrder` priority.
    pub order: i64,
    /// The binding that made this definition.
    pub span: Option<Span>,
    /// Index of the defining module.
    pub module: usize,
    /// Set when a condition on this definition cannot be known.
    pub unknown_cond: Option<Rc<Unknown>>,
}

/// How a config path merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A set of options: definitions are pushed down.
    Namespace,
    /// `attrsOf submodule`: overrides are filtered per element.
    AttrsOf,
    /// A submodule: overrides are filtered on the whole value.
    Submodule,
    /// An option with a value.
    Leaf(LeafTy),
    /// A path tailshift has no declaration for: merged by the shape of its definitions.
    Generic,
}

/// How a leaf option merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafTy {
    /// Definitions must agree.
    Scalar,
    /// `listOf`: definitions concatenate.
    List,
    /// `attrsOf str`: definitions merge by key.
    AttrsOfStr,
}

/// Kinds of the `services.tsnsrv.services.<name>.*` / `defaults.*` options.
fn field_kind(f: &str) -> Kind {
    match f {
        "urlParts" => Kind::Submodule,
        "upstreamHeaders" | "authCopyHeaders" => Kind::Leaf(LeafTy::AttrsOfStr),
        "tags" | "prefixes" | "extraArgs" | "supplementalGroups" => Kind::Leaf(LeafTy::List),
        _ => Kind::Leaf(LeafTy::Scalar),
    }
}

/// The declared shape of the options tailshift reads; everything else is generic.
pub fn kind_of(path: &[Rc<str>]) -> Kind {
    // Nothing tailshift declares is deeper than 6; a stack buffer avoids an allocation per call.
    if path.len() > 6 {
        return Kind::Generic;
    }
    let mut buf = [""; 6];
    for (b, s) in buf.iter_mut().zip(path) {
        *b = s;
    }
    match &buf[..path.len()] {
        [] | ["services"] | ["networking"] | ["services", "tsnsrv"] => Kind::Namespace,
        ["networking", "hostName"] => Kind::Leaf(LeafTy::Scalar),
        ["services", "tsnsrv", "defaults"] => Kind::Submodule,
        ["services", "tsnsrv", "defaults", f] => field_kind(f),
        ["services", "tsnsrv", "defaults", "urlParts", _] => Kind::Leaf(LeafTy::Scalar),
        ["services", "tsnsrv", "services"] => Kind::AttrsOf,
        ["services", "tsnsrv", "services", _] => Kind::Submodule,
        ["services", "tsnsrv", "services", _, f] => field_kind(f),
        ["services", "tsnsrv", "services", _, "urlParts", _] => Kind::Leaf(LeafTy::Scalar),
        ["services", "tsnsrv", "services", _, _, _] => Kind::Leaf(LeafTy::Scalar),
        ["services", "tsnsrv", "defaults", _, _] => Kind::Leaf(LeafTy::Scalar),
        ["services", "tsnsrv", _] => Kind::Leaf(LeafTy::Scalar),
        _ => Kind::Generic,
    }
}

/// Paths under `services.tsnsrv`, which tailshift's own table declares.
pub(super) fn is_tsnsrv(path: &[Rc<str>]) -> bool {
    path.len() >= 2 && &*path[0] == "services" && &*path[1] == "tsnsrv"
}

/// A path as written in Nix (`services.tsnsrv.services`).
pub(super) fn dotted(path: &[Rc<str>]) -> String {
    path.iter().map(|s| &**s).collect::<Vec<_>>().join(".")
}

/// A path of shared segments.
pub(super) fn str_path(path: &[&str]) -> Path_ {
    path.iter().map(|s| Rc::from(*s)).collect()
}

impl Eval {
    /// How a config path merges: tailshift's own table for tsnsrv, else the declarations of
    /// the modules read, else by the shape of its definitions.
    pub(crate) fn kind_at(&mut self, path: &[Rc<str>]) -> Kind {
        let k = kind_of(path);
        if is_tsnsrv(path) {
            // A service's own additions (`dashboard.public`) merge as their declarations say.
            if path.len() >= 5
                && self.tsnsrv_extended()
                && crate::options::spec(&path[4]).is_none()
                && let Some(d) = self.declared_kind(path)
            {
                return d;
            }
            return k;
        }
        if k != Kind::Generic {
            return k;
        }
        if let Some(k) = self.modules_mut().kind_memo.get(path) {
            return *k;
        }
        let k = self.declared_kind(path).unwrap_or(Kind::Generic);
        self.modules_mut().kind_memo.insert(path.to_vec(), k);
        k
    }

    /// Whether a module read declares `services.tsnsrv.services` itself (extending tsnsrv's
    /// submodule, e.g. with `config.funnel = mkDefault true` for every service): then its
    /// declarations and definitions reach tsnsrv's paths too.
    pub(crate) fn tsnsrv_extended(&mut self) -> bool {
        if let Some(b) = self.modules_mut().tsnsrv_extended {
            return b;
        }
        let path: Vec<Rc<str>> = vec!["services".into(), "tsnsrv".into(), "services".into()];
        let b = self.declared_option(&path).is_some();
        self.modules_mut().tsnsrv_extended = Some(b);
        b
    }

    /// Whether `path` is an option a module read declares inside a tsnsrv service (its own
    /// addition, such as `public`), not one of tsnsrv's.
    pub fn is_user_suboption(&mut self, path: &[Rc<str>]) -> bool {
        self.tsnsrv_extended() && self.declared_kind(path).is_some()
    }
}
