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
    })
}

/// Runs the command.
pub fn run(a: &InventoryArgs) -> anyhow::Result<Exit> {
    let opts = options(&a.input)?;
    let inv = tailshift_parsers::load(&a.input.paths, &opts).context("migrate inventory")?;
    match a.format {
        Format::Json => {
            let text = serde_json::to_string_pretty(&inv).context("serialising the inventory")?;
            println!("{text}");
        }
        Format::Table => {
            print!("{}", render::inventory_table(&inv));
            print!("{}", render::coverage_report(&inv));
            eprint!("{}", render::diagnostics(&inv.diagnostics));
        }
    }
    Ok(if inv.has_errors() { Exit::BadInput } else { Exit::Ok })
}
