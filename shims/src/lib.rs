//! Keeps old hostnames working while services move (design section 3): one [`Shim`] trait and
//! its backends (`tailscale-services`, `headscale`, `split-dns`, `hosts`, `keep-node`), the
//! records files and the DNS responder that `migrate proxy` hosts. The Tailscale clients
//! (LocalAPI, admin API) are `tailshift-tailscale`'s. Inputs are the small
//! [`ShimService`] (and, for keep-node, the inventory's service); never the engine's or the
//! proxy's types. Every operation is idempotent, every file written atomically.

#![warn(missing_docs)]

pub mod atomic;
pub mod dns;
pub mod headscale;
pub mod hosts;
pub mod keep_node;
pub mod records;
pub mod services;
pub mod shim;
pub mod split_dns;

pub use shim::{Shim, ShimError, ShimService, Verification};
pub use tailshift_tailscale::{LocalApi, LocalApiError, admin_api, localapi};
