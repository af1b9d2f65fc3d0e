//! One module per subcommand.

pub mod inventory;
