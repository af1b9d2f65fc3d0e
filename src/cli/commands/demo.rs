//! `migrate demo`: the demo crate (`tailshift-demo`), which runs this same binary for every
//! `migrate` step of the migration it shows.

use crate::cli::args::{DemoArgs, Format};
use crate::exit::Exit;
use anyhow::Context;

/// Runs the command.
pub fn run(a: &DemoArgs) -> anyhow::Result<Exit> {
    tailshift_demo::run(&tailshift_demo::Options {
        migrate: std::env::current_exe().context("finding the migrate binary")?,
        keep: a.keep,
        services: a.services,
        waves: a.waves,
        json: a.format == Format::Json,
    })
}
