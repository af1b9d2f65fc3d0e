//! Reads what exists today (tsnsrv services declared in NixOS modules, `nix eval --json`
//! output, systemd units and start scripts, `/proc/<pid>/cmdline` copies, tsnsrv's startup log
//! lines, the fork's multi-service YAML) into one [`Inventory`].
//!
//! Every value keeps its source location; what cannot be known from the inputs (a nixpkgs
//! option default, a secret, a flake input) is an explicit [`Sourced::Unknown`] with the reason
//! and where it arose, never a guess.
//!
//! Options are stored under their tsnsrv names; code asks for one by its [`Opt`], through the
//! typed accessors of [`typed`] (a URL is parsed there and nowhere else); their defaults are in
//! [`defaults`]. Diagnostics carry a [`DiagnosticCode`].
//!
//! ```
//! use tailshift_parsers::{load, LoadOptions, Opt};
//! let dir = tempfile::tempdir().unwrap();
//! let host = dir.path().join("host.nix");
//! std::fs::write(&host, r#"{ lib, ... }: {
//!   networking.hostName = "box";
//!   services.tsnsrv.services.grafana.toURL = "http://127.0.0.1:3000";
//! }"#).unwrap();
//! let inv = load(&[host], &LoadOptions::default()).unwrap();
//! let svc = &inv.services[0];
//! assert_eq!(svc.name, "grafana");
//! assert_eq!(svc.effective.str(Opt::ToUrl), Some("http://127.0.0.1:3000"));
//! ```

#![warn(missing_docs)]

pub mod cmdline;
pub mod crosscheck;
pub mod defaults;
pub mod diagnostic;
pub mod effective;
pub mod flake;
pub mod inventory;
pub mod load;
pub mod nix;
pub mod nix_json;
pub mod nixos;
pub mod options;
pub mod par;
pub mod real_nix;
pub mod roots;
pub mod source;
pub mod tsnsrv_yaml;
pub mod typed;
pub mod units;
pub mod validate;
pub mod walk;

pub use diagnostic::{Diagnostic, DiagnosticCode, Severity};
pub use inventory::{
    Coverage, Flavour, Inventory, Moved, Options, Presence, Service, Source, Sourced,
};
pub use load::{Evaluator, LoadError, LoadOptions, load};
pub use options::Opt;
pub use source::{Location, SourceMap, Span};
pub use typed::{ListenAddr, OptionError, go_duration_ms};
