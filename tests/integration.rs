//! The one integration harness: runs the built `migrate` binary on real files.

mod apply;
mod bad_input;
mod boundaries;
mod corpus;
mod demo;
mod flake;
mod fleet;
mod incomplete;
mod inventory;
mod nixos;
mod packaging;
mod plan;
mod proxy;
mod repo_shaped;
mod status;
mod util;
