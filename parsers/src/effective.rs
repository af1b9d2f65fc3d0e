//! From declared options to the options tsnsrv really ran with, per flavour
//! (`reference/tsnsrv.md` 1.1, 1.4, 1.5, 1.6, 2).
//!
//! The same declaration means different requests under different flavours: the fork's
//! `tsnsrv-all` YAML drops `stripPrefix = true` and never writes `recommendedProxyHeaders`, so
//! the upstream sees its own Host and unstripped paths. Each effective value says which rule
//! produced it.

use crate::defaults;
use crate::diagnostic::Diagnostic;
use crate::diagnostic::DiagnosticCode;
use crate::inventory::{Flavour, Options, Sourced};
use crate::options::{self, Opt, OptKind};
use serde_json::{Value as Json, json};

/// Where a service's declaration came from, which decides the defaults below it.
#[derive(Clone, Debug)]
pub enum Origin {
    /// The NixOS module (`.nix` or `nix eval --json`): module defaults, then the flavour's
    /// process defaults.
    Module {
        /// `services.tsnsrv.defaults` as declared.
        defaults: std::sync::Arc<Options>,
        /// Alphabetical position of the service on its host (the fork's per-service metrics port).
        index: usize,
    },
    /// A tsnsrv command line (units, scripts, cmdline copies): CLI defaults.
    Cli,
    /// The fork's `-service k=v,...` form: its own defaults.
    ServiceFlag,
    /// The fork's YAML: YAML defaults.
    Yaml,
    /// A `Serving` log line: only what it prints is known.
    Log,
}

fn is_null_or_empty(v: &Json) -> bool {
    match v {
        Json::Null => true,
        Json::Array(a) => a.is_empty(),
        Json::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Computes the effective options of one service.
pub fn effective(
    name: &str,
    declared: &Options,
    flavour: Flavour,
    origin: &Origin,
    findings: &mut Vec<Diagnostic>,
) -> Options {
    let fork = flavour.is_fork();
    let mut eff = Options::default();
    match origin {
        Origin::Module { defaults, index } => {
            module_level(declared, defaults, fork, &mut eff);
            match flavour {
                Flavour::Upstream | Flavour::Fork => {
                    cli_process_level(name, &mut eff, flavour, *index, findings);
                }
                Flavour::ForkAll => {
                    yaml_process_level(name, declared, defaults, &mut eff, findings)
                }
            }
        }
        Origin::Cli | Origin::ServiceFlag => {
            for (k, v) in declared {
                eff.set_named(k.clone(), v.clone());
            }
            let rule = if matches!(origin, Origin::ServiceFlag) {
                "default of the fork's -service k=v form"
            } else if fork {
                "tsnsrv CLI default (fork)"
            } else {
                "tsnsrv CLI default"
            };
            for o in options::OPTIONS {
                if eff.get(o.key).is_none()
                    && let Some(d) = defaults::cli(o.key, fork)
                {
                    eff.set(o.key, Sourced::default(d, rule));
                }
            }
            if eff.get(Opt::StateDir).is_none() {
                eff.set(
                    Opt::StateDir,
                    Sourced::unknown("no -stateDir: tsnsrv uses $TS_STATE_DIR, else ~/.config/tsnet-tsnsrv of its user", None),
                );
            }
        }
        Origin::Yaml => {
            for (k, v) in declared {
                eff.set_named(k.clone(), v.clone());
            }
            let rule = "fork YAML default (a missing key is Go's zero value; tsnsrv.md 1.6)";
            for o in options::OPTIONS {
                if eff.get(o.key).is_none()
                    && o.yaml.is_some()
                    && let Some(d) = defaults::yaml(o.key)
                {
                    eff.set(o.key, Sourced::default(d, rule));
                }
            }
            yaml_conditional_defaults(&mut eff);
            if eff.get(Opt::StateDir).is_none() {
                findings.push(
                    Diagnostic::warning(
                        DiagnosticCode::SharedStateDir,
                        format!("service {name} has no stateDir: tsnsrv falls back to ~/.config/tsnet-tsnsrv, shared by every such service (duplicate node keys)"),
                    )
                    .for_service(name),
                );
                eff.set(
                    Opt::StateDir,
                    Sourced::default(
                        json!("~/.config/tsnet-tsnsrv"),
                        "tsnet default state directory",
                    ),
                );
            }
        }
        Origin::Log => {
            for (k, v) in declared {
                eff.set_named(k.clone(), v.clone());
            }
            for o in options::OPTIONS {
                if eff.get(o.key).is_none()
                    && !matches!(o.kind, OptKind::UrlParts | OptKind::Package)
                {
                    eff.set(
                        o.key,
                        Sourced::unknown("tsnsrv's Serving log line does not print it", None),
                    );
                }
            }
        }
    }
    eff
}

/// What the NixOS module computes per service: declared values, `defaults.*`, module defaults,
/// and `toURL` from `urlParts`.
/// Per option (by index in [`options::OPTIONS`]): its module default, and whether it defaults to
/// `defaults.<name>` under upstream and under the fork. Computed once: string matching per
/// option per service dominated reading large fleets.
struct ModuleRules {
    default: Vec<Option<Json>>,
    from_defaults: [Vec<bool>; 2],
}

static MODULE_RULES: std::sync::LazyLock<ModuleRules> = std::sync::LazyLock::new(|| ModuleRules {
    default: options::OPTIONS.iter().map(|o| defaults::module(o.key)).collect(),
    from_defaults: [
        options::OPTIONS.iter().map(|o| defaults::from_defaults(o.key, false)).collect(),
        options::OPTIONS.iter().map(|o| defaults::from_defaults(o.key, true)).collect(),
    ],
});

fn module_level(declared: &Options, defaults: &Options, fork: bool, eff: &mut Options) {
    let rules = &*MODULE_RULES;
    for (i, o) in options::OPTIONS.iter().enumerate() {
        if !(if fork { o.fork_module } else { o.upstream_module }) {
            continue;
        }
        if let Some(v) = declared.get(o.key) {
            eff.set(o.key, v.clone());
            continue;
        }
        if matches!(o.kind, options::OptKind::UrlParts) || o.key == Opt::ToUrl {
            continue;
        }
        if rules.from_defaults[fork as usize][i]
            && let Some(v) = defaults.get(o.key)
        {
            let v = match v {
                Sourced::Known { value, .. } => Sourced::derived(
                    value.clone(),
                    format!("services.tsnsrv.defaults.{}", o.name),
                    v.location().cloned().into_iter().collect(),
                ),
                unknown => unknown.clone(),
            };
            eff.set(o.key, v);
            continue;
        }
        if let Some(d) = &rules.default[i] {
            eff.set(o.key, Sourced::default(d.clone(), "tsnsrv NixOS module default"));
        } else if o.key == Opt::AuthKeyPath {
            eff.set(
                o.key,
                Sourced::unknown(
                    "neither the service nor services.tsnsrv.defaults sets authKeyPath",
                    None,
                ),
            );
        }
    }
    if eff.get(Opt::ToUrl).is_none() {
        eff.set(
            Opt::ToUrl,
            url_from_parts(declared.get(Opt::UrlParts), defaults.get(Opt::UrlParts)),
        );
    }
}

/// `toURL` defaults to `"${protocol}://${host}:${port}"` from `urlParts` (module 1.1).
fn url_from_parts(own: Option<&Sourced<Json>>, defaults: Option<&Sourced<Json>>) -> Sourced<Json> {
    let mut from = Vec::new();
    let mut part = |key: &str| -> Result<Option<Json>, Sourced<Json>> {
        for src in [own, defaults].into_iter().flatten() {
            match src {
                Sourced::Known { value, .. } => {
                    if let Some(v) = value.get(key)
                        && !v.is_null()
                    {
                        from.extend(src.location().cloned());
                        return Ok(Some(v.clone()));
                    }
                }
                Sourced::Unknown { .. } => return Err(src.clone()),
            }
        }
        Ok(None)
    };
    let protocol = match part("protocol") {
        Ok(v) => v.unwrap_or(json!("http")),
        Err(u) => return u,
    };
    let host = match part("host") {
        Ok(Some(v)) => v,
        Ok(None) => {
            return Sourced::unknown(
                "neither toURL nor urlParts.host is set for this service",
                None,
            );
        }
        Err(u) => return u,
    };
    let port = match part("port") {
        Ok(Some(v)) => v,
        Ok(None) => {
            return Sourced::unknown(
                "neither toURL nor urlParts.port is set for this service",
                None,
            );
        }
        Err(u) => return u,
    };
    let s = |v: &Json| match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    from.dedup();
    Sourced::derived(
        json!(format!("{}://{}:{}", s(&protocol), s(&host), s(&port))),
        "toURL from urlParts (\"${protocol}://${host}:${port}\")",
        from,
    )
}

/// What the per-service systemd unit passes on top of the module (upstream 1.4, fork 1.5).
fn cli_process_level(
    name: &str,
    eff: &mut Options,
    flavour: Flavour,
    index: usize,
    findings: &mut Vec<Diagnostic>,
) {
    let fork = flavour.is_fork();
    eff.set(
        Opt::RecommendedProxyHeaders,
        Sourced::default(json!(true), "tsnsrv CLI default: the module has no option for it, so the upstream sees the original Host"),
    );
    eff.set(Opt::FunnelOnly, Sourced::default(json!(false), "tsnsrv CLI default"));
    eff.set(Opt::UpstreamTcpAddr, Sourced::default(Json::Null, "tsnsrv CLI default"));
    for (k, rule) in [
        (Opt::WhoisTimeout, "tsnsrv CLI default (-whoisTimeout=1s)"),
        (Opt::Timeout, "tsnsrv CLI default (-timeout=1m)"),
    ] {
        null_to(eff, k, defaults::cli(k, fork).unwrap_or_default(), rule);
    }
    if matches!(eff.get(Opt::ReadHeaderTimeout), Some(Sourced::Known { value: Json::Null, .. })) {
        let v = match eff.get(Opt::Funnel) {
            Some(Sourced::Known { value: Json::Bool(f), .. }) => Sourced::default(
                json!(if *f { "1s" } else { "0s" }),
                "tsnsrv NixOS module: 1s for funnel services, else 0s",
            ),
            _ => Sourced::unknown("depends on funnel, which is unknown", None),
        };
        eff.set(Opt::ReadHeaderTimeout, v);
    }
    // The module never turns suppressWhois into a flag (upstream 9f1ea2e; tsnsrv.md 1.4).
    if eff.bool(Opt::SuppressWhois) == Some(true)
        && !eff
            .list(Opt::ExtraArgs)
            .unwrap_or_default()
            .iter()
            .any(|a| a.trim_start_matches('-').starts_with("suppressWhois"))
    {
        let loc = eff.get(Opt::SuppressWhois).and_then(|s| s.location().cloned());
        findings.push(
            Diagnostic::warning(
                DiagnosticCode::ModuleOptionIgnored,
                format!("{name}: suppressWhois = true never reaches tsnsrv (the module drops it), so identity headers were sent"),
            )
            .at(loc)
            .for_service(name)
            .note("tailshift keeps what was in effect: whois on. Use extraArgs = [\"-suppressWhois\"] to really suppress it."),
        );
        eff.set(
            Opt::SuppressWhois,
            Sourced::default(
                json!(false),
                "the module never passes -suppressWhois (tsnsrv.md 1.4)",
            ),
        );
    }
    if flavour == Flavour::Upstream {
        eff.set(
            Opt::StateDir,
            Sourced::default(
                json!(format!("/var/lib/tsnsrv-{name}/tsnet-tsnsrv")),
                "upstream module: $STATE_DIRECTORY/tsnet-tsnsrv",
            ),
        );
        eff.set(
            Opt::PrometheusAddr,
            Sourced::default(
                defaults::cli(Opt::PrometheusAddr, false).unwrap_or_default(),
                "tsnsrv CLI default, bound on the service's tailnet node",
            ),
        );
        eff.set(Opt::EnableBugReports, Sourced::default(json!(false), "tsnsrv CLI default"));
    } else {
        eff.set(
            Opt::StateDir,
            Sourced::default(
                json!(format!("/var/lib/tsnsrv-{name}")),
                "fork module, separateProcesses = true",
            ),
        );
        eff.set(
            Opt::PrometheusAddr,
            Sourced::default(
                json!(format!(":{}", defaults::PROMETHEUS_PORT as usize + index)),
                "fork module: 9099 + the service's alphabetical index, on the host",
            ),
        );
        for h in [Opt::UpstreamHeaders, Opt::AuthCopyHeaders] {
            if eff
                .get(h)
                .and_then(|v| v.known())
                .and_then(|v| v.as_object())
                .is_some_and(|m| !m.is_empty())
            {
                let loc = eff.get(h).and_then(|s| s.location().cloned());
                findings.push(
                    Diagnostic::warning(
                        DiagnosticCode::UnitCannotStart,
                        format!("{name}: the fork's per-service unit passes {h} unescaped (\"Name: value\" splits at the space), so tsnsrv-{name} cannot have started"),
                    )
                    .at(loc)
                    .for_service(name)
                    .note("tsnsrv.md 1.5: arguments are joined without shell escaping; the service is down today"),
                );
            }
        }
    }
    if fork {
        for k in [Opt::AuthPath, Opt::AuthTimeout] {
            null_to(eff, k, defaults::cli(k, fork).unwrap_or_default(), "fork default");
        }
    }
    apply_extra_args(eff, fork, findings, name);
}

fn null_to(eff: &mut Options, key: Opt, v: Json, rule: &'static str) {
    if matches!(eff.get(key), None | Some(Sourced::Known { value: Json::Null, .. })) {
        eff.set(key, Sourced::default(v, rule));
    }
}

/// `extraArgs` are passed verbatim before the URL; later flags win in Go's flag package.
fn apply_extra_args(eff: &mut Options, fork: bool, findings: &mut Vec<Diagnostic>, name: &str) {
    if eff
        .get(Opt::ExtraArgs)
        .and_then(|v| v.known())
        .and_then(|v| v.as_array())
        .is_none_or(|a| a.is_empty())
    {
        return;
    }
    let Some(extra) = eff.list(Opt::ExtraArgs) else { return };
    let loc = eff.get(Opt::ExtraArgs).and_then(|s| s.location().cloned());
    let words: Vec<crate::cmdline::Word> =
        extra.iter().map(|w| crate::cmdline::Word { text: w.clone(), offset: 0 }).collect();
    let parsed = crate::cmdline::parse_flags(&words, fork);
    for (opt, value) in parsed.options {
        let v = match value {
            Sourced::Known { value, .. } => {
                Sourced::derived(value, "extraArgs", loc.clone().into_iter().collect())
            }
            u => u,
        };
        eff.set_named(opt, v);
    }
    for bad in parsed.unknown_flags {
        findings.push(
            Diagnostic::warning(
                DiagnosticCode::UnsupportedExtraArg,
                format!("{name}: extraArgs flag {bad} is not a tsnsrv flag tailshift knows"),
            )
            .at(loc.clone())
            .for_service(name),
        );
    }
}

/// What `tsnsrv-all` sees: the YAML the fork's module writes (only non-default values).
fn yaml_process_level(
    name: &str,
    declared: &Options,
    defaults: &Options,
    eff: &mut Options,
    findings: &mut Vec<Diagnostic>,
) {
    let rule_strip = "fork tsnsrv-all: the YAML omits stripPrefix = true and Go's zero value is false (tsnsrv.md 1.5)";
    match eff.get(Opt::StripPrefix) {
        Some(Sourced::Known { value: Json::Bool(false), .. }) => {}
        Some(Sourced::Unknown { .. }) => {}
        _ => {
            if let Some(Sourced::Known { value: Json::Bool(true), .. }) =
                declared.get(Opt::StripPrefix)
            {
                let loc = declared.get(Opt::StripPrefix).and_then(|s| s.location().cloned());
                findings.push(
                    Diagnostic::new(DiagnosticCode::YamlDefaultLost, crate::Severity::Info, format!("{name}: stripPrefix = true is not written to the tsnsrv-all YAML, so prefixes were not stripped"))
                        .at(loc)
                        .for_service(name),
                );
            }
            eff.set(Opt::StripPrefix, Sourced::default(json!(false), rule_strip));
        }
    }
    eff.set(
        Opt::RecommendedProxyHeaders,
        Sourced::default(json!(false), "fork tsnsrv-all: never written to the YAML, so false: the upstream sees its own Host (tsnsrv.md 1.5)"),
    );
    eff.set(Opt::FunnelOnly, Sourced::default(json!(false), "fork YAML default"));
    eff.set(Opt::UpstreamTcpAddr, Sourced::default(Json::Null, "fork YAML default"));
    null_to(
        eff,
        Opt::ReadHeaderTimeout,
        json!(defaults::READ_HEADER_TIMEOUT),
        "fork tsnsrv-all: the funnel 1s default is lost in the YAML (tsnsrv.md 1.5)",
    );
    null_to(eff, Opt::Timeout, json!(defaults::TIMEOUT), "fork YAML default");
    for ignored in [Opt::AcmeHost, Opt::ExtraArgs, Opt::Package, Opt::LoginServerUrl] {
        if let Some(v) = declared.get(ignored)
            && v.known().is_some_and(|j| !is_null_or_empty(j))
        {
            findings.push(
                Diagnostic::warning(
                    DiagnosticCode::OptionIgnored,
                    format!("{name}: {ignored} is ignored by the fork's tsnsrv-all mode"),
                )
                .at(v.location().cloned())
                .for_service(name),
            );
        }
    }
    eff.remove(Opt::ExtraArgs);
    eff.remove(Opt::AcmeHost);
    match defaults.get(Opt::AuthKeyPath) {
        Some(v @ Sourced::Known { value, .. }) => eff.set(
            Opt::AuthKeyPath,
            Sourced::derived(
                value.clone(),
                "tsnsrv-all loads only services.tsnsrv.defaults.authKeyPath",
                v.location().cloned().into_iter().collect(),
            ),
        ),
        Some(u) => eff.set(Opt::AuthKeyPath, u.clone()),
        None => eff.set(
            Opt::AuthKeyPath,
            Sourced::unknown("services.tsnsrv.defaults.authKeyPath is not set", None),
        ),
    }
    eff.set(
        Opt::StateDir,
        Sourced::default(
            json!(format!("/var/lib/tsnsrv-all/{name}")),
            "fork tsnsrv-all state layout",
        ),
    );
    yaml_conditional_defaults(eff);
}

/// YAML defaults that depend on other keys (tsnsrv.md 1.6).
fn yaml_conditional_defaults(eff: &mut Options) {
    let has_auth = eff.str(Opt::AuthUrl).is_some();
    if has_auth {
        null_to(
            eff,
            Opt::AuthPath,
            json!(defaults::AUTH_PATH),
            "fork YAML: default when authURL is set",
        );
        null_to(
            eff,
            Opt::AuthTimeout,
            json!(defaults::AUTH_TIMEOUT),
            "fork YAML: default when authURL is set",
        );
    } else {
        null_to(eff, Opt::AuthPath, Json::Null, "fork YAML: unused without authURL");
        null_to(eff, Opt::AuthTimeout, Json::Null, "fork YAML: unused without authURL");
    }
    if eff.bool(Opt::SuppressWhois) == Some(true) {
        null_to(eff, Opt::WhoisTimeout, Json::Null, "fork YAML: no lookup when suppressWhois");
    } else {
        null_to(
            eff,
            Opt::WhoisTimeout,
            json!(defaults::WHOIS_TIMEOUT),
            "fork YAML default (1s unless suppressWhois)",
        );
    }
}
