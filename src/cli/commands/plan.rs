//! `migrate plan`: inventory + policy -> plan file and documents; `--check` judges a saved plan.

use crate::cli::args::{PlanArgs, PlanFormat};
use crate::cli::commands::inventory::options;
use crate::cli::render;
use crate::exit::Exit;
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tailshift_parsers::{Flavour, LoadOptions};
use tailshift_plans::{PlanOptions, Policy, make_plan, plan_file};

fn record_options(o: &LoadOptions) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(h) = &o.host {
        m.insert("host".into(), h.clone());
    }
    if let Some(f) = o.tsnsrv {
        m.insert("tsnsrv".into(), f.as_str().into());
    }
    if let Some(k) = o.input_kind {
        m.insert("input_kind".into(), k.as_str().into());
    }
    if o.evaluator == tailshift_parsers::Evaluator::Nix {
        m.insert("evaluator".into(), "nix".into());
    }
    if !o.nix.override_inputs.is_empty() {
        m.insert(
            "override_input".into(),
            o.nix
                .override_inputs
                .iter()
                .map(|(a, b)| format!("{a} {b}"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    if !o.nix_eval.is_empty() {
        m.insert(
            "from_nix_eval".into(),
            o.nix_eval.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join("\n"),
        );
    }
    m
}

pub(crate) fn replay_options(m: &BTreeMap<String, String>) -> LoadOptions {
    LoadOptions {
        host: m.get("host").cloned(),
        tsnsrv: m.get("tsnsrv").and_then(|f| match f.as_str() {
            "upstream" => Some(Flavour::Upstream),
            "fork" => Some(Flavour::Fork),
            "fork-all" => Some(Flavour::ForkAll),
            _ => None,
        }),
        nix_eval: m
            .get("from_nix_eval")
            .map(|s| s.lines().map(PathBuf::from).collect())
            .unwrap_or_default(),
        input_kind: m
            .get("input_kind")
            .and_then(|k| tailshift_parsers::inventory::InputKind::parse(k)),
        evaluator: if m.get("evaluator").is_some_and(|e| e == "nix") {
            tailshift_parsers::Evaluator::Nix
        } else {
            tailshift_parsers::Evaluator::Builtin
        },
        nix: tailshift_parsers::real_nix::NixRun {
            override_inputs: m
                .get("override_input")
                .map(|s| {
                    s.lines()
                        .filter_map(|l| l.split_once(' '))
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        },
        ..LoadOptions::default()
    }
}

fn load_policy(path: &Path) -> anyhow::Result<Policy> {
    Ok(Policy::load(path)?)
}

/// Runs the command.
pub fn run(a: &PlanArgs) -> anyhow::Result<Exit> {
    if let Some(saved) = &a.check {
        return check(saved, a);
    }
    let mut policy = load_policy(&a.config)?;
    if policy.tailnet.is_empty() {
        // The one node's own tailnet: its MagicDNS suffix (reference/tailscale.md section 9).
        let suffix = tailshift_shims::LocalApi::new(&a.localapi_socket).magic_dns_suffix().with_context(|| {
            format!("{}: plan.tailnet is not set, and the LocalAPI cannot tell it; set plan.tailnet", a.config.display())
        })?;
        policy.tailnet = suffix;
    }
    let opts = options(&a.input)?;
    let inv = tailshift_parsers::load(&a.input.paths, &opts).context("reading the inventory")?;
    let blocking = inv.diagnostics.iter().any(|d| {
        d.severity == tailshift_parsers::Severity::Error
            && !(a.allow_incomplete
                && d.code == tailshift_parsers::DiagnosticCode::ServicesUnreadable)
    });
    if blocking || (!inv.complete && !a.allow_incomplete) {
        eprint!("{}", render::diagnostics(&inv.diagnostics));
        if !inv.complete && !a.allow_incomplete {
            let why: Vec<String> = inv
                .hosts
                .iter()
                .flat_map(|h| h.incomplete.iter())
                .map(|i| match &i.location {
                    Some(l) => format!("  {l}: {}", i.reason),
                    None => format!("  {}", i.reason),
                })
                .collect();
            anyhow::bail!(
                "the inventory is incomplete: the names of some services cannot be known, so the plan could leave services out:\n{}\nmake those definitions readable, or plan anyway with --allow-incomplete (the plan then records that it may miss services)",
                why.join("\n")
            );
        }
        anyhow::bail!("the inventory has errors (see above): fix them before planning");
    }
    if !inv.complete {
        eprint!("{}", render::diagnostics(&inv.diagnostics));
        eprintln!(
            "warning: planning from an incomplete inventory (--allow-incomplete): services may be missing from this plan"
        );
    }
    let plan = make_plan(&inv, &policy, &PlanOptions { accept_unknown: a.accept_unknown })?;
    let mut plan = plan;
    plan.input_options = record_options(&opts);
    plan.inputs = a.input.paths.iter().map(|p| p.display().to_string()).collect();
    plan.policy_file = Some(a.config.display().to_string());
    let plan = plan_file::seal(plan, &inv, &policy, plan_file::now_unix());
    let out = a.out.clone().unwrap_or_else(|| {
        a.config
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("plan.json")
    });
    // Read the old plan before writing the new one: they may be the same file.
    let old = match &a.compare {
        Some(p) => Some(plan_file::read(p)?),
        None => None,
    };
    let text = plan_file::to_text(&plan);
    plan_file::write_atomic(&out, &text)?;
    match a.format {
        PlanFormat::Table => {
            print!("{}", tailshift_plans::render::table(&plan));
            println!("\nplan written to {}", out.display());
        }
        PlanFormat::Json => print!("{text}"),
        PlanFormat::Markdown => print!("{}", tailshift_plans::render::markdown(&plan)),
        PlanFormat::Dot => print!("{}", tailshift_plans::render::dot(&plan)),
        PlanFormat::Mermaid => print!("{}", tailshift_plans::render::mermaid(&plan)),
        PlanFormat::Routes => {
            let routes = routes_of(&plan)?;
            println!("{}", serde_json::to_string_pretty(&routes)?);
        }
    }
    if let Some(old) = old {
        // On stderr when stdout carries a document, so the document stays parseable.
        let text = tailshift_plans::compare::render(&old, &plan);
        if a.format == PlanFormat::Table { print!("{text}") } else { eprint!("{text}") }
    }
    Ok(Exit::Ok)
}

/// The route table of every planned service: the routes sealed in the plan.
fn routes_of(plan: &tailshift_plans::Plan) -> anyhow::Result<Vec<tailshift_routes::Route>> {
    let routes = plan
        .services
        .iter()
        .filter(|s| s.status == tailshift_plans::Status::Planned)
        .map(|s| crate::apply::engine::route_of(s).cloned())
        .collect::<anyhow::Result<Vec<_>>>()?;
    tailshift_routes::validate_table(&routes)?;
    Ok(routes)
}

/// Why a saved plan no longer matches its inputs and planning keys, if it does not.
pub fn staleness(
    plan: &tailshift_plans::Plan,
    config: &Path,
    localapi_socket: &Path,
) -> anyhow::Result<Option<String>> {
    if !plan_file::intact(plan) {
        return Ok(Some(plan_file::Staleness::Edited.to_string()));
    }
    let policy_path =
        plan.policy_file.clone().map(PathBuf::from).unwrap_or_else(|| config.to_path_buf());
    let mut policy = load_policy(&policy_path)?;
    if policy.tailnet.is_empty() {
        // Read from the LocalAPI when the plan was made: ask again, or assume the same tailnet.
        policy.tailnet = tailshift_shims::LocalApi::new(localapi_socket)
            .magic_dns_suffix()
            .unwrap_or_else(|_| plan.tailnet.clone());
    }
    let paths: Vec<PathBuf> = plan.inputs.iter().map(PathBuf::from).collect();
    let inv = tailshift_parsers::load(&paths, &replay_options(&plan.input_options))
        .context("re-reading the plan's inputs")?;
    Ok(plan_file::check(plan, &inv, &policy).err().map(|why| why.to_string()))
}

fn check(saved: &Path, a: &PlanArgs) -> anyhow::Result<Exit> {
    let plan = plan_file::read(saved)?;
    let why = staleness(&plan, &a.config, &a.localapi_socket)?;
    if a.format == PlanFormat::Json {
        let out = serde_json::json!({
            "schema": "tailshift.plan-check/v1",
            "plan": saved,
            "plan_id": plan.plan_id,
            "current": why.is_none(),
            "stale_because": why,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(if why.is_none() { Exit::Ok } else { Exit::StalePlan });
    }
    match why {
        None => {
            println!("plan {} is current: inputs and planning keys unchanged", plan.plan_id);
            Ok(Exit::Ok)
        }
        Some(why) => {
            eprintln!("stale plan {}: {why}", saved.display());
            Ok(Exit::StalePlan)
        }
    }
}
