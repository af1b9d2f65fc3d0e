//! The units that move: alias groups of planned services (two names of one app on one host
//! move together), with what the wave assignment reads of each, computed once: dependencies
//! between units, dependents, whether public, pin, hub, and the sort key.

use super::{Ctx, Status};
use crate::id::ServiceId;
use std::collections::{BTreeMap, BTreeSet};

/// The planned services grouped into units, and each unit's facts, by unit index.
pub(super) struct Units {
    /// The unit of each service, by inventory index (`usize::MAX` when not planned).
    pub(super) of: Vec<usize>,
    /// Each unit's services, in inventory order.
    pub(super) members: Vec<Vec<usize>>,
    /// The units each unit depends on.
    pub(super) deps: Vec<BTreeSet<usize>>,
    /// The units that depend on each unit.
    pub(super) dependent_units: Vec<Vec<usize>>,
    /// How many services outside a unit depend on it (planned or not).
    pub(super) dependents: Vec<usize>,
    /// Whether a member is public (Funnel).
    pub(super) public: Vec<bool>,
    /// The earliest wave a member is pinned to.
    pub(super) pin: Vec<Option<usize>>,
    /// Whether enough services depend on it to move it on its own.
    pub(super) hub: Vec<bool>,
    /// The id of its first member: the order among equals, and its name in errors.
    pub(super) keys: Vec<ServiceId>,
    /// Units that a pinned unit depends on: they go first, so the pin can be honoured.
    pub(super) needed_by_pin: BTreeSet<usize>,
}

impl Units {
    /// Groups the planned services (`status`) by alias group; `pins` by inventory index.
    pub(super) fn group(ctx: &Ctx, status: &[Status], pins: &BTreeMap<usize, usize>) -> Units {
        let (of, members) = alias_units(ctx, status);
        let planned = |i: usize| status[i] == Status::Planned;
        let deps: Vec<BTreeSet<usize>> = members
            .iter()
            .enumerate()
            .map(|(u, ms)| {
                ms.iter()
                    .flat_map(|m| ctx.graph.dependencies(*m))
                    .filter(|d| planned(*d) && of[*d] != u)
                    .map(|d| of[d])
                    .collect()
            })
            .collect();
        let dependents: Vec<usize> = members
            .iter()
            .map(|ms| {
                ms.iter()
                    .flat_map(|m| ctx.graph.dependents(*m))
                    .filter(|d| !ms.contains(d))
                    .collect::<BTreeSet<_>>()
                    .len()
            })
            .collect();
        let public = members
            .iter()
            .map(|m| m.iter().any(|i| ctx.inv.services[*i].effective.bool("funnel") == Some(true)))
            .collect();
        let pin: Vec<Option<usize>> =
            members.iter().map(|m| m.iter().filter_map(|i| pins.get(i)).copied().min()).collect();
        let hub = dependents.iter().map(|d| *d >= ctx.policy.hub_min_dependents).collect();
        let keys = members.iter().map(|m| ctx.ids[m[0]].clone()).collect();
        let needed_by_pin = (0..members.len())
            .filter(|&u| pin[u].is_some())
            .flat_map(|u| deps[u].iter().copied())
            .collect();
        let mut dependent_units = vec![Vec::new(); members.len()];
        for (u, ds) in deps.iter().enumerate() {
            for d in ds {
                dependent_units[*d].push(u);
            }
        }
        Units {
            of,
            members,
            deps,
            dependent_units,
            dependents,
            public,
            pin,
            hub,
            keys,
            needed_by_pin,
        }
    }

    /// How many units.
    pub(super) fn len(&self) -> usize {
        self.members.len()
    }

    /// How many services a unit moves.
    pub(super) fn size(&self, u: usize) -> usize {
        self.members[u].len()
    }
}

/// The unit of each planned service, and each unit's members, numbered in inventory order.
fn alias_units(ctx: &Ctx, status: &[Status]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut of = vec![usize::MAX; status.len()];
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut root_unit: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, slot) in of.iter_mut().enumerate() {
        if status[i] != Status::Planned {
            continue;
        }
        let u = *root_unit.entry(ctx.graph.alias_of[i]).or_insert_with(|| {
            members.push(Vec::new());
            members.len() - 1
        });
        members[u].push(i);
        *slot = u;
    }
    (of, members)
}
