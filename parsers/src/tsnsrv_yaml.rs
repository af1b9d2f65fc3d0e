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

/// The process-level `prometheusAddr` of a YAML config (`None`: not given, the default).
pub fn prometheus_addr_of(text: &str) -> Result<Option<String>, String> {
    let f: File = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    Ok(f.prometheus_addr)
}

/// What the YAML reader makes of a service's options: the known value of every option the
/// fork's YAML has a key for (an option the service does not hold is `None`).
fn yaml_view(name: &str, eff: &Options) -> Result<BTreeMap<&'static str, Option<Json>>, String> {
    let mut out = BTreeMap::new();
    for o in options::OPTIONS.iter().filter(|o| o.yaml.is_some()) {
        let v = match eff.get(o.key) {
            None => None,
            Some(Sourced::Known { value, .. }) => Some(value.clone()),
            Some(Sourced::Unknown { reason, .. }) => {
                return Err(format!("{name}: {} is unknown ({reason})", o.name));
            }
        };
        out.insert(o.name, v);
    }
    Ok(out)
}

/// The effective options the fork's `tsnsrv-all` gives a YAML entry with these keys.
fn read_back(name: &str, keys: &BTreeMap<&'static str, Json>) -> Options {
    let mut declared = Options::default();
    for (k, v) in keys {
        declared.set_named(*k, Sourced::declared(v.clone(), None));
    }
    crate::effective::effective(name, &declared, Flavour::ForkAll, &Origin::Yaml, &mut Vec::new())
}

/// The fork's multi-service YAML (`tsnsrv -config`, `reference/tsnsrv.md` 1.6) for these
/// services, from their effective options, such that [`read_yaml`] gives every one of them
/// exactly the options it has now. Like the fork's module, only non-default values are
/// written, against the YAML's own defaults, quirks included (`stripPrefix` and
/// `recommendedProxyHeaders` are false when missing, `authPath`/`authTimeout` default only
/// with `authURL`, `whoisTimeout` only without `suppressWhois`, no `stateDir` means tsnet's
/// shared default): so a value the YAML would default differently is written out. Options the
/// YAML has no key for (the unit's package, groups, `loginServerUrl`) are the unit's, not the
/// file's. An option that is unknown, or a value the YAML cannot express, is an error naming
/// the service and the option: the file is never written with a guess.
pub fn write_yaml(
    prometheus_addr: Option<&str>,
    services: &[(&str, &Options)],
) -> Result<String, String> {
    let mut entries = Vec::new();
    let mut sorted: Vec<&(&str, &Options)> = services.iter().collect();
    sorted.sort_by_key(|(n, _)| *n);
    for (name, eff) in sorted {
        let target = yaml_view(name, eff)?;
        // Every known value, then each key dropped when the reader defaults it to the same.
        let mut keys: BTreeMap<&'static str, Json> =
            target.iter().filter_map(|(k, v)| Some((*k, v.clone()?))).collect();
        let same = |keys: &BTreeMap<&'static str, Json>| {
            yaml_view(name, &read_back(name, keys)).is_ok_and(|got| {
                target.iter().all(|(k, want)| want.is_none() || got.get(k) == Some(want))
            })
        };
        if !same(&keys) {
            let got = yaml_view(name, &read_back(name, &keys)).unwrap_or_default();
            let differ: Vec<&str> = target
                .iter()
                .filter(|(k, want)| want.is_some() && got.get(*k) != Some(*want))
                .map(|(k, _)| *k)
                .collect();
            return Err(format!("{name}: the fork's YAML cannot express {}", differ.join(", ")));
        }
        for o in options::OPTIONS.iter().filter(|o| o.yaml.is_some()) {
            let Some(v) = keys.remove(o.name) else { continue };
            if !same(&keys) {
                keys.insert(o.name, v);
            }
        }
        let mut m = serde_yaml::Mapping::new();
        m.insert("name".into(), (*name).into());
        for o in options::OPTIONS {
            let (Some(yaml_key), Some(v)) = (o.yaml, keys.get(o.name)) else { continue };
            let v = serde_yaml::to_value(v).map_err(|e| format!("{name}: {}: {e}", o.name))?;
            m.insert(yaml_key.into(), v);
        }
        entries.push(serde_yaml::Value::Mapping(m));
    }
    let mut top = serde_yaml::Mapping::new();
    if let Some(p) = prometheus_addr {
        top.insert("prometheusAddr".into(), p.into());
    }
    top.insert("services".into(), serde_yaml::Value::Sequence(entries));
    serde_yaml::to_string(&serde_yaml::Value::Mapping(top)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Flavour, Inventory, LoadOptions, load};

    /// A `tsnsrv-all` config of the shape the fork's module writes for a real host: forward
    /// auth on one service used by others, Funnel, prefixes, headers, a unix socket, tags,
    /// whois off, non-default timeouts, and the YAML's quirks (no stripPrefix, an authURL
    /// without authPath).
    const HOST: &str = r#"prometheusAddr: ":9199"
services:
- name: auth
  upstream: http://127.0.0.1:9091
  stateDir: /var/lib/tsnsrv-all/auth
  authkeyPath: /run/credentials/tsnsrv-all.service/authKey
  tags: [tag:tsnsrv, tag:auth]
- name: grafana
  upstream: http://127.0.0.1:3000
  stateDir: /var/lib/tsnsrv-all/grafana
  authkeyPath: /run/credentials/tsnsrv-all.service/authKey
  authURL: https://auth.tail1234.ts.net
  authCopyHeaders: {Remote-User: "", Remote-Groups: ""}
  authBypassForTailnet: true
  prefixes: [/api, /public]
  upstreamHeaders: {X-Grafana-Org: "1"}
- name: jellyfin
  upstream: http://127.0.0.1:8096
  stateDir: /var/lib/tsnsrv-all/jellyfin
  authkeyPath: /run/credentials/tsnsrv-all.service/authKey
  funnel: true
  readHeaderTimeout: 1s
  recommendedProxyHeaders: true
  timeout: 2m
- name: paperless
  upstream: http://paperless.local
  upstreamUnixAddr: /run/paperless/web.sock
  stateDir: /var/lib/tsnsrv-all/paperless
  authkeyPath: /run/credentials/tsnsrv-all.service/authKey
  authURL: https://auth.tail1234.ts.net
  authPath: /authz
  authTimeout: 10s
  suppressWhois: true
  stripPrefix: true
- name: syncthing
  upstream: https://127.0.0.1:8384
  stateDir: /var/lib/tsnsrv-all/syncthing
  authkeyPath: /run/credentials/tsnsrv-all.service/authKey
  insecureHTTPS: true
  listenAddr: ":8443"
  ephemeral: false
  whoisTimeout: 3s
"#;

    fn read(dir: &std::path::Path, text: &str) -> Inventory {
        let p = dir.join(format!("tsnsrv-{}.yaml", text.len()));
        std::fs::write(&p, text).unwrap();
        let opts = LoadOptions { host: Some("nas".into()), ..LoadOptions::default() };
        load(&[p], &opts).unwrap()
    }

    fn view(s: &crate::Service) -> BTreeMap<&'static str, Option<Json>> {
        yaml_view(&s.name, &s.effective).unwrap()
    }

    #[test]
    fn the_yaml_of_what_remains_reads_back_to_the_same_effective_options() {
        let dir = tempfile::tempdir().unwrap();
        let before = read(dir.path(), HOST);
        assert_eq!(before.services.len(), 5);
        assert!(before.services.iter().all(|s| s.flavour == Flavour::ForkAll));
        // grafana and syncthing move; the three others remain in the process.
        let remain: Vec<&crate::Service> = before
            .services
            .iter()
            .filter(|s| !["grafana", "syncthing"].contains(&s.name.as_str()))
            .collect();
        let prom = before.hosts[0].prometheus_addr.as_ref().and_then(|p| p.known()).cloned();
        let prom = prom.as_ref().and_then(Json::as_str);
        assert_eq!(prom, Some(":9199"));
        let text = write_yaml(
            prom,
            &remain.iter().map(|s| (s.name.as_str(), &s.effective)).collect::<Vec<_>>(),
        )
        .unwrap();
        let after = read(dir.path(), &text);
        assert_eq!(
            after.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            vec!["auth", "jellyfin", "paperless"],
            "{text}"
        );
        for s in &remain {
            let back = after.services.iter().find(|a| a.name == s.name).unwrap();
            assert_eq!(view(back), view(s), "{}: {text}", s.name);
        }
        assert_eq!(
            after.hosts[0].prometheus_addr,
            before.hosts[0].prometheus_addr.clone().map(|p| match p {
                Sourced::Known { value, .. } => Sourced::declared(
                    value,
                    after.hosts[0].prometheus_addr.as_ref().and_then(|a| a.location().cloned())
                ),
                u => u,
            })
        );
        assert_eq!(prometheus_addr_of(&text), Ok(Some(":9199".to_string())));
        // Only non-default values, as the fork's module writes them: the quirks kept.
        assert!(!text.contains("stripPrefix: false"), "false is the YAML's default: {text}");
        assert!(text.contains("stripPrefix: true"), "{text}");
        assert!(text.contains("authPath: /authz"), "{text}");
        assert!(!text.contains("authPath: /api/authz"), "{text}");
        assert!(text.contains("recommendedProxyHeaders: true"), "{text}");
        assert!(!text.contains("ephemeral"), "{text}");
    }

    #[test]
    fn the_forks_module_services_read_back_the_same_too() {
        // The same host declared through the fork's module in tsnsrv-all mode.
        let dir = tempfile::tempdir().unwrap();
        let nix = dir.path().join("nas.nix");
        std::fs::write(
            &nix,
            r#"{ ... }: {
  networking.hostName = "nas";
  services.tsnsrv = {
    enable = true;
    separateProcesses = false;
    defaults.authKeyPath = "/run/keys/tailscale";
    defaults.tags = [ "tag:tsnsrv" ];
    services = {
      auth = { toURL = "http://127.0.0.1:9091"; };
      grafana = { toURL = "http://127.0.0.1:3000"; authURL = "https://auth.tail1234.ts.net"; stripPrefix = true; prefixes = [ "/api" ]; upstreamHeaders = { X-Org = "1"; }; };
      jellyfin = { toURL = "http://127.0.0.1:8096"; funnel = true; };
      vault = { toURL = "https://127.0.0.1:8200"; insecureHTTPS = true; suppressWhois = true; listenAddr = ":8443"; };
    };
  };
}
"#,
        )
        .unwrap();
        let opts = LoadOptions { tsnsrv: Some(Flavour::ForkAll), ..LoadOptions::default() };
        let before = load(&[nix], &opts).unwrap();
        assert_eq!(before.services.len(), 4);
        let remain: Vec<&crate::Service> =
            before.services.iter().filter(|s| s.name != "auth").collect();
        let text = write_yaml(
            None,
            &remain.iter().map(|s| (s.name.as_str(), &s.effective)).collect::<Vec<_>>(),
        )
        .unwrap();
        let after = read(dir.path(), &text);
        for s in &remain {
            let back = after.services.iter().find(|a| a.name == s.name).unwrap();
            let (b, a) = (view(s), view(back));
            for (k, want) in &b {
                if want.is_some() {
                    assert_eq!(a.get(k), Some(want), "{}.{k}: {text}", s.name);
                }
            }
        }
        assert!(text.contains("stateDir: /var/lib/tsnsrv-all/vault"), "{text}");
    }

    #[test]
    fn an_unknown_option_is_refused_by_name() {
        let mut eff = Options::default();
        eff.set(crate::Opt::ToUrl, Sourced::unknown("from a let binding", None));
        let e = write_yaml(None, &[("app", &eff)]).unwrap_err();
        assert!(e.contains("app: toURL is unknown (from a let binding)"), "{e}");
    }
}
