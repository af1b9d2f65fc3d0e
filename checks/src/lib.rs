//! The checks `migrate apply` and `migrate demo` share: a service is reached the way its users
//! reach it, by its old name. The name is resolved ([`resolve`]: through the configured DNS
//! server, or the system's resolver), TLS trusts what the proxy trusts ([`client_config`]: the
//! system's roots plus the configured CA), and one HTTPS request goes to that address with the
//! name as SNI and Host ([`check`], [`check_with`]); its [`Outcome`] is a status or why there
//! was none ([`CheckError`]).
//!
//! Everything here is blocking (std sockets, with the configured timeout); async callers use
//! [`resolve`] and [`client_config`] with their own connector.

mod config;
mod http;
mod resolution;
mod tls;

pub use config::CheckConfig;
pub use http::{CheckError, Outcome, check, check_with};
pub use resolution::{ResolveError, resolve};
pub use tailshift_util::trust::TrustError;
pub use tls::client_config;
