//! `--cross-check`: the built-in reading against the real Nix's, service by service and value
//! by value, so a user can prove the built-in reading right for their configuration.

use crate::inventory::{Inventory, Presence, Service, Sourced};
use std::collections::BTreeMap;

/// What the two readings agree and differ on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CrossCheck {
    /// Services both list.
    pub services: usize,
    /// Values the built-in reading knows and Nix agrees with.
    pub agreed: usize,
    /// Values the built-in reading leaves unknown (Nix's value shown, not a difference).
    pub unknown: usize,
    /// Every difference: a service one lists and the other not, or a known value Nix gives
    /// otherwise.
    pub differences: Vec<String>,
}

fn key(s: &Service) -> (String, String) {
    (s.host.known().cloned().unwrap_or_else(|| "?".into()), s.name.clone())
}

/// Compares the built-in reading with Nix's.
pub fn cross_check(builtin: &Inventory, nix: &Inventory) -> CrossCheck {
    let mut out = CrossCheck::default();
    let ours: BTreeMap<_, _> = builtin.services.iter().map(|s| (key(s), s)).collect();
    let theirs: BTreeMap<_, _> = nix.services.iter().map(|s| (key(s), s)).collect();
    for ((host, name), s) in &ours {
        let Some(n) = theirs.get(&(host.clone(), name.clone())) else {
            if s.presence == Presence::Certain {
                out.differences.push(format!(
                    "{host}/{name}: listed by the built-in reading, absent from Nix's"
                ));
            }
            continue;
        };
        out.services += 1;
        for (opt, v) in &s.declared.0 {
            let Sourced::Known { value, .. } = v else {
                out.unknown += 1;
                continue;
            };
            match n.declared.get(opt) {
                Some(Sourced::Known { value: theirs, .. }) if theirs == value => out.agreed += 1,
                Some(Sourced::Known { value: theirs, .. }) => out
                    .differences
                    .push(format!("{host}/{name}.{opt}: built-in {value}, Nix {theirs}")),
                _ => out
                    .differences
                    .push(format!("{host}/{name}.{opt}: built-in {value}, Nix has no value")),
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
