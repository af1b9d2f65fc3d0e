//! The demo from start to end: its options, the world it starts ([`World`]), its phases top
//! to bottom ([`phases`]: the environment ([`crate::setup`]), inventory and legacy nodes
//! ([`crate::inventory`]), plan ([`crate::plan`]), waves, rollback and re-apply
//! ([`crate::waves`]), measurements ([`crate::measure`])), the cleanup and the summary.

use crate::summary::{self, Summary};
use crate::waves::{Checker, Counter, Driver};
use crate::world::{World, install_signal_handlers, interrupted, say};
use crate::{inventory, measure, plan, setup, waves};
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use tailshift_util::exit::Exit;

/// `migrate demo`'s options.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `migrate` binary the demo runs for every step (`inventory`, `plan`, `proxy`,
    /// `apply`, `rollback`): the running one, when `migrate demo` runs it.
    pub migrate: PathBuf,
    /// Keep everything running after the summary (until Ctrl-C), and the directory afterwards.
    pub keep: bool,
    /// Move only the first N services (the others stay on their nodes).
    pub services: Option<usize>,
    /// Apply only the first N waves (0: set up and plan only; default: all).
    pub waves: Option<usize>,
    /// The summary as JSON on stdout.
    pub json: bool,
}

/// Runs the demo; the exit code says how it went (the summary says why).
pub fn run(opts: &Options) -> anyhow::Result<Exit> {
    let started = Instant::now();
    if opts.services == Some(0) {
        bail!("--services 0: the demo moves at least one service");
    }
    install_signal_handlers();
    let dir = std::env::temp_dir().join(format!(
        "tailshift-demo-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos()
    ));
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut world = World {
        dir: dir.clone(),
        rt: Some(rt),
        proxies: Vec::new(),
        listening: Vec::new(),
        load_stop: Arc::new(AtomicBool::new(false)),
        load: None,
    };
    let mut s = Summary { schema: "tailshift.demo/v1", ..Default::default() };
    let exit = match phases(opts, &mut world, &mut s) {
        Ok(e) => e,
        Err(e) if interrupted() => {
            s.problems.push(format!("interrupted: {e:#}"));
            Exit::Interrupted
        }
        Err(e) => {
            say(format!("error: {e:#}"));
            s.problems.push(format!("{e:#}"));
            Exit::BadInput
        }
    };
    let exit = if interrupted() { Exit::Interrupted } else { exit };
    if opts.keep && exit != Exit::Interrupted {
        s.exit_code = exit.code();
        s.elapsed_s = started.elapsed().as_secs_f64();
        print_summary(opts, &s)?;
        keep_until_interrupted(&mut world, &s);
        return Ok(exit);
    }
    // A failed run keeps its directory: the logs say why.
    let remove = exit == Exit::Ok || exit == Exit::Interrupted;
    say(if remove {
        "cleaning up: stopping the proxies, apps and nodes; removing the directory".to_string()
    } else {
        format!(
            "cleaning up: stopping the proxies, apps and nodes; the directory {} stays for its logs",
            dir.display()
        )
    });
    let c = world.cleanup(remove);
    if c.processes_left > 0 || !c.listening_left.is_empty() {
        s.problems.push(format!(
            "cleanup left {} processes and {:?} listening",
            c.processes_left, c.listening_left
        ));
    }
    s.cleanup = Some(c);
    s.ok = s.ok && s.problems.is_empty();
    s.exit_code = exit.code();
    s.elapsed_s = started.elapsed().as_secs_f64();
    print_summary(opts, &s)?;
    Ok(exit)
}

/// `--keep`: says how to try it by hand, keeps everything up until Ctrl-C, then stops it and
/// keeps the directory.
fn keep_until_interrupted(world: &mut World, s: &Summary) {
    say(format!(
        "--keep: everything stays up until Ctrl-C; the directory {} is kept. Try, for instance:",
        world.dir.display()
    ));
    for h in &s.environment.hosts {
        say(format!(
            "  migrate apply --wave 1 --host {} --config {} --plan {}",
            h.name, h.config, s.environment.plan
        ));
    }
    if let Some(v) = s.environment.services.first() {
        say(format!(
            "  curl --cacert {} --resolve {}:{}:<address> https://{}:{}/   (the address: dig @{} -p {} {})",
            s.environment.ca_file,
            v.name,
            s.environment.https_port,
            v.name,
            s.environment.https_port,
            s.environment.dns.split(':').next().unwrap_or_default(),
            s.environment.dns.rsplit(':').next().unwrap_or_default(),
            v.name
        ));
    }
    while !interrupted() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let c = world.cleanup(false);
    say(format!(
        "stopped: {} processes, {} addresses still listening; {} kept",
        c.processes_left,
        c.listening_left.len(),
        world.dir.display()
    ));
}

fn print_summary(opts: &Options, s: &Summary) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if opts.json {
        // One line: a reader of a `--keep` run can take it before the demo exits.
        let _ = writeln!(out, "{}", serde_json::to_string(s)?);
    } else {
        let _ = writeln!(out, "\n{}", summary::table(s));
    }
    let _ = out.flush();
    Ok(())
}

/// The phases, in order; the exit code of the run (an error: the environment, the inventory or
/// the plan could not be set up).
fn phases(opts: &Options, world: &mut World, s: &mut Summary) -> anyhow::Result<Exit> {
    say(format!(
        "tailshift demo: the example homelab (2 hosts, tsnsrv fork) migrated on loopback in {}",
        world.dir.display()
    ));
    let env = setup::environment(world, &opts.migrate)?;
    let apps = setup::start_apps(&env, world)?;
    let mut svcs = inventory::read(&env, &apps, s)?;
    let (listening, restarts) = inventory::start_legacy_nodes(&env, &apps, &svcs, world, s)?;
    let planned = plan::make(opts.services, &env, &apps, &mut svcs, s)?;

    let counter = Arc::new(Counter { restarts: Some(restarts), ..Counter::default() });
    world.load = Some(waves::start_traffic(&env, &svcs, &counter, &world.load_stop));
    let checker = Checker { checks: &env.checks, svcs: &svcs, counter: &counter };
    checker.baseline(&env)?;
    let driver = Driver { env: &env, homelab: &apps.homelab, plan: &planned.path };
    let Some((mut exit, last)) = waves::apply(opts.waves, &driver, &checker, &planned.waves, s)?
    else {
        return Ok(Exit::Interrupted);
    };
    if exit == Exit::Ok && last == planned.waves.len() && last > 0 && !interrupted() {
        exit = waves::rollback_and_reapply(last, &driver, &checker, s)?;
    } else {
        say("[4/5] rollback and re-apply skipped (not every wave was applied)");
    }
    measure::measure(&env, world, &checker, last, &listening, exit, s)
}
