//! The route contract, from the plan to the proxy (design section 2): the [`Route`] each
//! service gets (made once, by `tailshift-plans`, when the plan is made, and sealed in it),
//! the validation of a route and of a whole table that needs no listener configuration
//! ([`validate_route`], [`validate_table`]), the header names the proxy keeps for itself
//! ([`headers`]), and the proxy's admin protocol ([`admin`]): the endpoints and bodies the
//! proxy serves and `migrate apply` sends. Light on purpose: serde, a URL type, nothing of
//! ours.

#![warn(missing_docs)]

pub mod admin;
pub mod headers;
mod route;
pub mod segment;
mod table;

pub use route::{
    AccessRule, ForwardAuth, HostHeader, Listen, Route, RouteHost, Timeouts, Upstream, Whois,
};
pub use table::{
    RouteError, is_dns_name, is_service_id, mount_problem, prefix_problem, redirect_problem,
    tcp_addr_problem, upstream_problem, validate_route, validate_table,
};
