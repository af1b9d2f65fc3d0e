//! Every default of a tsnsrv option, defined once (`reference/tsnsrv.md` 1.1, 1.4-1.6, 2): the
//! NixOS module's, the tsnsrv binary's (its flags), the fork's YAML's, and which per-service
//! options default to `services.tsnsrv.defaults.<same name>`.
//!
//! [`crate::effective`] applies them per flavour; code that needs "what tsnsrv does when the
//! option is not given" (the route conversion in `plans`) asks [`tsnsrv`], through the typed
//! accessors of [`crate::typed`].

use crate::options::Opt;
use serde_json::{Value as Json, json};

/// `authPath`: the fork's forward-auth endpoint.
pub const AUTH_PATH: &str = "/api/authz/forward-auth";
/// `authTimeout`: the fork's forward-auth deadline.
pub const AUTH_TIMEOUT: &str = "5s";
/// `whoisTimeout`: the deadline of each identity lookup.
pub const WHOIS_TIMEOUT: &str = "1s";
/// `listenAddr`.
pub const LISTEN_ADDR: &str = ":443";
/// `timeout`: the deadline for the node to come up.
pub const TIMEOUT: &str = "1m";
/// `readHeaderTimeout` of the binary (none).
pub const READ_HEADER_TIMEOUT: &str = "0s";
/// The port of `prometheusAddr` (the fork's module adds the service's index to it).
pub const PROMETHEUS_PORT: u16 = 9099;

/// The NixOS module's default of a per-service option (both flavours).
pub fn module(opt: Opt) -> Option<Json> {
    use Opt::*;
    Some(match opt {
        Funnel
        | InsecureHttps
        | Plaintext
        | SuppressWhois
        | SuppressTailnetDialer
        | Ephemeral
        | TsnetVerbose
        | UpstreamAllowInsecureCiphers
        | AuthInsecureHttps
        | AuthBypassForTailnet => json!(false),
        StripPrefix => json!(true),
        UpstreamUnixAddr | WhoisTimeout | ReadHeaderTimeout | LoginServerUrl | CertificateFile
        | CertificateKey | AcmeHost | Timeout | AuthUrl => Json::Null,
        Prefixes | SupplementalGroups | Tags | ExtraArgs => json!([]),
        UpstreamHeaders | AuthCopyHeaders => json!({}),
        ListenAddr => json!(LISTEN_ADDR),
        AuthPath => json!(AUTH_PATH),
        AuthTimeout => json!(AUTH_TIMEOUT),
        _ => return None,
    })
}

/// Whether a per-service option's module default is `services.tsnsrv.defaults.<same name>`.
pub fn from_defaults(opt: Opt, fork: bool) -> bool {
    use Opt::*;
    matches!(
        opt,
        AuthKeyPath
            | Ephemeral
            | ListenAddr
            | LoginServerUrl
            | Package
            | CertificateFile
            | CertificateKey
            | AcmeHost
            | SupplementalGroups
            | Tags
            | Timeout
            | TsnetVerbose
            | UpstreamAllowInsecureCiphers
    ) || (opt == ExtraArgs && !fork)
        || (fork && opt.name().starts_with("auth") && opt != AuthKeyPath)
}

/// The default of the tsnsrv binary's flag (the fork's binary when `fork`).
pub fn cli(opt: Opt, fork: bool) -> Option<Json> {
    use Opt::*;
    Some(match opt {
        ListenAddr => json!(LISTEN_ADDR),
        Plaintext
        | Funnel
        | FunnelOnly
        | Ephemeral
        | InsecureHttps
        | UpstreamAllowInsecureCiphers
        | SuppressWhois
        | SuppressTailnetDialer
        | TsnetVerbose => json!(false),
        StripPrefix | RecommendedProxyHeaders => json!(true),
        Tags | Prefixes => json!([]),
        UpstreamHeaders => json!({}),
        WhoisTimeout => json!(WHOIS_TIMEOUT),
        ReadHeaderTimeout => json!(READ_HEADER_TIMEOUT),
        Timeout => json!(TIMEOUT),
        CertificateFile | CertificateKey | UpstreamUnixAddr | UpstreamTcpAddr => Json::Null,
        PrometheusAddr => json!(format!(":{PROMETHEUS_PORT}")),
        EnableBugReports if !fork => json!(false),
        AuthUrl if fork => Json::Null,
        AuthPath if fork => json!(AUTH_PATH),
        AuthTimeout if fork => json!(AUTH_TIMEOUT),
        AuthCopyHeaders if fork => json!({}),
        AuthInsecureHttps | AuthBypassForTailnet if fork => json!(false),
        _ => return None,
    })
}

/// What tsnsrv does when an option is not given: the fork's binary's default (its flags are a
/// superset of upstream's, with the same defaults).
pub fn tsnsrv(opt: Opt) -> Option<Json> {
    cli(opt, true)
}

/// The default of a key missing from the fork's YAML (Go's zero value, mostly).
pub fn yaml(opt: Opt) -> Option<Json> {
    use Opt::*;
    Some(match opt {
        ListenAddr => json!(LISTEN_ADDR),
        Plaintext
        | Funnel
        | FunnelOnly
        | Ephemeral
        | InsecureHttps
        | UpstreamAllowInsecureCiphers
        | SuppressWhois
        | SuppressTailnetDialer
        | TsnetVerbose
        | AuthInsecureHttps
        | AuthBypassForTailnet => json!(false),
        // The YAML's Go struct has plain bools: a missing key is false (tsnsrv.md 1.5, 1.6).
        StripPrefix | RecommendedProxyHeaders => json!(false),
        Tags | Prefixes => json!([]),
        UpstreamHeaders | AuthCopyHeaders => json!({}),
        ReadHeaderTimeout => json!(READ_HEADER_TIMEOUT),
        Timeout => json!(TIMEOUT),
        CertificateFile | CertificateKey | UpstreamUnixAddr | UpstreamTcpAddr | AuthUrl => {
            Json::Null
        }
        _ => return None,
    })
}
