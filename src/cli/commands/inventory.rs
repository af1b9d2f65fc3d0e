//! `migrate inventory`: read the inputs, print the table, the coverage report and diagnostics.

use crate::cli::args::{EvaluatorArg, FlavourArg, Format, InputArgs, InputKindArg, InventoryArgs};
use crate::cli::render;
use crate::exit::Exit;
use anyhow::Context;
use std::io::Read;
use tailshift_parsers::inventory::InputKind;
use tailshift_parsers::{Evaluator, Flavour, LoadOptions};

/// Builds the loader's options from the flags.
pub fn options(a: &InputArgs) -> anyhow::Result<LoadOptions> {
    let stdin = if a.from_nix_eval.iter().any(|p| p.as_os_str() == "-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading --from-nix-eval - from standard input")?;
        Some(s)
    } else {
        None
    };
    Ok(LoadOptions {
        host: a.host.clone(),
        input_kind: a.input_kind.map(|k| match k {
            InputKindArg::Nix => InputKind::Nix,
            InputKindArg::NixEval => InputKind::NixEval,
            InputKindArg::Unit => InputKind::Unit,
            InputKindArg::Script => InputKind::Script,
            InputKindArg::Cmdline => InputKind::Cmdline,
            InputKindArg::Log => InputKind::Log,
            InputKindArg::Yaml => InputKind::Yaml,
        }),
        tsnsrv: a.tsnsrv.map(|f| match f {
            FlavourArg::Upstream => Flavour::Upstream,
            FlavourArg::Fork => Flavour::Fork,
            FlavourArg::ForkAll => Flavour::ForkAll,
        }),
        nix_eval: a.from_nix_eval.clone(),
        stdin,
        evaluator: match a.evaluator {
            EvaluatorArg::Builtin => Evaluator::Builtin,
            EvaluatorArg::Nix => Evaluator::Nix,
        },
        nix: tailshift_parsers::real_nix::NixRun {
            override_inputs: a
                .override_input
                .chunks(2)
                .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
                .collect(),
        },
    })
}

/// Runs the command.
pub fn run(a: &InventoryArgs) -> anyhow::Result<Exit> {
    let opts = options(&a.input)?;
    let inv = tailshift_parsers::load(&a.input.paths, &opts).context("migrate inventory")?;
    let checked = if a.cross_check {
        let other =
            if opts.evaluator == Evaluator::Nix { Evaluator::Builtin } else { Evaluator::Nix };
        let other_opts = LoadOptions { evaluator: other, ..opts.clone() };
        let other_inv = tailshift_parsers::load(&a.input.paths, &other_opts)
            .context("migrate inventory --cross-check: the other evaluator")?;
        let (builtin, nix) =
            if other == Evaluator::Nix { (&inv, &other_inv) } else { (&other_inv, &inv) };
        Some(tailshift_parsers::crosscheck::cross_check(builtin, nix))
    } else {
        None
    };
    match a.format {
        Format::Json => {
            // The cross-check's result joins the inventory as `cross_check`.
            let text = match &checked {
                None => serde_json::to_string_pretty(&inv),
                Some(c) => {
                    #[derive(serde::Serialize)]
                    struct WithCheck<'a> {
                        #[serde(flatten)]
                        inventory: &'a tailshift_parsers::Inventory,
                        cross_check: &'a tailshift_parsers::crosscheck::CrossCheck,
                    }
                    serde_json::to_string_pretty(&WithCheck { inventory: &inv, cross_check: c })
                }
            }
            .context("serialising the inventory")?;
            println!("{text}");
        }
        Format::Table => {
            print!("{}", render::inventory_table(&inv));
            print!("{}", render::coverage_report(&inv));
            eprint!("{}", render::diagnostics(&inv.diagnostics));
        }
    }
    if let Some(c) = &checked {
        eprintln!(
            "cross-check (built-in against Nix): {} services in both, {} known values agree, {} left unknown by the built-in reading, {} difference(s)",
            c.services,
            c.agreed,
            c.unknown.len(),
            c.differences.len()
        );
        for d in &c.differences {
            eprintln!("  differs: {d}");
        }
        for u in &c.unknown {
            eprintln!("  unknown to the built-in reading: {u}");
        }
        for p in &c.conditional {
            eprintln!("  conditional: {p}");
        }
        if !c.differences.is_empty() {
            return Ok(Exit::BadInput);
        }
    }
    Ok(if inv.has_errors() || !inv.complete { Exit::BadInput } else { Exit::Ok })
}
