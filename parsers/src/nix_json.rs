//! `nix eval --json .#nixosConfigurations.<host>.config.services.tsnsrv` output.
//!
//! The JSON is scanned once for the positions of its keys so every value keeps a location.

use crate::diagnostic::Diagnostic;
use crate::diagnostic::DiagnosticCode;
use crate::inventory::{Options, Sourced};
use crate::nixos::{DeclaredService, ModuleView};
use crate::options::Opt;
use crate::source::{FileId, Location, SourceMap};
use serde_json::Value as Json;
use std::collections::HashMap;

/// Positions of object keys by JSON path (`/services/jellyfin/toURL`).
fn key_positions(text: &str) -> HashMap<String, usize> {
    let b = text.as_bytes();
    let mut out = HashMap::new();
    // Stack of (path, is_object, pending key).
    let mut stack: Vec<(String, bool)> = Vec::new();
    let mut i = 0;
    let mut last_key: Option<(String, usize)> = None;
    let mut array_index: Vec<usize> = Vec::new();
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i;
                i += 1;
                let mut s = String::new();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    s.push(b[i] as char);
                    i += 1;
                }
                // A string followed by ':' is a key.
                let mut j = i + 1;
                while j < b.len() && (b[j] as char).is_whitespace() {
                    j += 1;
                }
                if j < b.len() && b[j] == b':' && stack.last().is_some_and(|s| s.1) {
                    let path =
                        format!("{}/{}", stack.last().map(|s| s.0.as_str()).unwrap_or(""), s);
                    out.insert(path.clone(), start);
                    last_key = Some((path, start));
                }
            }
            b'{' | b'[' => {
                let parent = stack.last().map(|s| s.0.clone()).unwrap_or_default();
                let path = match (&last_key, stack.last()) {
                    (Some((k, _)), Some((_, true))) => k.clone(),
                    (_, Some((_, false))) => {
                        format!("{parent}/{}", array_index.last().copied().unwrap_or(0))
                    }
                    _ => parent,
                };
                stack.push((path, b[i] == b'{'));
                array_index.push(0);
                last_key = None;
            }
            b'}' | b']' => {
                stack.pop();
                array_index.pop();
                last_key = None;
            }
            b',' => {
                if let Some(n) = array_index.last_mut() {
                    *n += 1;
                }
                last_key = None;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Reads the JSON into the same view the Nix reader produces.
pub fn read_nix_eval(
    sources: &SourceMap,
    file: FileId,
    host: Option<&str>,
) -> (ModuleView, Vec<Diagnostic>) {
    let text = sources.get(file).text.clone();
    let mut diags = Vec::new();
    let mut view = ModuleView::empty(host.map(|h| Sourced::declared(h.to_string(), None)));
    let json: Json = match serde_json::from_str(&text) {
        Ok(j) => j,
        Err(e) => {
            let loc = sources.location_at(file, e.line() as u32, e.column() as u32);
            diags.push(
                Diagnostic::error(DiagnosticCode::SyntaxError, format!("invalid JSON: {e}"))
                    .at(Some(loc))
                    .len(1),
            );
            return (view, diags);
        }
    };
    let pos = key_positions(&text);
    let loc = |path: &str| -> Option<Location> {
        pos.get(path)
            .map(|o| sources.location(crate::Span { file, start: *o as u32, end: *o as u32 + 1 }))
    };
    // Accept both `config.services.tsnsrv` and a whole `config` with services.tsnsrv inside.
    let (root, prefix) = match json.pointer("/services/tsnsrv") {
        Some(r) if json.get("enable").is_none() => (r.clone(), "/services/tsnsrv"),
        _ => (json.clone(), ""),
    };
    let Some(obj) = root.as_object() else {
        diags.push(
            Diagnostic::error(
                DiagnosticCode::SyntaxError,
                "expected the JSON object of config.services.tsnsrv",
            )
            .at(loc("")),
        );
        return (view, diags);
    };
    if let Some(Json::Bool(b)) = obj.get("separateProcesses") {
        view.separate_processes =
            Some(Sourced::declared(*b, loc(&format!("{prefix}/separateProcesses"))));
    }
    if let Some(p) = obj.get(Opt::PrometheusAddr.name()) {
        view.prometheus_addr =
            Some(Sourced::declared(p.clone(), loc(&format!("{prefix}/prometheusAddr"))));
    }
    if let Some(Json::Object(d)) = obj.get("defaults") {
        let mut o = Options::default();
        for (k, v) in d {
            o.set_named(
                k.clone(),
                Sourced::declared(v.clone(), loc(&format!("{prefix}/defaults/{k}"))),
            );
        }
        view.defaults = o;
    }
    if let Some(Json::Object(svcs)) = obj.get("services") {
        for (name, attrs) in svcs {
            let base = format!("{prefix}/services/{name}");
            let mut declared = Options::default();
            if let Json::Object(a) = attrs {
                for (k, v) in a {
                    declared.set_named(
                        k.clone(),
                        Sourced::declared(v.clone(), loc(&format!("{base}/{k}"))),
                    );
                }
            }
            view.services.push(DeclaredService {
                name: name.clone(),
                location: loc(&base),
                declared,
                presence: crate::inventory::Presence::Certain,
            });
        }
    }
    (view, diags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_positions_follow_nesting() {
        let t = "{\n  \"services\": {\n    \"a\": { \"toURL\": \"x\" }\n  }\n}";
        let p = key_positions(t);
        assert_eq!(p["/services/a/toURL"], t.find("\"toURL\"").unwrap());
    }
}
