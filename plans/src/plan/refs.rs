//! The policy's references to services (`exclude`, `pins`, `mounts`, `access`, `timeouts`,
//! `present`, and the keys of `strategies`, `checks` and `usage`), resolved once to inventory
//! indexes, with the checks on their values. An unknown or ambiguous name is an error.

use super::{Access, Ctx, UpstreamTimeouts};
use crate::error::PlanError;
use crate::graph::Index;
use std::collections::{BTreeMap, BTreeSet};

/// The policy's per-service settings, by inventory index.
pub(super) struct PolicyRefs {
    /// `exclude`: stays on tsnsrv.
    pub(super) excluded: BTreeSet<usize>,
    /// `pins`: the wave a service must move in (1-based).
    pub(super) pins: BTreeMap<usize, usize>,
    /// `mounts`: a path under the node's own name.
    pub(super) mounts: BTreeMap<usize, String>,
    /// `access`: who may reach it.
    pub(super) access: BTreeMap<usize, Vec<Access>>,
    /// `timeouts`: upstream timeouts.
    pub(super) timeouts: BTreeMap<usize, UpstreamTimeouts>,
    /// `present`: whether a conditionally declared service exists.
    pub(super) present: BTreeMap<usize, bool>,
}

impl PolicyRefs {
    /// Resolves every reference, in the order the keys are checked (the first error wins).
    pub(super) fn resolve(ctx: &Ctx, index: &Index) -> Result<PolicyRefs, PlanError> {
        let (inv, policy) = (ctx.inv, ctx.policy);
        let resolve = |key: &str, r: &str| index.resolve(inv, key, r);
        let excluded =
            policy.exclude.iter().map(|e| resolve("exclude", e)).collect::<Result<_, _>>()?;
        let mut pins = BTreeMap::new();
        for (k, w) in &policy.pins {
            let i = resolve("pins", k)?;
            if *w == 0 {
                return Err(PlanError::UnknownService {
                    key: "pins".into(),
                    name: k.clone(),
                    hint: ": waves count from 1".into(),
                });
            }
            pins.insert(i, *w);
        }
        for k in policy.strategies.keys().chain(policy.checks.keys()).chain(policy.usage.keys()) {
            resolve("strategies/checks/usage", k)?;
        }
        let mut mounts = BTreeMap::new();
        for (k, m) in &policy.mounts {
            let i = resolve("mounts", k)?;
            if !m.starts_with('/') || !m.ends_with('/') || m == "/" {
                return Err(PlanError::UnknownService {
                    key: format!("mounts.{k}"),
                    name: m.clone(),
                    hint: ": a mount is a path like \"/app/\" (leading and trailing slash, not /)"
                        .into(),
                });
            }
            mounts.insert(i, m.clone());
        }
        let mut access = BTreeMap::new();
        for (k, v) in &policy.access {
            access.insert(resolve("access", k)?, v.clone());
        }
        let mut timeouts = BTreeMap::new();
        for (k, v) in &policy.timeouts {
            timeouts.insert(resolve("timeouts", k)?, *v);
        }
        let mut present = BTreeMap::new();
        for (k, v) in &policy.present {
            present.insert(resolve("present", k)?, *v);
        }
        Ok(PolicyRefs { excluded, pins, mounts, access, timeouts, present })
    }
}
