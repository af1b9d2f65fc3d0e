//! Reads what exists today (tsnsrv services declared in NixOS modules, `nix eval --json`
//! output, systemd units and start scripts, `/proc/<pid>/cmdline` copies, tsnsrv's startup log
//! lines, the fork's multi-service YAML) into one [`Inventory`].
//!
//! Every value keeps its source location; what cannot be known from the inputs (a nixpkgs
//! option default, a secret, a flake input) is an explicit [`Sourced::Unknown`] with the reason
//! and where it arose, never a guess.
//!
//! ```
//! use tailshift_parsers::{load, LoadOptions};
//! let dir = tempfile::tempdir().unwrap();
//! let host = dir.path().join("host.nix");
//! std::fs::write(&host, r#"{ lib, ... }: {
//!   networking.hostName = "box";
//!   services.tsnsrv.services.grafana.toURL = "http://127.0.0.1:3000";
//! }"#).unwrap();
//! let inv = load(&[host], &LoadOptions::default()).unwrap();
//! let svc = &inv.services[0];
//! assert_eq!(svc.name, "grafana");
//! assert_eq!(svc.effective.str("toURL"), Some("http://127.0.0.1:3000"));
//! ```

pub mod diagnostic;
pub mod nix;
pub mod source;

pub use diagnostic::{Diagnostic, Severity};
pub use source::{Location, SourceMap, Span};
