//! The sequences of the model test: from a seed alone (splitmix64), so that a failure replays.
//! Mostly what an operator would run next, as the model (walked along) says; often anything.

use super::spec::{Mode, Model};
use super::world::Fault;
use super::{Cmd, Op, fixture};
use crate::apply::state::Phase;

/// splitmix64: a seed is all a sequence needs to be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const FAULTS: [Fault; 9] = [
    Fault::Routes,
    Fault::Prepare,
    Fault::Unprepare,
    Fault::Complete,
    Fault::Uncomplete,
    Fault::Stop,
    Fault::Start,
    Fault::Finalize,
    Fault::Verify,
];

/// A sequence: the confirmation mode and the commands. Mostly what an operator would run next
/// (the model, walked along, says what that is: the next wave, a confirm while one waits, a
/// force-unlock after a crash), often anything at all (refusals are behaviour too).
pub(super) fn generate(seed: u64) -> (Mode, Vec<Cmd>) {
    let mut r = Rng(seed);
    let mode = Mode { operator: r.chance(50), pause: r.chance(30) };
    let len = 6 + r.below(20) as usize;
    let mut model = Model::new(fixture().infos.clone(), mode);
    let mut cmds = Vec::new();
    for _ in 0..len {
        let host = r.below(2) as usize;
        let (op, wave) = if r.chance(25) { anything(&mut r) } else { likely(&mut r, &model, host) };
        let wave_cmd = matches!(op, Op::Apply | Op::Rollback { .. } | Op::Finalize);
        let dry = wave_cmd && r.chance(15);
        // Finalize and confirm have two journal points per service; apply and a rollback up to
        // twelve a wave, an automatic rollback as many again, a cascade three waves' worth.
        let points = match op {
            Op::Finalize | Op::Confirm => 3,
            Op::Rollback { cascade: true } => 32,
            _ => 26,
        };
        let crash =
            (!dry && op != Op::ForceUnlock && r.chance(30)).then(|| 1 + r.below(points) as usize);
        let fault = (!dry && (wave_cmd || op == Op::Watch) && r.chance(12))
            .then(|| FAULTS[r.below(9) as usize]);
        let cmd = Cmd { op, host, wave, dry, crash, fault };
        if dry {
            model.run(&cmd, true);
        }
        model.run(&cmd, false);
        cmds.push(cmd);
    }
    (mode, cmds)
}

fn anything(r: &mut Rng) -> (Op, usize) {
    let op = match r.below(7) {
        0 => Op::Apply,
        1 => Op::Rollback { cascade: false },
        2 => Op::Rollback { cascade: true },
        3 => Op::Finalize,
        4 => Op::Confirm,
        5 => Op::Watch,
        _ => Op::ForceUnlock,
    };
    (op, 1 + r.below(3) as usize)
}

fn likely(r: &mut Rng, m: &Model, h: usize) -> (Op, usize) {
    if m.hosts[h].locked && r.chance(70) {
        return (Op::ForceUnlock, 1);
    }
    let phases: Vec<Option<Phase>> = (1..=3).map(|w| m.phase(&m.services(h, w)[0])).collect();
    let at = |p: Phase| phases.iter().position(|x| *x == Some(p)).map(|i| i + 1);
    if let Some(w) = at(Phase::Unconfirmed).filter(|_| r.chance(60)) {
        return (if r.chance(70) { Op::Confirm } else { Op::Watch }, w);
    }
    let moved = |p: &Option<Phase>| matches!(p, Some(Phase::Applied | Phase::Finalized));
    let next = phases.iter().position(|p| !moved(p)).map_or(3, |i| i + 1);
    match r.below(10) {
        0..=4 => (Op::Apply, next),
        5..=6 => {
            let w = 1 + r.below(3) as usize;
            (Op::Rollback { cascade: r.chance(50) }, w)
        }
        _ => (Op::Finalize, at(Phase::Applied).or(at(Phase::Finalizing)).unwrap_or(1)),
    }
}
