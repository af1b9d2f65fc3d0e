//! The migration itself: a client through every old name for the whole run, a round of checks
//! through every old name before the first wave and after each step, every wave applied on
//! both hosts (`migrate apply`), then the last one rolled back and applied again.

use crate::inventory::Svc;
use crate::setup::Env;
use crate::summary::{self, CheckRound, Summary};
use crate::world::{HOSTS, interrupted, say};
use anyhow::{Context, bail};
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tailshift_checks::{CheckConfig, Outcome, check};
use tailshift_util::exit::Exit;

/// Counts of the client requests.
#[derive(Default)]
pub(crate) struct Counter {
    /// Requests made.
    pub total: AtomicU64,
    /// Answered 2xx.
    pub served: AtomicU64,
    /// Not.
    pub failed: AtomicU64,
    /// The first 20 failures.
    pub failures: Mutex<Vec<String>>,
    /// Not answered while their host's shared `tsnsrv-all` process restarted: the restart
    /// the plan announced, counted apart from failures.
    pub during_restart: AtomicU64,
    /// The shared process's restarts.
    pub restarts: Option<Arc<crate::nodes::Restarts>>,
}

impl Counter {
    /// Counts one outcome; true if it was a 2xx.
    fn count(&self, name: &str, o: &Outcome) -> bool {
        self.total.fetch_add(1, Ordering::Relaxed);
        let ok = matches!(o, Outcome::Status { code, .. } if (200..300).contains(code));
        if ok {
            self.served.fetch_add(1, Ordering::Relaxed);
        } else if self.restarts.as_ref().is_some_and(|r| r.covers(name)) {
            self.during_restart.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            if f.len() < 20 {
                f.push(format!("{name}: {o:?}"));
            }
        }
        ok
    }
}

/// A client requesting every old name in turn, every 5 ms, until `stop`.
pub(crate) fn start_traffic(
    env: &Env,
    svcs: &[Svc],
    counter: &Arc<Counter>,
    stop: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let (stop, counter, checks) = (stop.clone(), counter.clone(), env.checks.clone());
    let names: Vec<String> = svcs.iter().map(Svc::fqdn).collect();
    std::thread::spawn(move || {
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let name = &names[i % names.len()];
            counter.count(name, &check(&checks, name, "/"));
            i += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

/// Rounds of checks through every old name.
pub(crate) struct Checker<'a> {
    /// How a check reaches a name.
    pub checks: &'a CheckConfig,
    /// Every service.
    pub svcs: &'a [Svc],
    /// Where every request is counted.
    pub counter: &'a Counter,
}

impl Checker<'_> {
    /// One round, with waves up to `applied` applied: every name must answer, from its
    /// host's proxy if its wave was applied, else from its legacy node.
    pub fn round(&self, applied: usize) -> CheckRound {
        let mut r = CheckRound { names: self.svcs.len(), ..Default::default() };
        for v in self.svcs {
            let name = v.fqdn();
            let o = check(self.checks, &name, "/");
            if !self.counter.count(&name, &o) {
                r.failed.push(format!("{name}: {o:?}"));
                continue;
            }
            r.answered += 1;
            let Outcome::Status { addr, .. } = o else { continue };
            let proxy = HOSTS.iter().find(|h| h.0 == v.host).map(|h| IpAddr::V4(h.1));
            if Some(addr) == proxy {
                r.from_proxy += 1;
            }
            let want = if v.wave.is_some_and(|w| w <= applied) { proxy } else { Some(v.node) };
            if Some(addr) != want {
                r.misplaced.push(format!("{name} answered from {addr}"));
            }
        }
        r
    }

    /// The round before any wave: every old name answers from its legacy node, or the demo
    /// cannot show anything.
    pub fn baseline(&self, env: &Env) -> anyhow::Result<()> {
        let before = self.round(0);
        if before.answered != before.names || !before.misplaced.is_empty() {
            bail!(
                "before any wave, not every old name answers from its node: {:?} {:?}",
                before.failed,
                before.misplaced
            );
        }
        say(format!(
            "      every old name answers from its legacy node ({} names, DNS {}, HTTPS port {})",
            before.answered, env.dns, env.port
        ));
        Ok(())
    }
}

/// Runs `migrate apply` and `migrate rollback` of the plan on each host.
pub(crate) struct Driver<'a> {
    /// The environment.
    pub env: &'a Env,
    /// The example's copy (each host's configuration is `<homelab>/<host>.toml`).
    pub homelab: &'a Path,
    /// The plan file.
    pub plan: &'a Path,
}

impl Driver<'_> {
    /// Runs `migrate apply|rollback --wave N --host H --format json`, advancing the bar on
    /// every step event; stderr goes to `<dir>/<op>.log`. On Ctrl-C the child is interrupted
    /// too (it stops between steps, resumable). Returns its exit code.
    pub fn run(
        &self,
        op: &str,
        wave: usize,
        host: &str,
        bar: &indicatif::ProgressBar,
    ) -> anyhow::Result<i32> {
        let dir = &self.env.dir;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{op}.log")))?;
        let cfg = self.homelab.join(format!("{host}.toml"));
        let mut child = self
            .env
            .migrate(&[
                op,
                "--wave",
                &wave.to_string(),
                "--host",
                host,
                "--config",
                &cfg.display().to_string(),
                "--plan",
                &self.plan.display().to_string(),
                "--format",
                "json",
            ])?
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting migrate {op}"))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let events = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("events.ndjson"))?;
        let bar2 = bar.clone();
        let reader = std::thread::spawn(move || {
            use std::io::Write;
            let mut events = events;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(events, "{line}");
                if line.contains("\"event\":\"step\"") {
                    bar2.inc(1);
                }
            }
        });
        let mut signalled = false;
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            if interrupted() && !signalled {
                // SAFETY: signalling our own child by its pid.
                unsafe {
                    libc::kill(child.id() as libc::pid_t, libc::SIGINT);
                }
                signalled = true;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let _ = reader.join();
        Ok(status.code().unwrap_or(1))
    }

    /// Runs `op` of wave `n` on every host, in `hosts` order; the exit code per host.
    fn on_hosts<'h>(
        &self,
        op: &str,
        n: usize,
        hosts: impl Iterator<Item = &'h str>,
        bar: &indicatif::ProgressBar,
    ) -> anyhow::Result<Vec<(String, i32)>> {
        hosts.map(|h| Ok((h.to_string(), self.run(op, n, h, bar)?))).collect()
    }
}

/// Applies the first `only` waves (`--waves`; default: all) on both hosts, a check round after each;
/// stops at the first wave that does not apply. Returns the exit code so far and how many
/// waves were applied; `None` when interrupted between waves.
pub(crate) fn apply(
    only: Option<usize>,
    driver: &Driver,
    checker: &Checker,
    waves: &[serde_json::Value],
    s: &mut Summary,
) -> anyhow::Result<Option<(Exit, usize)>> {
    let last = only.unwrap_or(waves.len()).min(waves.len());
    say(format!("[3/5] applying {last} of {} waves on both hosts", waves.len()));
    let mut exit = Exit::Ok;
    let mut forecast =
        summary::Forecast { kind: "forecast", basis: String::new(), ..Default::default() };
    for w in waves.iter().take(last) {
        if interrupted() {
            return Ok(None);
        }
        let f = &w["forecast"];
        forecast.nodes_retired += f["nodes_retired"].as_u64().unwrap_or(0) as usize;
        forecast.cpu_freed_cores += f["cpu_freed_cores"].as_f64().unwrap_or(0.0);
        forecast.memory_freed_mb += f["memory_freed_mb"].as_f64().unwrap_or(0.0);
        let result = apply_wave(driver, checker, w)?;
        let (n, applied, codes) = (result.wave, result.applied, result.exit_codes.clone());
        let ok = applied && result.check.answered == result.check.names;
        let ok = ok && result.check.misplaced.is_empty();
        s.waves.push(result);
        if !applied {
            let code = codes.iter().map(|c| c.1).find(|c| *c != 0).unwrap_or(1);
            exit = Exit::from_code(code);
            s.problems.push(format!(
                "wave {n}: apply exited {codes:?}; the logs are in {}",
                driver.env.dir.display()
            ));
            break;
        }
        if !ok {
            exit = Exit::Unhealthy;
            s.problems.push(format!("wave {n}: not every old name answered from its place"));
        }
    }
    // The per-node cost the plan used, read back from the totals of the waves applied.
    let per_node = |total: f64, digits: usize| match forecast.nodes_retired {
        0 => "?".to_string(),
        n => format!("{:.digits$}", total / n as f64),
    };
    forecast.basis = format!(
        "the plan's cost of one tsnsrv node (plan.cost: {} cores, {} MB; docs/policy.md), times the nodes these {} waves retire",
        per_node(forecast.cpu_freed_cores, 3),
        per_node(forecast.memory_freed_mb, 0),
        s.waves.len()
    );
    s.forecast = forecast;
    Ok(Some((exit, last)))
}

/// Applies one wave (the plan file's JSON of it) on both hosts, with a progress bar of its
/// steps, then checks every name.
fn apply_wave(
    driver: &Driver,
    checker: &Checker,
    w: &serde_json::Value,
) -> anyhow::Result<summary::WaveResult> {
    let n = w["number"].as_u64().unwrap_or(0) as usize;
    let kind = w["kind"].as_str().unwrap_or("").to_string();
    let ids: Vec<String> = w["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect();
    let total_steps: u64 = w["steps"]
        .as_object()
        .map(|m| m.values().map(|v| v.as_array().map_or(0, |a| a.len() as u64)).sum())
        .unwrap_or(0);
    let bar = indicatif::ProgressBar::new(total_steps.max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "      wave {prefix:>2} {msg:<7} [{bar:30}] {pos}/{len} steps",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(n.to_string());
    bar.set_message(kind.clone());
    let t = Instant::now();
    let codes = driver.on_hosts("apply", n, HOSTS.iter().map(|h| h.0), &bar)?;
    bar.finish_and_clear();
    let applied = codes.iter().all(|(_, c)| *c == 0);
    let check = checker.round(if applied { n } else { n - 1 });
    say(format!(
        "      wave {n:>2} {kind:<7} {} services in {:.1} s: {}; {}/{} old names answer, {} from a proxy",
        ids.len(),
        t.elapsed().as_secs_f64(),
        if applied { "applied".to_string() } else { format!("FAILED {codes:?}") },
        check.answered,
        check.names,
        check.from_proxy
    ));
    Ok(summary::WaveResult {
        wave: n,
        kind,
        services: ids,
        applied,
        exit_codes: codes,
        seconds: t.elapsed().as_secs_f64(),
        check,
    })
}

/// Rolls wave `n` (the last) back on both hosts, then applies it again, a check round after
/// each. Returns [`Exit::Unhealthy`] if either did not hold.
pub(crate) fn rollback_and_reapply(
    n: usize,
    driver: &Driver,
    checker: &Checker,
    s: &mut Summary,
) -> anyhow::Result<Exit> {
    say(format!("[4/5] rolling wave {n} back on both hosts, then applying it again"));
    let bar = indicatif::ProgressBar::hidden();
    let hosts = || HOSTS.iter().map(|h| h.0);
    let rolled = driver.on_hosts("rollback", n, hosts().rev(), &bar)?.iter().all(|c| c.1 == 0);
    let after_rollback = checker.round(n - 1);
    let reapplied = driver.on_hosts("apply", n, hosts(), &bar)?.iter().all(|c| c.1 == 0);
    let after_reapply = checker.round(n);
    say(format!(
        "      rollback: {} ({}/{} answer, {} from a proxy); apply again: {} ({}/{} answer, {} from a proxy)",
        if rolled { "done" } else { "FAILED" },
        after_rollback.answered,
        after_rollback.names,
        after_rollback.from_proxy,
        if reapplied { "done" } else { "FAILED" },
        after_reapply.answered,
        after_reapply.names,
        after_reapply.from_proxy
    ));
    let ok = rolled
        && reapplied
        && [&after_rollback, &after_reapply]
            .iter()
            .all(|r| r.answered == r.names && r.misplaced.is_empty());
    let mut exit = Exit::Ok;
    if !ok {
        exit = Exit::Unhealthy;
        s.problems.push(format!("the rollback and re-apply of wave {n} did not hold"));
    }
    s.rollback = Some(summary::RollbackResult {
        wave: n,
        rolled_back: rolled,
        after_rollback,
        reapplied,
        after_reapply,
    });
    Ok(exit)
}
