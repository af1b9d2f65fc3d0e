//! `migrate demo`: the demo crate (`tailshift-demo`), which runs this same binary for every
//! `migrate` step of the migration it shows.

use crate::cli::args::{DemoArgs, Format};
use crate::exit::Exit;

/// Runs the command.
pub fn run(a: &DemoArgs) -> anyhow::Result<Exit> {
    tailshift_demo::run(&tailshift_demo::Options {
        keep: a.keep,
        services: a.services,
        waves: a.waves,
        json: a.format == Format::Json,
    })
}
