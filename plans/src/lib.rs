//! Turns an [`Inventory`](tailshift_parsers::Inventory) and a [`Policy`] into a [`Plan`]: waves
//! that respect dependencies (a canary of low-risk services first, hubs such as the forward-auth
//! service on their own, the rest in schedule-sized waves), each service's continuity strategy,
//! placement, sealed [`Route`](tailshift_routes::Route) and ordered [`Step`]s, findings, and a tamper-evident plan file.
//!
//! Planning is a pure function of its inputs: the same inventory and policy give the same
//! plan, byte for byte (with `SOURCE_DATE_EPOCH` fixing the creation time).

#![warn(missing_docs)]

pub mod compare;
pub mod error;
pub mod graph;
pub mod id;
pub mod plan;
pub mod plan_file;
pub mod policy;
pub mod render;
pub mod route;
pub mod steps;

pub use error::PlanError;
pub use id::{Dependency, ServiceId};
pub use plan::{Plan, PlanOptions, Status, make_plan};
pub use policy::Policy;
pub use steps::{Step, Strategy};
