//! The engine's model-based test (issue 14): generated sequences of apply, rollback (plain and
//! `--cascade`), finalize, confirm, dry runs, crashes at journal points, resumes, force-unlock
//! and status, across 2 hosts and 3 waves with dependencies across the hosts, run in process
//! against an in-memory world (`world`), each command's exit code predicted by the model
//! (`spec`). After every command, per host: the state, done steps, dangling intents, lock and
//! effects equal the model's; the state each service is reported in matches the effects in
//! place; no moved service depends on one that is not; a dry run changes no byte, and prints
//! the steps the real run that follows journals.
//!
//! `TAILSHIFT_MODEL_CASES` (default 2000) sets the number of sequences, `TAILSHIFT_MODEL_SEED`
//! the first seed (printed on failure, with the shrunk sequence).

mod generate;
mod spec;
mod world;

use crate::apply::config::ApplyConfig;
use crate::apply::engine::Request;
use crate::apply::journal::{Journal, Kind};
use crate::apply::lock::Lock;
use crate::apply::state::{Phase, State};
use generate::generate;
use spec::{End, Info, Mode, Model};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tailshift_plans::Plan;
use world::{Crash, Effects, Fault, ModelWorld, Place};

/// A wave command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Apply,
    Rollback {
        cascade: bool,
    },
    Finalize,
    Confirm,
    ForceUnlock,
    /// The confirmation watcher, its deadline passed.
    Watch,
}

/// One command of a sequence: with `dry`, a dry run first, then the same command for real.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    pub op: Op,
    pub host: usize,
    pub wave: usize,
    pub dry: bool,
    pub crash: Option<usize>,
    pub fault: Option<Fault>,
}

const HOSTS: [&str; 2] = ["h1", "h2"];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Apply => "apply",
            Op::Rollback { cascade: false } => "rollback",
            Op::Rollback { cascade: true } => "rollback --cascade",
            Op::Finalize => "finalize",
            Op::Confirm => "confirm",
            Op::ForceUnlock => "force-unlock",
            Op::Watch => "watch-confirm",
        }
    }
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} --wave {} --host {}", self.op.name(), self.wave, HOSTS[self.host])?;
        if self.dry {
            write!(f, " (after its --dry-run)")?;
        }
        if let Some(n) = self.crash {
            write!(f, " [crash at journal point {n}]")?;
        }
        if let Some(x) = self.fault {
            write!(f, " [fault {x:?}]")?;
        }
        Ok(())
    }
}

struct Fixture {
    plan: Plan,
    infos: Vec<Info>,
}

/// Two hosts, three waves, one service per host and wave; dependencies cross the hosts.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut paths = Vec::new();
        for (h, host) in HOSTS.iter().enumerate() {
            let svcs: String = (1..=3)
                .map(|w| {
                    let name = format!("{}{w}", ["a", "b"][h]);
                    format!("      {name} = {{ toURL = \"http://127.0.0.1:{}\"; }};\n", 8000 + 10 * h + w)
                })
                .collect();
            let p = d.join(format!("{host}.nix"));
            std::fs::write(&p, format!("{{ ... }}: {{\n  networking.hostName = \"{host}\";\n  services.tsnsrv = {{\n    enable = true;\n    defaults.authKeyPath = \"/run/keys/tailscale\";\n    services = {{\n{svcs}    }};\n  }};\n}}\n")).unwrap();
            paths.push(p);
        }
        let policy = "[plan]\ntailnet = \"tailnet.test\"\nstrategy = \"split-dns\"\nschedule = [2]\n\n[plan.pins]\na1 = 1\nb1 = 1\na2 = 2\nb2 = 2\na3 = 3\nb3 = 3\n\n[plan.dependencies]\na2 = [\"b1\"]\nb2 = [\"a1\"]\na3 = [\"a2\", \"b2\"]\nb3 = [\"a2\"]\n";
        let policy = tailshift_plans::Policy::parse(policy, "migrate.toml").unwrap();
        let inv = tailshift_parsers::load(&paths, &Default::default()).unwrap();
        let plan = tailshift_plans::make_plan(&inv, &policy, &Default::default()).unwrap();
        let plan = tailshift_plans::plan_file::seal(plan, &inv, &policy, 1_900_000_000);
        assert_eq!(plan.waves.len(), 3, "{:#?}", plan.waves);
        let mut infos = Vec::new();
        for (index, s) in plan.services.iter().enumerate() {
            let host = HOSTS.iter().position(|h| s.inventory.host.known().is_some_and(|x| x == h));
            let wave = plan.waves.iter().find(|w| w.services.contains(&s.id)).unwrap().number;
            let deps = s.depends_on.iter().map(|d| d.id.to_string()).collect();
            let place = Place { id: s.id.to_string(), host: host.unwrap(), index };
            infos.push(Info { place, wave, deps });
        }
        // The dependencies the fixture is about: across hosts, and within one.
        let deps = |id: &str| infos.iter().find(|i| i.place.id == id).unwrap().deps.clone();
        assert_eq!(deps("h1/a2"), vec!["h2/b1".to_string()]);
        assert_eq!(deps("h1/a3").len(), 2);
        Fixture { plan, infos }
    })
}

/// One sequence's world: a state directory and an `[apply]` per host, the in-memory world.
struct Case {
    _dir: tempfile::TempDir,
    cfgs: Vec<ApplyConfig>,
    world: ModelWorld,
    model: Model,
    /// How often each command ended each way (the test's own coverage).
    seen: std::cell::RefCell<Seen>,
}

type Seen = BTreeMap<String, usize>;

fn scratch() -> tempfile::TempDir {
    // Journal and state writes fsync: on tmpfs that costs nothing.
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

impl Case {
    fn new(mode: Mode) -> Case {
        let fx = fixture();
        let dir = scratch();
        let mut cfgs = Vec::new();
        for (h, host) in HOSTS.iter().enumerate() {
            let d = dir.path().join(host);
            std::fs::create_dir_all(d.join("state")).unwrap();
            let peer = HOSTS[1 - h];
            let toml = format!(
                "[apply]\nstate_dir = \"{0}/state\"\nadmin_socket = \"{0}/admin.sock\"\nsettle_ms = 0\nproxy_addrs = [\"{1}\"]\nlegacy = {{ adapter = \"command\", command = [\"/bin/false\"] }}\nconfirm = \"{2}\"\non_fail = \"{3}\"\n[apply.peers.{4}]\nstate_dir = \"{5}/{4}/state\"\n",
                d.display(),
                world::proxy_addr(h),
                if mode.operator { "operator" } else { "checks" },
                if mode.pause { "pause" } else { "rollback" },
                peer,
                dir.path().display()
            );
            std::fs::write(d.join("migrate.toml"), toml).unwrap();
            cfgs.push(ApplyConfig::load(&d.join("migrate.toml")).unwrap());
        }
        let places = || fx.infos.iter().map(|i| i.place.clone());
        let world = ModelWorld {
            inner: Default::default(),
            by_name: fx
                .plan
                .services
                .iter()
                .zip(places())
                .map(|(s, p)| (s.placement.names[0].name.to_ascii_lowercase(), p))
                .collect(),
        };
        let model = Model::new(fx.infos.clone(), mode);
        Case { _dir: dir, cfgs, world, model, seen: Default::default() }
    }

    fn state_dir(&self, h: usize) -> PathBuf {
        self.cfgs[h].state_dir()
    }

    /// Runs a command on the engine; a crash leaves the dead process's lock behind.
    fn engine(&self, cmd: &Cmd, dry: bool) -> End {
        let h = cmd.host;
        let dir = self.state_dir(h);
        {
            let mut inner = self.world.inner.borrow_mut();
            inner.faults = if dry { BTreeSet::new() } else { cmd.fault.into_iter().collect() };
            inner.crash_at = if dry { None } else { cmd.crash };
            inner.points = 0;
            inner.stashed_lock = None;
            inner.dir = dir.clone();
        }
        let req = Request {
            plan: &fixture().plan,
            wave: cmd.wave,
            host: HOSTS[h].into(),
            cfg: &self.cfgs[h],
            dry_run: dry,
            json: true,
            plan_path: dir.join("plan.json"),
            config_path: dir.join("migrate.toml"),
            world: &self.world,
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match cmd.op {
            Op::Apply => crate::apply::engine::apply(&req),
            Op::Rollback { cascade } => crate::apply::engine::rollback(&req, cascade),
            Op::Finalize => crate::apply::engine::finalize(&req),
            Op::Confirm => crate::apply::confirm::confirm(&req),
            Op::Watch => crate::apply::confirm::watch(&req, 0),
            Op::ForceUnlock => {
                let id = Lock::owner(&dir).ok().flatten().map(|o| o.id).unwrap_or("none".into());
                super::commands::status::force_unlock(&super::args::ForceUnlockArgs {
                    id,
                    state_dir: Some(dir.clone()),
                    config: None,
                    format: super::args::Format::Json,
                })
            }
        }));
        let mut inner = self.world.inner.borrow_mut();
        inner.faults.clear();
        inner.crash_at = None;
        match r {
            Ok(Ok(exit)) => End::Exit(exit.code()),
            Ok(Err(e)) => panic!("{cmd}: the engine failed: {e:#}"),
            Err(p) if p.is::<Crash>() => {
                // The dead process's lock stays, naming a process that is gone.
                if let Some((path, text)) = inner.stashed_lock.take() {
                    let mut o: crate::apply::lock::Owner = serde_json::from_str(&text).unwrap();
                    o.pid = u32::MAX - 1;
                    std::fs::write(path, serde_json::to_string(&o).unwrap()).unwrap();
                }
                End::Crash
            }
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    fn status(&self, h: usize) -> u8 {
        let a = super::args::StatusArgs {
            state_dir: Some(self.state_dir(h)),
            config: None,
            format: super::args::Format::Json,
        };
        super::commands::status::run(&a).unwrap().code()
    }

    /// Every byte of a host's state directory, and every effect.
    fn snapshot(&self, h: usize) -> (BTreeMap<PathBuf, Vec<u8>>, Effects) {
        let mut files = BTreeMap::new();
        let mut stack = vec![self.state_dir(h)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    files.insert(e.path(), std::fs::read(e.path()).unwrap());
                }
            }
        }
        (files, self.world.effects())
    }

    /// Runs one command on both sides and checks everything after it.
    fn step(&mut self, cmd: &Cmd) -> Result<(), String> {
        let h = cmd.host;
        if cmd.dry {
            let before = self.snapshot(h);
            self.world.inner.borrow_mut().events.clear();
            let got = self.engine(cmd, true);
            let (want, would) = self.model.run(cmd, true);
            if got != want {
                return Err(format!("dry run: the engine ended {got:?}, the model {want:?}"));
            }
            if self.snapshot(h) != before {
                return Err("the dry run changed the state directory or the world".into());
            }
            let printed = dry_run_steps(&self.world.inner.borrow().events);
            if matches!(want, End::Exit(0 | 6)) && printed != would {
                return Err(format!("dry run printed {printed:?}, the model {would:?}"));
            }
            let seen = Journal::read(&self.state_dir(h)).unwrap().len();
            let real = Cmd { dry: false, crash: None, fault: None, ..cmd.clone() };
            let end = self.real(&real)?;
            // The dry run exits as the real run does, waiting for the operator's confirmation
            // included; a check that pauses the wave (`on_fail = "pause"`) is the one thing it
            // cannot foresee.
            let paused_by_a_check =
                got == End::Exit(0) && end == End::Exit(6) && !self.model.mode.operator;
            if got != end && !paused_by_a_check {
                return Err(format!("the dry run ended {got:?}, the real run {end:?}"));
            }
            let journal = journaled_steps(&Journal::read(&self.state_dir(h)).unwrap()[seen..]);
            if matches!(end, End::Exit(0 | 6)) && matches!(want, End::Exit(0 | 6)) {
                if journal != printed {
                    return Err(format!(
                        "dry run printed {printed:?}, the real run journaled {journal:?}"
                    ));
                }
                if !printed.is_empty() {
                    self.count("dry run = journal".into());
                }
            }
            return self.check();
        }
        self.real(cmd)?;
        self.check()
    }

    /// The command for real: the engine's end must be the model's.
    fn real(&mut self, cmd: &Cmd) -> Result<End, String> {
        let got = self.engine(cmd, false);
        let (want, _) = self.model.run(cmd, false);
        if got != want {
            return Err(format!("the engine ended {got:?}, the model {want:?}"));
        }
        self.count(format!("{} {got:?}", cmd.op.name()));
        if cmd.op == Op::Apply && cmd.fault == Some(Fault::Verify) && self.model.mode.pause {
            self.count(format!("apply, its check failing, on_fail = pause: {got:?}"));
        }
        Ok(got)
    }

    fn count(&self, what: String) {
        *self.seen.borrow_mut().entry(what).or_default() += 1;
    }

    /// After every command, per host: status, state, journal, lock and effects as the model
    /// says; the reported states against the effects in place; the dependency order.
    fn check(&self) -> Result<(), String> {
        let effects = self.world.effects();
        if effects != self.model.effects {
            return Err(format!("effects {effects:?}, the model {:?}", self.model.effects));
        }
        let mut phases: BTreeMap<String, Option<Phase>> = BTreeMap::new();
        for (h, host) in HOSTS.iter().enumerate() {
            let dir = self.state_dir(h);
            let m = &self.model.hosts[h];
            let (got, want) = (self.status(h), self.model.status(h));
            if got != want {
                return Err(format!("status on {} exits {got}, the model {want}", host));
            }
            self.count(format!("status {got}"));
            let state = State::load(&dir).unwrap();
            let engine: BTreeMap<String, spec::Svc> = state
                .services
                .iter()
                .map(|(k, v)| {
                    let done = v.done.iter().copied().collect();
                    (k.clone(), spec::Svc { phase: v.phase, wave: v.wave, done })
                })
                .collect();
            if engine != m.state {
                return Err(format!("state on {}: {engine:?}, the model {:?}", host, m.state));
            }
            let dangling: BTreeSet<(String, usize)> =
                Journal::dangling(&Journal::read(&dir).unwrap())
                    .into_iter()
                    .map(|d| (d.intent.service, d.intent.step))
                    .collect();
            if dangling != m.dangling {
                return Err(format!("dangling intents {dangling:?}, the model {:?}", m.dangling));
            }
            if Lock::owner(&dir).unwrap().is_some() != m.locked {
                return Err(format!("lock on {}: the model says {}", host, m.locked));
            }
            for info in self.model.infos.iter().filter(|i| i.place.host == h) {
                let id = &info.place.id;
                let st = state.services.get(id);
                let phase = st.map(|s| s.phase);
                phases.insert(id.clone(), phase);
                reported_matches_effects(id, st, &effects)?;
            }
        }
        self.dependency_order(&phases)
    }

    /// No service that is unconfirmed, applied, finalizing or finalized depends on one that is
    /// legacy, applying or rolling back, on either host.
    fn dependency_order(&self, phases: &BTreeMap<String, Option<Phase>>) -> Result<(), String> {
        let moved = |p: Option<Phase>| {
            matches!(
                p,
                Some(Phase::Unconfirmed | Phase::Applied | Phase::Finalizing | Phase::Finalized)
            )
        };
        for info in &self.model.infos {
            if !moved(phases[&info.place.id]) {
                continue;
            }
            for d in &info.deps {
                let dp = phases[d];
                if matches!(dp, None | Some(Phase::Applying | Phase::RollingBack)) {
                    return Err(format!(
                        "{} is {:?} but depends on {d}, which is {dp:?}",
                        info.place.id, phases[&info.place.id]
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The state a service is reported in must be what is in place: legacy (nothing of the move),
/// moved (route, record, unit stopped, shim complete), finalized (and the node's state gone);
/// a service mid-way has at least the effects of the steps it records as done.
fn reported_matches_effects(
    id: &str,
    st: Option<&crate::apply::state::ServiceState>,
    e: &Effects,
) -> Result<(), String> {
    let has = [&e.route, &e.prepared, &e.stopped, &e.completed].map(|s| s.contains(id));
    let finalized = e.finalized.contains(id);
    let ok = match st.map(|s| s.phase) {
        None => has == [false; 4] && !finalized,
        Some(Phase::Unconfirmed | Phase::Applied) => has == [true; 4] && !finalized,
        Some(Phase::Finalizing) => has == [true; 4],
        Some(Phase::Finalized) => has == [true; 4] && finalized,
        Some(Phase::Applying) => {
            // Steps 0, 1, 3, 4 leave the route, the record, the stop, the shim's completion.
            let done = &st.expect("in the state").done;
            [0, 1, 3, 4].iter().zip(has).all(|(i, h)| !done.contains(i) || h) && !finalized
        }
        Some(Phase::RollingBack | Phase::Legacy) => !finalized,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{id} is reported {:?} with route/record/stopped/completed {has:?}, finalized {finalized}",
            st.map(|s| s.phase)
        ))
    }
}

/// The steps a dry run printed: (service, step).
fn dry_run_steps(events: &[serde_json::Value]) -> Vec<(String, usize)> {
    events
        .iter()
        .filter(|e| e["event"] == "would_run")
        .map(|e| {
            let step = e["step"].as_u64().map_or(spec::FINALIZE_STEP, |s| s as usize);
            (e["service"].as_str().unwrap_or_default().to_string(), step)
        })
        .collect()
}

/// The steps a run journaled: its intents, less the no-op closing of a check's intent.
fn journaled_steps(records: &[crate::apply::journal::Record]) -> Vec<(String, usize)> {
    records
        .iter()
        .filter(|r| r.kind == Kind::Intent && !r.what.starts_with("undo: verify"))
        .map(|r| (r.service.clone(), r.step))
        .collect()
}

/// Runs a sequence; the first mismatch, with the index of its command.
fn run(mode: Mode, cmds: &[Cmd]) -> Result<Seen, (usize, String)> {
    let mut case = Case::new(mode);
    case.check().map_err(|e| (0, e))?;
    for (i, c) in cmds.iter().enumerate() {
        case.step(c).map_err(|e| (i, e))?;
    }
    Ok(case.seen.into_inner())
}

/// The shortest failing sequence found by dropping commands one at a time.
fn shrink(mode: Mode, mut cmds: Vec<Cmd>) -> (Vec<Cmd>, usize, String) {
    let (mut at, mut why) = run(mode, &cmds).unwrap_err();
    cmds.truncate(at + 1);
    let mut i = 0;
    while i < cmds.len() {
        let mut shorter = cmds.clone();
        shorter.remove(i);
        match run(mode, &shorter) {
            Err((a, w)) => {
                shorter.truncate(a + 1);
                (cmds, at, why) = (shorter, a, w);
            }
            Ok(_) => i += 1,
        }
    }
    (cmds, at, why)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// What every run of 1,000 sequences or more must have seen, or the generator has gone blind.
const MUST_SEE: [&str; 23] = [
    "apply, its check failing, on_fail = pause: Exit(6)",
    "watch-confirm Exit(0)",
    "watch-confirm Crash",
    "apply Exit(0)",
    "apply Exit(3)",
    "apply Exit(4)",
    "apply Exit(6)",
    "apply Exit(8)",
    "apply Exit(9)",
    "apply Crash",
    "rollback Exit(0)",
    "rollback Exit(3)",
    "rollback Exit(9)",
    "rollback Crash",
    "rollback --cascade Exit(0)",
    "finalize Exit(0)",
    "finalize Crash",
    "confirm Exit(0)",
    "force-unlock Exit(0)",
    "status 9",
    "status 2",
    "status 0",
    "dry run = journal",
];

/// Runs the sequences of seeds `first + t`, `first + t + threads`, ...: what they saw, or the
/// first failure, shrunk, with its seed.
fn run_seeds(first: u64, cases: u64, t: u64, threads: u64) -> Result<Seen, String> {
    let mut seen = Seen::new();
    for seed in (first..first + cases).filter(|s| s % threads == t) {
        let (mode, cmds) = generate(seed);
        match run(mode, &cmds) {
            Ok(s) => s.into_iter().for_each(|(k, n)| *seen.entry(k).or_default() += n),
            Err(_) => {
                let (cmds, at, why) = shrink(mode, cmds);
                let listed: Vec<String> =
                    cmds.iter().enumerate().map(|(i, c)| format!("  {i}: {c}")).collect();
                return Err(format!(
                    "seed {seed} (replay: TAILSHIFT_MODEL_SEED={seed} TAILSHIFT_MODEL_CASES=1), {:?}, shrunk to:\n{}\ncommand {at}: {why}",
                    mode,
                    listed.join("\n")
                ));
            }
        }
    }
    Ok(seen)
}

#[test]
fn the_engine_does_what_the_model_says_across_two_hosts_and_three_waves() {
    let cases = env_u64("TAILSHIFT_MODEL_CASES").unwrap_or(2000);
    let first = env_u64("TAILSHIFT_MODEL_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    });
    // A crash is a panic the test catches: keep the default hook for every other panic.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.payload().is::<Crash>() {
            default(info);
        }
    }));
    fixture();
    let started = std::time::Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4) as u64;
    let results: Vec<Result<Seen, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || run_seeds(first, cases, t, threads)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "first seed {first}:\n{}",
        failures.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n\n")
    );
    let mut seen = Seen::new();
    for (k, n) in results.into_iter().flat_map(|r| r.unwrap()) {
        *seen.entry(k).or_default() += n;
    }
    eprintln!(
        "model: {cases} sequences from seed {first} in {:.1} s: {seen:?}",
        started.elapsed().as_secs_f64()
    );
    if cases >= 1000 {
        let missing: Vec<&str> = MUST_SEE.into_iter().filter(|k| !seen.contains_key(*k)).collect();
        assert!(missing.is_empty(), "never seen: {missing:?} (seen: {seen:?})");
    }
}
