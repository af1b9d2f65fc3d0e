//! `--cross-check`: the built-in reading against the real Nix's, service by service and value
//! by value, so a user can prove the built-in reading right for their configuration.
//!
//! Nix gives every option of a service as the module system merges it: what the files define,
//! and the module's defaults (its own, and those taken from `services.tsnsrv.defaults`). The
//! built-in reading is compared at the same level: a service's declared value, else the value
//! it takes from `defaults` or the module's default. Values that depend on the flavour's own
//! semantics (the fork's `tsnsrv-all` YAML, CLI defaults) are not module values and are not
//! compared.

use crate::inventory::{Inventory, Presence, Service, Source, Sourced};
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// What the two readings agree and differ on.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CrossCheck {
    /// Services both list.
    pub services: usize,
    /// Values the built-in reading knows and Nix agrees with.
    pub agreed: usize,
    /// Values the built-in reading leaves unknown while Nix gives one (not a difference).
    pub unknown: Vec<String>,
    /// Every difference: a service one lists and the other not, or a known value Nix gives
    /// otherwise.
    pub differences: Vec<String>,
    /// What Nix says of services the built-in reading lists under a condition.
    pub conditional: Vec<String>,
}

fn key(s: &Service) -> (String, String) {
    (s.host.known().cloned().unwrap_or_else(|| "?".into()), s.name.clone())
}

/// The built-in reading's module-level value of an option: declared, else taken from
/// `defaults` or the module's default; `None` where the flavour's own semantics decide it.
fn module_value<'a>(s: &'a Service, opt: &str) -> Option<&'a Sourced<Json>> {
    if let Some(v) = s.declared.get_named(opt) {
        return Some(v);
    }
    let v = s.effective.get_named(opt)?;
    match v {
        Sourced::Known { source: Source::Default { rule }, .. }
            if rule.contains("NixOS module default") =>
        {
            Some(v)
        }
        Sourced::Known { source: Source::Derived { rule, .. }, .. }
            if rule.starts_with("services.tsnsrv.defaults.") =>
        {
            Some(v)
        }
        Sourced::Unknown { .. } => Some(v),
        _ => None,
    }
}

/// Compares the built-in reading with Nix's.
pub fn cross_check(builtin: &Inventory, nix: &Inventory) -> CrossCheck {
    let mut out = CrossCheck::default();
    let ours: BTreeMap<_, _> = builtin.services.iter().map(|s| (key(s), s)).collect();
    let theirs: BTreeMap<_, _> = nix.services.iter().map(|s| (key(s), s)).collect();
    for ((host, name), s) in &ours {
        let found = theirs.get(&(host.clone(), name.clone()));
        if let Presence::Conditional { condition, .. } = &s.presence {
            out.conditional.push(format!(
                "{host}/{name} exists only when {condition}: Nix's reading {} it",
                if found.is_some() { "has" } else { "does not have" }
            ));
        }
        let Some(n) = found else {
            if s.presence.is_certain() {
                out.differences.push(format!(
                    "{host}/{name}: listed by the built-in reading, absent from Nix's"
                ));
            }
            continue;
        };
        out.services += 1;
        for (opt, theirs) in &n.declared {
            let Sourced::Known { value: theirs, .. } = theirs else { continue };
            match module_value(s, opt) {
                Some(Sourced::Known { value, .. }) if value == theirs => out.agreed += 1,
                Some(Sourced::Known { value, .. }) => out
                    .differences
                    .push(format!("{host}/{name}.{opt}: built-in {value}, Nix {theirs}")),
                Some(Sourced::Unknown { .. }) => {
                    out.unknown.push(format!("{host}/{name}.{opt} (Nix: {theirs})"))
                }
                None => {}
            }
        }
        for (opt, v) in &s.declared {
            if let Sourced::Known { value, .. } = v
                && !matches!(n.declared.get_named(opt), Some(Sourced::Known { .. }))
            {
                out.differences
                    .push(format!("{host}/{name}.{opt}: built-in {value}, Nix has no value"));
            }
        }
    }
    for (host, name) in theirs.keys() {
        if !ours.contains_key(&(host.clone(), name.clone())) {
            out.differences
                .push(format!("{host}/{name}: in Nix's reading, missing from the built-in one"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LoadOptions, load};

    fn inventories(nix_json: &str) -> (Inventory, Inventory) {
        let d = tempfile::tempdir().unwrap();
        let host = d.path().join("host.nix");
        std::fs::write(
            &host,
            r#"{ lib, ... }: {
  networking.hostName = "box";
  services.tsnsrv.defaults.tags = [ "tag:web" ];
  services.tsnsrv.services.a.toURL = "http://a:1";
  services.tsnsrv.services.b = lib.mkIf false { toURL = "http://b:1"; };
}"#,
        )
        .unwrap();
        let json = d.path().join("eval.json");
        std::fs::write(&json, nix_json).unwrap();
        let ours = load(&[host], &LoadOptions::default()).unwrap();
        let opts = LoadOptions { host: Some("box".into()), ..LoadOptions::default() };
        let theirs = load(&[json], &opts).unwrap();
        (ours, theirs)
    }

    #[test]
    fn module_defaults_and_values_taken_from_defaults_are_compared() {
        let (ours, theirs) = inventories(
            r#"{ "services": { "a": { "toURL": "http://a:1", "funnel": true, "tags": ["tag:web"] } } }"#,
        );
        let c = cross_check(&ours, &theirs);
        assert_eq!(c.services, 1);
        // funnel: the module's default (false) against Nix's true.
        assert_eq!(c.differences, ["box/a.funnel: built-in false, Nix true"]);
        assert_eq!(c.agreed, 2, "toURL, and tags from defaults");
    }

    #[test]
    fn services_missing_on_either_side_are_differences() {
        let (ours, theirs) = inventories(
            r#"{ "services": { "a": { "toURL": "http://a:1" }, "c": { "toURL": "http://c:1" } } }"#,
        );
        let c = cross_check(&ours, &theirs);
        assert!(
            c.differences
                .contains(&"box/c: in Nix's reading, missing from the built-in one".to_string())
        );
    }
}
