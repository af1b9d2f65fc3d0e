//! The command-line contract: flags, subcommands, terminal and JSON output, exit codes.

mod args;
pub(crate) mod commands;
#[cfg(test)]
mod model_test;
mod render;

use crate::exit::Exit;
pub use args::Command;
use clap::Parser;

/// Parses the command line. Usage errors print clap's message and map to exit code 1
/// (design section 6); `--help` and `--version` map to 0.
pub fn parse() -> Result<Command, Exit> {
    match args::Cli::try_parse() {
        Ok(cli) => Ok(cli.command),
        Err(e) => {
            let _ = e.print();
            Err(if e.use_stderr() { Exit::BadInput } else { Exit::Ok })
        }
    }
}

/// Runs a parsed command.
pub fn run(cmd: Command) -> anyhow::Result<Exit> {
    match cmd {
        Command::Inventory(a) => commands::inventory::run(&a),
        Command::Plan(a) => commands::plan::run(&a),
        Command::Proxy(a) => commands::proxy::run(&a),
        Command::Apply(a) => {
            commands::apply::run(&a.target, commands::apply::Action::Apply { dry_run: a.dry_run })
        }
        Command::Rollback(a) => commands::apply::run(
            &a.target,
            commands::apply::Action::Rollback { dry_run: a.dry_run, cascade: a.cascade },
        ),
        Command::Confirm(a) => commands::apply::run(&a.target, commands::apply::Action::Confirm),
        Command::Finalize(a) => commands::apply::run(
            &a.target,
            commands::apply::Action::Finalize { dry_run: a.dry_run, yes: a.yes },
        ),
        Command::WatchConfirm(w) => {
            commands::apply::run(&w.target, commands::apply::Action::Watch(w.deadline))
        }
        Command::Status(a) => commands::status::run(&a),
        Command::ForceUnlock(a) => commands::status::force_unlock(&a),
        Command::Demo(a) => commands::demo::run(&a),
        Command::Completions(a) => commands::completions::completions(&a),
        Command::Man(a) => commands::completions::man(&a),
    }
}
