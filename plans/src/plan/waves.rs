//! Units into waves: a canary of low-risk units first; then, wave by wave, units whose
//! dependencies all sit in earlier waves (Kahn's algorithm, by wave), hubs on their own, the
//! rest in schedule-sized ramp waves; pins are honoured exactly or are an error.

use super::units::Units;
use super::{Ctx, WaveKind};
use crate::error::PlanError;
use crate::policy::{HUB_WAVE_MAX, Policy};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

/// The waves, each a kind and its units, and the wave of each unit.
pub(super) struct Schedule {
    /// In order: wave `k + 1` is `waves[k]`.
    pub(super) waves: Vec<(WaveKind, Vec<usize>)>,
    /// The wave (1-based) of each unit.
    pub(super) wave_of_unit: Vec<Option<usize>>,
}

/// Assigns every unit a wave.
pub(super) fn schedule(ctx: &Ctx, units: &Units) -> Result<Schedule, PlanError> {
    let mut s = Scheduler::new(ctx.policy, units);
    s.start(canary(ctx, units));
    while s.placed < units.len() {
        s.next_wave()?;
    }
    s.check_pins()?;
    Ok(Schedule { waves: s.waves, wave_of_unit: s.wave_of_unit })
}

/// The size limit of the `k`th wave (0: the canary) from the schedule and `max_wave_size`.
fn cap(policy: &Policy, k: usize) -> usize {
    let c = policy.schedule[k.min(policy.schedule.len() - 1)];
    policy.max_wave_size.map_or(c, |m| c.min(m)).max(1)
}

/// The canary: nothing before it, nothing after it depends on it, private, working, low usage;
/// a unit pinned to wave 1 always, the rest while they fit.
fn canary(ctx: &Ctx, units: &Units) -> Vec<usize> {
    let mut candidates: Vec<usize> = (0..units.len())
        .filter(|&u| {
            units.deps[u].is_empty()
                && units.dependents[u] == 0
                && !units.public[u]
                && units.pin[u].is_none_or(|p| p == 1)
                && !units.members[u].iter().any(|i| ctx.inv.services[*i].cannot_start())
        })
        .collect();
    candidates.sort_by_key(|&u| {
        let usage = units.members[u].iter().map(|i| ctx.usage(*i)).sum::<u64>();
        (units.pin[u] != Some(1), usage, units.keys[u].to_string())
    });
    let mut first = Vec::new();
    let mut size = 0;
    for u in candidates {
        if size + units.size(u) <= cap(ctx.policy, 0) || units.pin[u] == Some(1) {
            size += units.size(u);
            first.push(u);
        }
    }
    first
}

/// Ready ramp units: those something pinned needs first, private before public, by key.
type Ready<'a> = BTreeSet<(bool, bool, &'a str, usize)>;
/// Ready hubs: most dependents first, by key.
type ReadyHubs<'a> = BTreeSet<(Reverse<usize>, &'a str, usize)>;

/// The wave assignment in progress.
struct Scheduler<'a> {
    policy: &'a Policy,
    units: &'a Units,
    /// The wave of each unit, once placed.
    wave_of_unit: Vec<Option<usize>>,
    /// Unplaced dependencies of each unit.
    remaining: Vec<usize>,
    /// Units whose last dependency was placed in the wave being made: ready from the next.
    freed_next: Vec<usize>,
    ready: Ready<'a>,
    ready_hubs: ReadyHubs<'a>,
    /// Ready pinned units, by their pin.
    pinned_ready: BTreeMap<usize, Vec<usize>>,
    canary: BTreeSet<usize>,
    waves: Vec<(WaveKind, Vec<usize>)>,
    /// Units placed so far.
    placed: usize,
    /// Ramp waves made so far, plus one (the schedule's index of the next).
    k: usize,
}

impl<'a> Scheduler<'a> {
    fn new(policy: &'a Policy, units: &'a Units) -> Self {
        Scheduler {
            policy,
            units,
            wave_of_unit: vec![None; units.len()],
            remaining: units.deps.iter().map(BTreeSet::len).collect(),
            freed_next: Vec::new(),
            ready: BTreeSet::new(),
            ready_hubs: BTreeSet::new(),
            pinned_ready: BTreeMap::new(),
            canary: BTreeSet::new(),
            waves: Vec::new(),
            placed: 0,
            k: 1,
        }
    }

    /// Places the canary in wave 1 and queues every other unit with no dependency.
    fn start(&mut self, first: Vec<usize>) {
        self.canary = first.iter().copied().collect();
        for &u in &first {
            self.place(u, 1);
        }
        self.placed = first.len();
        if !first.is_empty() {
            self.waves.push((WaveKind::Canary, first));
        }
        for u in 0..self.units.len() {
            if self.remaining[u] == 0 && !self.canary.contains(&u) {
                self.enqueue(u);
            }
        }
    }

    /// Puts a unit in wave `w`; its dependents with nothing else to wait for are ready next.
    fn place(&mut self, u: usize, w: usize) {
        self.wave_of_unit[u] = Some(w);
        for &d in &self.units.dependent_units[u] {
            self.remaining[d] -= 1;
            if self.remaining[d] == 0 {
                self.freed_next.push(d);
            }
        }
    }

    /// Queues a ready unit: by its pin, as a hub, or as a ramp unit.
    fn enqueue(&mut self, u: usize) {
        let units = self.units;
        if let Some(p) = units.pin[u] {
            self.pinned_ready.entry(p).or_default().push(u);
        } else if units.hub[u] {
            self.ready_hubs.insert((Reverse(units.dependents[u]), units.keys[u].as_str(), u));
        } else {
            self.ready.insert((
                !units.needed_by_pin.contains(&u),
                units.public[u],
                units.keys[u].as_str(),
                u,
            ));
        }
    }

    /// Makes the next wave: the units pinned to it (and late pins), else hubs, else ramp units
    /// up to the schedule's size.
    fn next_wave(&mut self) -> Result<(), PlanError> {
        let number = self.waves.len() + 1;
        for u in std::mem::take(&mut self.freed_next) {
            if !self.canary.contains(&u) && self.wave_of_unit[u].is_none() {
                self.enqueue(u);
            }
        }
        let mut chosen: Vec<usize> = self.pinned_ready.remove(&number).unwrap_or_default();
        // A pin whose wave has passed cannot be honoured (checked at the end).
        let late: Vec<usize> =
            self.pinned_ready.range(..number).flat_map(|(_, v)| v.clone()).collect();
        self.pinned_ready.retain(|p, _| *p >= number);
        chosen.extend(late);
        let kind = if chosen.is_empty() && !self.ready_hubs.is_empty() {
            self.take_hubs(&mut chosen);
            WaveKind::Hub
        } else {
            self.take_ramp(&mut chosen);
            WaveKind::Ramp
        };
        if chosen.is_empty() {
            return Err(self.stuck(number));
        }
        for &u in &chosen {
            self.place(u, number);
        }
        self.placed += chosen.len();
        self.waves.push((kind, chosen));
        Ok(())
    }

    /// Ready hubs, most dependents first, up to [`HUB_WAVE_MAX`] services (at least one).
    fn take_hubs(&mut self, chosen: &mut Vec<usize>) {
        let mut size = 0;
        while let Some(first) = self.ready_hubs.first().copied() {
            let u = first.2;
            if size + self.units.size(u) > HUB_WAVE_MAX && !chosen.is_empty() {
                break;
            }
            self.ready_hubs.remove(&first);
            size += self.units.size(u);
            chosen.push(u);
        }
    }

    /// Ready ramp units in rank order while they fit the schedule's next size (at least one).
    fn take_ramp(&mut self, chosen: &mut Vec<usize>) {
        let cap = cap(self.policy, self.k);
        self.k += 1;
        let mut size: usize = chosen.iter().map(|u| self.units.size(*u)).sum();
        let mut skipped = Vec::new();
        while let Some(first) = self.ready.pop_first() {
            let u = first.3;
            if size + self.units.size(u) <= cap || chosen.is_empty() {
                size += self.units.size(u);
                chosen.push(u);
            } else {
                skipped.push(first);
                if size >= cap {
                    break;
                }
            }
        }
        self.ready.extend(skipped);
    }

    /// Why nothing can move: everything left waits for a pin further ahead, or on it.
    fn stuck(&self, number: usize) -> PlanError {
        let units = self.units;
        if let Some((next, pinned)) = self.pinned_ready.first_key_value() {
            return PlanError::UnknownService {
                key: "pins".into(),
                name: units.keys[pinned[0]].to_string(),
                hint: format!(
                    ": pinned to wave {next}, but the plan has only {} waves before it",
                    number - 1
                ),
            };
        }
        let u = (0..units.len()).find(|&u| self.wave_of_unit[u].is_none()).unwrap_or_default();
        let d =
            units.deps[u].iter().find(|d| self.wave_of_unit[**d].is_none()).copied().unwrap_or(u);
        PlanError::PinBeforeDependency {
            service: units.keys[u].to_string(),
            wave: units.pin[u].unwrap_or(number),
            dependency: units.keys[d].to_string(),
            dependency_wave: units.pin[d].map_or("later".into(), |p| p.to_string()),
        }
    }

    /// A pin must be honoured exactly.
    fn check_pins(&self) -> Result<(), PlanError> {
        let units = self.units;
        for (u, w) in self.wave_of_unit.iter().enumerate() {
            if let (Some(p), Some(w)) = (units.pin[u], w)
                && p != *w
            {
                let blocker = units.deps[u]
                    .iter()
                    .copied()
                    .max_by_key(|d| self.wave_of_unit[*d])
                    .unwrap_or(u);
                return Err(PlanError::PinBeforeDependency {
                    service: units.keys[u].to_string(),
                    wave: p,
                    dependency: units.keys[blocker].to_string(),
                    dependency_wave: self.wave_of_unit[blocker]
                        .map_or("later".into(), |w| w.to_string()),
                });
            }
        }
        Ok(())
    }
}
