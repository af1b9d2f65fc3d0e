//! The model: what each wave command must do, written from MIGRATION.md section 5 and issue 14,
//! not from the engine's code. It walks a command the way the contract says, counting journal
//! points (an intent before and a result after every step) so that a crash lands where the
//! engine's would, and predicts the exit code, each service's state and done steps, the
//! dangling intents, the lock, every effect in place, and the steps a dry run prints.

use super::world::{Effects, Fault, Place, answer, proxy_addr};
use super::{Cmd, Op};
use crate::apply::state::Phase;
use std::collections::{BTreeMap, BTreeSet};
use tailshift_checks::Outcome;

/// The steps of a `split-dns` service: route, prepare, settle, stop, complete, verify.
pub const STEPS: usize = 6;
const VERIFY: usize = 5;
/// The journal's step index of finalize and of confirm.
pub const FINALIZE_STEP: usize = usize::MAX - 1;
pub const CONFIRM_STEP: usize = usize::MAX;

/// A service of the fixture.
#[derive(Clone, Debug)]
pub struct Info {
    pub place: Place,
    pub wave: usize,
    pub deps: Vec<String>,
}

/// A service in `state.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Svc {
    pub phase: Phase,
    pub wave: usize,
    pub done: BTreeSet<usize>,
}

/// One host as the model sees it.
#[derive(Clone, Debug, Default)]
pub struct Host {
    pub state: BTreeMap<String, Svc>,
    /// Steps an apply started since the service was last fully undone (the journal's truth).
    pub started: BTreeMap<String, BTreeSet<usize>>,
    /// Intents without a result: (service, step).
    pub dangling: BTreeSet<(String, usize)>,
    /// A dead process's lock.
    pub locked: bool,
    /// Waves the confirmation watcher rolled back, not applied again since.
    pub watched: BTreeSet<usize>,
}

/// What a command ends with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Exit(u8),
    Crash,
}

/// How `[apply]` is set for a sequence: who confirms, and whether a failed check pauses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// `confirm = "operator"` (else `"checks"`).
    pub operator: bool,
    /// `on_fail = "pause"` (else `"rollback"`).
    pub pause: bool,
}

/// The whole model.
#[derive(Clone, Debug)]
pub struct Model {
    pub hosts: [Host; 2],
    pub effects: Effects,
    pub mode: Mode,
    pub infos: Vec<Info>,
}

struct Crashed;

struct Walk {
    faults: BTreeSet<Fault>,
    crash_at: Option<usize>,
    points: usize,
    would: Vec<(String, usize)>,
}

impl Walk {
    fn point(&mut self) -> Result<(), Crashed> {
        self.points += 1;
        if self.crash_at == Some(self.points) { Err(Crashed) } else { Ok(()) }
    }
}

impl Model {
    pub fn new(infos: Vec<Info>, mode: Mode) -> Model {
        Model { hosts: Default::default(), effects: Effects::default(), mode, infos }
    }

    fn info(&self, id: &str) -> &Info {
        self.infos.iter().find(|i| i.place.id == id).expect("a service of the fixture")
    }

    /// A wave's services on a host, in plan order.
    pub fn services(&self, h: usize, wave: usize) -> Vec<String> {
        self.infos
            .iter()
            .filter(|i| i.place.host == h && i.wave == wave)
            .map(|i| i.place.id.clone())
            .collect()
    }

    /// A service's phase (`None`: legacy, not in the state).
    pub fn phase(&self, id: &str) -> Option<Phase> {
        let h = self.info(id).place.host;
        self.hosts[h].state.get(id).map(|s| s.phase)
    }

    /// Runs a command on the model: its end, and the steps a dry run prints.
    pub fn run(&mut self, cmd: &Cmd, dry: bool) -> (End, Vec<(String, usize)>) {
        let mut w = Walk {
            faults: cmd.fault.into_iter().collect(),
            crash_at: if dry { None } else { cmd.crash },
            points: 0,
            would: Vec::new(),
        };
        let h = cmd.host;
        let r = match cmd.op {
            Op::Apply => self.apply(&mut w, h, cmd.wave, dry),
            Op::Rollback { cascade } => self.rollback(&mut w, h, cmd.wave, cascade, dry),
            Op::Finalize => self.finalize(&mut w, h, cmd.wave, dry),
            Op::Confirm => self.confirm(&mut w, h, cmd.wave),
            Op::ForceUnlock => Ok(if std::mem::take(&mut self.hosts[h].locked) { 0 } else { 1 }),
            Op::Watch => self.watch(&mut w, h, cmd.wave),
        };
        match r {
            Ok(code) => (End::Exit(code), w.would),
            Err(Crashed) => {
                self.hosts[h].locked = true;
                (End::Crash, w.would)
            }
        }
    }

    /// `migrate status`: 9 for an intent without a result or a service caught mid-way, else 2
    /// for a stale lock, else 0.
    pub fn status(&self, h: usize) -> u8 {
        let host = &self.hosts[h];
        let stuck = host
            .state
            .values()
            .any(|s| matches!(s.phase, Phase::Applying | Phase::RollingBack | Phase::Finalizing));
        if !host.dangling.is_empty() || stuck {
            9
        } else if host.locked || !host.watched.is_empty() {
            2
        } else {
            0
        }
    }

    fn intent(
        &mut self,
        w: &mut Walk,
        h: usize,
        s: &str,
        i: usize,
        apply: bool,
    ) -> Result<(), Crashed> {
        self.hosts[h].dangling.insert((s.to_string(), i));
        if apply {
            self.hosts[h].started.entry(s.to_string()).or_default().insert(i);
            let wave = self.info(s).wave;
            self.hosts[h].watched.remove(&wave);
        }
        w.point()
    }

    /// A result; `undone`: a rollback's step that held, which no longer needs undoing.
    fn result(
        &mut self,
        w: &mut Walk,
        h: usize,
        s: &str,
        i: usize,
        undone: bool,
    ) -> Result<(), Crashed> {
        self.hosts[h].dangling.remove(&(s.to_string(), i));
        if undone && let Some(started) = self.hosts[h].started.get_mut(s) {
            started.remove(&i);
        }
        w.point()
    }

    fn apply(&mut self, w: &mut Walk, h: usize, wave: usize, dry: bool) -> Result<u8, Crashed> {
        if self.hosts[h].locked {
            return Ok(8);
        }
        let svcs = self.services(h, wave);
        if svcs.iter().any(|s| self.phase(s) == Some(Phase::RollingBack)) {
            return Ok(9);
        }
        for earlier in 1..wave {
            for s in self.services(h, earlier) {
                if !matches!(self.phase(&s), Some(Phase::Applied | Phase::Finalized)) {
                    return Ok(3);
                }
            }
        }
        // Pre-flight: a dependency on another host must answer by its name, and have moved
        // there (its state is read through [apply.peers]).
        for s in &svcs {
            for d in &self.info(s).deps {
                let p = &self.info(d).place;
                let moved = matches!(
                    self.phase(d),
                    Some(
                        Phase::Unconfirmed | Phase::Applied | Phase::Finalizing | Phase::Finalized
                    )
                );
                let answers = !matches!(answer(&self.effects, &w.faults, p), Outcome::Error(_));
                if p.host != h && !(moved && answers) {
                    return Ok(3);
                }
            }
        }
        let done = |m: &Model, s: &str| -> BTreeSet<usize> {
            m.hosts[h].state.get(s).map(|x| x.done.clone()).unwrap_or_default()
        };
        if dry {
            for s in &svcs {
                let d = done(self, s);
                w.would.extend((0..STEPS).filter(|i| !d.contains(i)).map(|i| (s.clone(), i)));
            }
            // As the real run ends, as far as it can be told before the checks: waiting for
            // the operator when a service would be left, or already is, unconfirmed.
            let waits = svcs.iter().any(|s| match self.phase(s) {
                Some(Phase::Unconfirmed) => true,
                Some(Phase::Applied | Phase::Finalizing | Phase::Finalized) => false,
                _ => self.mode.operator,
            });
            return Ok(if waits { 6 } else { 0 });
        }
        let baseline: BTreeMap<String, Outcome> = svcs
            .iter()
            .map(|s| (s.clone(), answer(&self.effects, &w.faults, &self.info(s).place)))
            .collect();
        let mut failed = false;
        let mut paused = BTreeSet::new();
        'services: for s in &svcs {
            let d = done(self, s);
            for i in (0..STEPS).filter(|i| !d.contains(i)) {
                // Applying is said before a step takes effect.
                let st = self.hosts[h].state.entry(s.clone()).or_insert(Svc {
                    phase: Phase::Applying,
                    wave,
                    done: BTreeSet::new(),
                });
                st.phase = Phase::Applying;
                self.intent(w, h, s, i, true)?;
                let ok = self.apply_effect(w, h, s, i, &baseline[s]);
                self.result(w, h, s, i, false)?;
                // With `on_fail = "pause"` a failed check leaves the wave as it is, waiting.
                if !ok && i == VERIFY && self.mode.pause {
                    paused.insert(s.clone());
                } else if !ok {
                    failed = true;
                    break 'services;
                }
                let st = self.hosts[h].state.get_mut(s).expect("applying");
                st.done.insert(i);
            }
            let operator = self.mode.operator || paused.contains(s);
            if let Some(st) = self.hosts[h].state.get_mut(s) {
                // A service already applied or finalized stays so: applying again changes nothing.
                if !matches!(st.phase, Phase::Applied | Phase::Finalizing | Phase::Finalized) {
                    st.phase = if operator { Phase::Unconfirmed } else { Phase::Applied };
                }
            }
        }
        if failed {
            return Ok(if self.undo(w, h, &svcs)? { 4 } else { 9 });
        }
        let waiting = svcs.iter().any(|s| self.phase(s) == Some(Phase::Unconfirmed));
        Ok(if waiting { 6 } else { 0 })
    }

    fn apply_effect(&mut self, w: &Walk, h: usize, s: &str, i: usize, baseline: &Outcome) -> bool {
        let fails = |f| w.faults.contains(&f);
        let place = self.info(s).place.clone();
        let e = &mut self.effects;
        let s = s.to_string();
        match i {
            0 => put(&mut e.route, &s, !fails(Fault::Routes), true),
            1 => put(&mut e.prepared, &s, !fails(Fault::Prepare), true),
            3 => put(&mut e.stopped, &s, !fails(Fault::Stop), true),
            4 => put(&mut e.completed, &s, !fails(Fault::Complete), true),
            VERIFY => {
                if !e.prepared.contains(&s) {
                    return false;
                }
                let now = answer(e, &w.faults, &place);
                if let Outcome::Status { addr, .. } = &now
                    && *addr != proxy_addr(h)
                {
                    return false;
                }
                baseline.class().is_some() && baseline.class() == now.class()
            }
            _ => true,
        }
    }

    fn undo_effect(&mut self, w: &Walk, s: &str, i: usize) -> bool {
        let fails = |f| w.faults.contains(&f);
        let e = &mut self.effects;
        match i {
            1 => put(&mut e.prepared, s, !fails(Fault::Unprepare), false),
            3 => put(&mut e.stopped, s, !fails(Fault::Start), false),
            4 => put(&mut e.completed, s, !fails(Fault::Uncomplete), false),
            _ => true,
        }
    }

    /// The steps to undo: those done, and every one an apply started since the last full undo.
    fn to_undo(&self, h: usize, s: &str) -> BTreeSet<usize> {
        let mut d = self.hosts[h].state.get(s).map(|x| x.done.clone()).unwrap_or_default();
        d.extend(self.hosts[h].started.get(s).into_iter().flatten());
        d
    }

    /// Undoes services in reverse, each one's steps in reverse and its route last. Whether all
    /// of it held.
    fn undo(&mut self, w: &mut Walk, h: usize, svcs: &[String]) -> Result<bool, Crashed> {
        let mut clean = true;
        for s in svcs.iter().rev() {
            let done = self.to_undo(h, s);
            if let Some(st) = self.hosts[h].state.get_mut(s) {
                st.phase = Phase::RollingBack;
            }
            for &i in done.iter().rev().filter(|i| **i != 0) {
                self.intent(w, h, s, i, false)?;
                let ok = self.undo_effect(w, s, i);
                self.result(w, h, s, i, ok)?;
                clean &= ok;
            }
            if done.contains(&0) {
                self.intent(w, h, s, 0, false)?;
                let ok = !w.faults.contains(&Fault::Routes);
                if ok {
                    self.effects.route.remove(s);
                }
                self.result(w, h, s, 0, ok)?;
                clean &= ok;
            }
            if clean {
                self.hosts[h].state.remove(s);
            }
        }
        Ok(clean)
    }

    fn rollback(
        &mut self,
        w: &mut Walk,
        h: usize,
        wave: usize,
        cascade: bool,
        dry: bool,
    ) -> Result<u8, Crashed> {
        if self.hosts[h].locked {
            return Ok(8);
        }
        let later: BTreeSet<usize> =
            self.hosts[h].state.values().filter(|s| s.wave > wave).map(|s| s.wave).collect();
        if !later.is_empty() && !cascade {
            return Ok(3);
        }
        let order: Vec<usize> = later.into_iter().rev().chain([wave]).collect();
        if self.hosts[h].state.values().any(|s| {
            order.contains(&s.wave) && matches!(s.phase, Phase::Finalized | Phase::Finalizing)
        }) {
            return Ok(3);
        }
        // A service on the other host that depends on one of these waves and is not legacy
        // there goes back first (that host's state is read through [apply.peers]).
        let here: Vec<String> = order.iter().flat_map(|w| self.services(h, *w)).collect();
        if self.infos.iter().any(|d| {
            d.place.host != h
                && d.deps.iter().any(|x| here.contains(x))
                && self.hosts[d.place.host].state.contains_key(&d.place.id)
        }) {
            return Ok(3);
        }
        if dry {
            for &wv in &order {
                for s in self.services(h, wv).iter().rev() {
                    let done = self.to_undo(h, s);
                    let steps = done.iter().rev().filter(|i| **i != 0 && **i != VERIFY);
                    w.would.extend(steps.map(|i| (s.clone(), *i)));
                    if done.contains(&0) {
                        w.would.push((s.clone(), 0));
                    }
                }
            }
            return Ok(0);
        }
        for &wv in &order {
            let svcs = self.services(h, wv);
            if !self.undo(w, h, &svcs)? {
                return Ok(9);
            }
            // The legacy path answers again, from the node; the shim is gone.
            for s in &svcs {
                let back = match answer(&self.effects, &w.faults, &self.info(s).place) {
                    Outcome::Status { addr, .. } => addr != proxy_addr(h),
                    Outcome::Error(_) => false,
                };
                if !back || self.effects.prepared.contains(s) || self.effects.completed.contains(s)
                {
                    return Ok(9);
                }
            }
        }
        Ok(0)
    }

    fn finalize(&mut self, w: &mut Walk, h: usize, wave: usize, dry: bool) -> Result<u8, Crashed> {
        if self.hosts[h].locked {
            return Ok(8);
        }
        let svcs = self.services(h, wave);
        if svcs.iter().any(|s| {
            !matches!(self.phase(s), Some(Phase::Applied | Phase::Finalizing | Phase::Finalized))
        }) {
            return Ok(3);
        }
        let todo: Vec<String> =
            svcs.into_iter().filter(|s| self.phase(s) != Some(Phase::Finalized)).collect();
        if dry {
            w.would.extend(todo.iter().map(|s| (s.clone(), FINALIZE_STEP)));
            return Ok(0);
        }
        for s in &todo {
            self.set_phase(h, s, Phase::Finalizing);
            self.intent(w, h, s, FINALIZE_STEP, false)?;
            let ok = !w.faults.contains(&Fault::Finalize);
            if ok {
                self.effects.finalized.insert(s.clone());
            }
            self.result(w, h, s, FINALIZE_STEP, false)?;
            if !ok {
                return Ok(9);
            }
            self.set_phase(h, s, Phase::Finalized);
        }
        Ok(0)
    }

    fn confirm(&mut self, w: &mut Walk, h: usize, wave: usize) -> Result<u8, Crashed> {
        if self.hosts[h].locked {
            return Ok(8);
        }
        let waiting: Vec<String> = self.hosts[h]
            .state
            .iter()
            .filter(|(_, s)| s.wave == wave && s.phase == Phase::Unconfirmed)
            .map(|(k, _)| k.clone())
            .collect();
        if waiting.is_empty() {
            return Ok(3);
        }
        for s in &waiting {
            self.intent(w, h, s, CONFIRM_STEP, false)?;
            self.set_phase(h, s, Phase::Applied);
            self.result(w, h, s, CONFIRM_STEP, false)?;
        }
        Ok(0)
    }

    /// The deadline passed without `migrate confirm`: the wave is rolled back (never with
    /// `--cascade`), and `status` says so until it is applied again.
    fn watch(&mut self, w: &mut Walk, h: usize, wave: usize) -> Result<u8, Crashed> {
        let waiting =
            self.hosts[h].state.values().any(|s| s.wave == wave && s.phase == Phase::Unconfirmed);
        if !waiting {
            return Ok(0);
        }
        let code = self.rollback(w, h, wave, false, false)?;
        if code == 0 {
            self.hosts[h].watched.insert(wave);
        }
        Ok(code)
    }

    fn set_phase(&mut self, h: usize, s: &str, p: Phase) {
        if let Some(st) = self.hosts[h].state.get_mut(s) {
            st.phase = p;
        }
    }
}

/// A step's effect on one set, unless its fault makes it fail: whether it held.
fn put(set: &mut BTreeSet<String>, s: &str, holds: bool, add: bool) -> bool {
    if holds && add {
        set.insert(s.to_string());
    } else if holds {
        set.remove(s);
    }
    holds
}
