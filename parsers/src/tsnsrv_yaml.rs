//! The fork's multi-service YAML (`tsnsrv -config file.yaml`, `reference/tsnsrv.md` 1.6).

use crate::diagnostic::Diagnostic;
use crate::diagnostic::DiagnosticCode;
use crate::effective::Origin;
use crate::inventory::{Flavour, Options, Sourced};
use crate::options;
use crate::source::{FileId, Location, SourceMap};
use crate::units::RawService;
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct File {
    #[serde(rename = "prometheusAddr")]
    prometheus_addr: Option<String>,
    #[serde(default)]
    services: Vec<BTreeMap<String, serde_yaml::Value>>,
}

fn to_json(v: &serde_yaml::Value) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

/// Line/column of each service entry's keys, found by scanning the text (serde has no spans).
fn key_locations(sources: &SourceMap, file: FileId) -> Vec<BTreeMap<String, Location>> {
    let text = sources.get(file).text.clone();
    let mut entries: Vec<BTreeMap<String, Location>> = Vec::new();
    let mut in_services = false;
    let mut item_indent = None;
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if indent == 0 {
            in_services = t.starts_with("services:");
            continue;
        }
        if !in_services {
            continue;
        }
        let (body, col) = if let Some(rest) = t.strip_prefix("- ") {
            if item_indent.is_none() || item_indent == Some(indent) {
                item_indent = Some(indent);
                entries.push(BTreeMap::new());
            }
            (rest.trim_start(), indent + 2 + (rest.len() - rest.trim_start().len()))
        } else {
            (t, indent)
        };
        if let Some((key, _)) = body.split_once(':')
            && !key.contains(' ')
            && let Some(e) = entries.last_mut()
        {
            e.entry(key.to_string())
                .or_insert_with(|| sources.location_at(file, i as u32 + 1, col as u32 + 1));
        }
    }
    entries
}

/// Reads the services of a YAML config. The host-level `prometheusAddr` is returned beside.
pub fn read_yaml(
    sources: &SourceMap,
    file: FileId,
) -> (Vec<RawService>, Option<Sourced<Json>>, Vec<Diagnostic>) {
    let text = sources.get(file).text.clone();
    let mut diags = Vec::new();
    let parsed: File = match serde_yaml::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            let loc =
                e.location().map(|l| sources.location_at(file, l.line() as u32, l.column() as u32));
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            diags.push(
                Diagnostic::error(
                    DiagnosticCode::SyntaxError,
                    format!("invalid tsnsrv YAML: {msg}"),
                )
                .at(loc)
                .len(1),
            );
            return (Vec::new(), None, diags);
        }
    };
    let locs = key_locations(sources, file);
    let prom = parsed.prometheus_addr.as_ref().map(|p| {
        let loc = text
            .lines()
            .position(|l| l.starts_with("prometheusAddr:"))
            .map(|i| sources.location_at(file, i as u32 + 1, 1));
        Sourced::declared(Json::String(p.clone()), loc)
    });
    let mut out = Vec::new();
    for (i, entry) in parsed.services.iter().enumerate() {
        let loc_of = |k: &str| locs.get(i).and_then(|m| m.get(k)).cloned();
        let Some(name) = entry.get("name").and_then(|v| v.as_str()).map(str::to_string) else {
            diags.push(
                Diagnostic::error(
                    DiagnosticCode::MissingName,
                    format!("service entry {} has no name", i + 1),
                )
                .at(loc_of("upstream")),
            );
            continue;
        };
        let mut declared = Options::default();
        let mut unsupported = Vec::new();
        let mut findings = Vec::new();
        for (k, v) in entry {
            if k == "name" {
                continue;
            }
            match options::by_yaml(k) {
                Some(spec) => declared.set(spec.key, Sourced::declared(to_json(v), loc_of(k))),
                None => {
                    unsupported.push((
                        k.clone(),
                        "not a key of the fork's YAML schema; tsnsrv ignores it".to_string(),
                    ));
                    findings.push(
                        Diagnostic::warning(
                            DiagnosticCode::UnknownAttribute,
                            format!(
                                "{name}: `{k}` is not a tsnsrv YAML key; tsnsrv silently ignores it"
                            ),
                        )
                        .at(loc_of(k))
                        .for_service(&name),
                    );
                }
            }
        }
        out.push(RawService {
            name,
            location: loc_of("name"),
            declared,
            origin: Origin::Yaml,
            flavour_hint: Some((
                Flavour::ForkAll,
                "a tsnsrv YAML config is the fork's tsnsrv-all".into(),
                loc_of("name"),
            )),
            findings,
            unsupported,
        });
    }
    (out, prom, diags)
}
