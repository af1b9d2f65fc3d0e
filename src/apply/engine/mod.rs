//! Applying and rolling back one wave of a plan on this host, step by step, with an intent
//! record before and a result record after every step (design section 3). Any failure, or a
//! check that does not match the baseline, rolls the wave back by itself (exit 4); a rollback
//! runs the inverses in reverse order with the route removed last, after a settle.

mod adapters;
mod apply;
mod common;
pub(crate) use common::event;
mod dry_run;
mod finalize;
mod preflight;
pub mod real;
mod rollback;
mod shared;
mod steps;
mod undo;
mod watcher;
pub mod world;

pub use apply::apply;
pub(crate) use common::lock;
pub use common::{Request, route_of};
pub use finalize::finalize;
pub use rollback::rollback;
