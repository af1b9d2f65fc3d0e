//! One module per subcommand.

pub mod apply;
pub mod completions;
pub mod demo;
pub mod inventory;
pub mod plan;
pub mod proxy;
pub mod status;
