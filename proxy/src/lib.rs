//! The data plane that takes tsnsrv's place: routes, listeners, the admin socket. Requests are
//! routed by Host (or, behind tailscaled, by X-Forwarded-Host), then tsnsrv's rules apply.

pub mod access;
pub mod admin;
pub mod answer;
pub mod auth;
pub mod bind;
pub mod clean;
pub mod config;
pub mod dns;
pub mod error;
pub mod h1;
pub mod handler;
pub mod headers;
pub mod health;
pub mod listen;
pub mod metrics;
pub mod path;
pub mod pool;
pub mod prefix;
pub mod rfc2047;
pub mod routes;
pub mod server;
pub mod tls;
pub mod upstream;
pub mod watchdog;
pub mod whois;

pub use config::ProxyConfig;
pub use error::ProxyError;
