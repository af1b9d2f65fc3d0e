//! Every tsnsrv option, where each flavour accepts it, and how it is spelled in the NixOS
//! module, on the command line and in the fork's YAML (`reference/tsnsrv.md` sections 1-2).

/// The value type of an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptKind {
    /// true/false.
    Bool,
    /// A string.
    Str,
    /// A URL string (`http://127.0.0.1:8096`), read as a [`url::Url`].
    Url,
    /// A Go listen address (`:443`, `0.0.0.0:8443`), read as a [`crate::typed::ListenAddr`].
    Address,
    /// A Go duration string such as `1s`.
    Duration,
    /// A list of strings (repeated flag on the command line).
    List,
    /// A string-to-string map (`Name: value` flags on the command line).
    Map,
    /// `urlParts` (module only).
    UrlParts,
    /// A Nix package (module only).
    Package,
}

impl OptKind {
    /// Whether the value is written as a string (or null): strings, URLs, addresses, durations.
    pub fn is_text(self) -> bool {
        matches!(self, OptKind::Str | OptKind::Url | OptKind::Address | OptKind::Duration)
    }
}

/// One tsnsrv option.
#[derive(Debug)]
pub struct OptionSpec {
    /// The option, the way code asks for it.
    pub key: Opt,
    /// Canonical name: the NixOS module's option name, or the CLI flag's when the module has none.
    /// It is the name the inventory's JSON stores the option under.
    pub name: &'static str,
    /// Value type.
    pub kind: OptKind,
    /// Declared by upstream's NixOS module per service.
    pub upstream_module: bool,
    /// Declared by the fork's NixOS module per service.
    pub fork_module: bool,
    /// CLI flag name (without `-`), if any.
    pub flag: Option<&'static str>,
    /// Only the fork's binary knows the flag.
    pub fork_only: bool,
    /// Key in the fork's YAML, if any.
    pub yaml: Option<&'static str>,
    /// One line for the coverage report and docs.
    pub doc: &'static str,
}

/// Defines [`Opt`] and [`OPTIONS`] from one list, so each option's name is written once and the
/// table is in the enum's order.
macro_rules! options {
    ($(opt!($key:ident = $name:literal, $kind:ident, up = $up:literal, fork = $fork:literal, flag = $flag:expr, fork_only = $fo:literal, yaml = $yaml:expr, $doc:literal $(,)?)),* $(,)?) => {
        /// A tsnsrv option: how code outside the table asks for one. Its name (the key the
        /// inventory's JSON stores it under) is [`Opt::name`].
        // The table's docs are plain text (`security.acme.certs.<host>`), not HTML.
        #[allow(rustdoc::invalid_html_tags)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Opt {
            $(#[doc = concat!("`", $name, "`: ", $doc, ".")] $key,)*
        }

        /// The option table, in [`Opt`]'s order.
        pub static OPTIONS: &[OptionSpec] = &[
            $(OptionSpec {
                key: Opt::$key,
                name: $name,
                kind: OptKind::$kind,
                upstream_module: $up,
                fork_module: $fork,
                flag: $flag,
                fork_only: $fo,
                yaml: $yaml,
                doc: $doc,
            },)*
        ];
    };
}

options! {
    opt!(
        ToUrl = "toURL",
        Url,
        up = true,
        fork = true,
        flag = None,
        fork_only = false,
        yaml = Some("upstream"),
        "destination URL (the positional argument)"
    ),
    opt!(
        UrlParts = "urlParts",
        UrlParts,
        up = true,
        fork = true,
        flag = None,
        fork_only = false,
        yaml = None,
        "protocol/host/port that build toURL when it is not set"
    ),
    opt!(
        UpstreamUnixAddr = "upstreamUnixAddr",
        Str,
        up = true,
        fork = true,
        flag = Some("upstreamUnixAddr"),
        fork_only = false,
        yaml = Some("upstreamUnixAddr"),
        "dial this unix socket for every request"
    ),
    opt!(
        UpstreamTcpAddr = "upstreamTCPAddr",
        Str,
        up = false,
        fork = false,
        flag = Some("upstreamTCPAddr"),
        fork_only = false,
        yaml = Some("upstreamTCPAddr"),
        "dial this TCP address; the URL host only sets Host"
    ),
    opt!(
        ListenAddr = "listenAddr",
        Address,
        up = true,
        fork = true,
        flag = Some("listenAddr"),
        fork_only = false,
        yaml = Some("listenAddr"),
        "tailnet (and funnel) port"
    ),
    opt!(
        Plaintext = "plaintext",
        Bool,
        up = true,
        fork = true,
        flag = Some("plaintext"),
        fork_only = false,
        yaml = Some("plaintext"),
        "serve HTTP without TLS on the tailnet"
    ),
    opt!(
        Funnel = "funnel",
        Bool,
        up = true,
        fork = true,
        flag = Some("funnel"),
        fork_only = false,
        yaml = Some("funnel"),
        "also serve on Tailscale Funnel (public)"
    ),
    opt!(
        FunnelOnly = "funnelOnly",
        Bool,
        up = false,
        fork = false,
        flag = Some("funnelOnly"),
        fork_only = false,
        yaml = Some("funnelOnly"),
        "serve only on the funnel"
    ),
    opt!(
        Ephemeral = "ephemeral",
        Bool,
        up = true,
        fork = true,
        flag = Some("ephemeral"),
        fork_only = false,
        yaml = Some("ephemeral"),
        "register an ephemeral node"
    ),
    opt!(
        Tags = "tags",
        List,
        up = true,
        fork = true,
        flag = Some("tag"),
        fork_only = false,
        yaml = Some("tags"),
        "ACL tags of the node"
    ),
    opt!(
        Prefixes = "prefixes",
        List,
        up = true,
        fork = true,
        flag = Some("prefix"),
        fork_only = false,
        yaml = Some("prefixes"),
        "path allowlist (tailnet:/, funnel:/, /)"
    ),
    opt!(
        StripPrefix = "stripPrefix",
        Bool,
        up = true,
        fork = true,
        flag = Some("stripPrefix"),
        fork_only = false,
        yaml = Some("stripPrefix"),
        "cut the matched prefix before forwarding"
    ),
    opt!(
        RecommendedProxyHeaders = "recommendedProxyHeaders",
        Bool,
        up = false,
        fork = false,
        flag = Some("recommendedProxyHeaders"),
        fork_only = false,
        yaml = Some("recommendedProxyHeaders"),
        "keep the original Host; send X-Scheme, X-Real-Ip, X-Forwarded-Server/Port"
    ),
    opt!(
        UpstreamHeaders = "upstreamHeaders",
        Map,
        up = true,
        fork = true,
        flag = Some("upstreamHeader"),
        fork_only = false,
        yaml = Some("upstreamHeaders"),
        "headers set on every upstream request"
    ),
    opt!(
        InsecureHttps = "insecureHTTPS",
        Bool,
        up = true,
        fork = true,
        flag = Some("insecureHTTPS"),
        fork_only = false,
        yaml = Some("insecureHTTPS"),
        "skip upstream certificate verification"
    ),
    opt!(
        UpstreamAllowInsecureCiphers = "upstreamAllowInsecureCiphers",
        Bool,
        up = true,
        fork = true,
        flag = Some("upstreamAllowInsecureCiphers"),
        fork_only = false,
        yaml = Some("upstreamAllowInsecureCiphers"),
        "allow every TLS cipher toward the upstream"
    ),
    opt!(
        SuppressWhois = "suppressWhois",
        Bool,
        up = true,
        fork = true,
        flag = Some("suppressWhois"),
        fork_only = false,
        yaml = Some("suppressWhois"),
        "do not send X-Tailscale-* identity headers"
    ),
    opt!(
        WhoisTimeout = "whoisTimeout",
        Duration,
        up = true,
        fork = true,
        flag = Some("whoisTimeout"),
        fork_only = false,
        yaml = Some("whoisTimeout"),
        "deadline of each identity lookup"
    ),
    opt!(
        SuppressTailnetDialer = "suppressTailnetDialer",
        Bool,
        up = true,
        fork = true,
        flag = Some("suppressTailnetDialer"),
        fork_only = false,
        yaml = Some("suppressTailnetDialer"),
        "dial the upstream with the system dialer"
    ),
    opt!(
        ReadHeaderTimeout = "readHeaderTimeout",
        Duration,
        up = true,
        fork = true,
        flag = Some("readHeaderTimeout"),
        fork_only = false,
        yaml = Some("readHeaderTimeout"),
        "header read timeout of the listener"
    ),
    opt!(
        Timeout = "timeout",
        Duration,
        up = true,
        fork = true,
        flag = Some("timeout"),
        fork_only = false,
        yaml = Some("timeout"),
        "deadline for the node to come up"
    ),
    opt!(
        TsnetVerbose = "tsnetVerbose",
        Bool,
        up = true,
        fork = true,
        flag = Some("tsnetVerbose"),
        fork_only = false,
        yaml = Some("tsnetVerbose"),
        "log tsnet's own messages"
    ),
    opt!(
        CertificateFile = "certificateFile",
        Str,
        up = true,
        fork = true,
        flag = Some("certificateFile"),
        fork_only = false,
        yaml = Some("certificateFile"),
        "custom TLS certificate instead of Tailscale's"
    ),
    opt!(
        CertificateKey = "certificateKey",
        Str,
        up = true,
        fork = true,
        flag = Some("keyFile"),
        fork_only = false,
        yaml = Some("keyFile"),
        "key of the custom certificate"
    ),
    opt!(
        AcmeHost = "acmeHost",
        Str,
        up = true,
        fork = true,
        flag = None,
        fork_only = false,
        yaml = None,
        "take the certificate from security.acme.certs.<host>"
    ),
    opt!(
        AuthKeyPath = "authKeyPath",
        Str,
        up = true,
        fork = true,
        flag = Some("authkeyPath"),
        fork_only = false,
        yaml = Some("authkeyPath"),
        "file holding the auth key or OAuth client secret (a path, never the secret)"
    ),
    opt!(
        StateDir = "stateDir",
        Str,
        up = false,
        fork = false,
        flag = Some("stateDir"),
        fork_only = false,
        yaml = Some("stateDir"),
        "tsnet state directory (the node identity)"
    ),
    opt!(
        LoginServerUrl = "loginServerUrl",
        Str,
        up = true,
        fork = true,
        flag = None,
        fork_only = false,
        yaml = None,
        "control server (TS_URL), e.g. headscale"
    ),
    opt!(
        PrometheusAddr = "prometheusAddr",
        Address,
        up = false,
        fork = false,
        flag = Some("prometheusAddr"),
        fork_only = false,
        yaml = None,
        "metrics listener"
    ),
    opt!(
        EnableBugReports = "enableBugReports",
        Bool,
        up = false,
        fork = false,
        flag = Some("enableBugReports"),
        fork_only = false,
        yaml = None,
        "POST /bugreport on the metrics listener"
    ),
    opt!(
        Package = "package",
        Package,
        up = true,
        fork = true,
        flag = None,
        fork_only = false,
        yaml = None,
        "the tsnsrv package"
    ),
    opt!(
        SupplementalGroups = "supplementalGroups",
        List,
        up = true,
        fork = true,
        flag = None,
        fork_only = false,
        yaml = None,
        "extra groups of the unit"
    ),
    opt!(
        ExtraArgs = "extraArgs",
        List,
        up = true,
        fork = true,
        flag = None,
        fork_only = false,
        yaml = None,
        "extra command-line flags"
    ),
    opt!(
        AuthUrl = "authURL",
        Url,
        up = false,
        fork = true,
        flag = Some("authURL"),
        fork_only = true,
        yaml = Some("authURL"),
        "forward-auth service"
    ),
    opt!(
        AuthPath = "authPath",
        Str,
        up = false,
        fork = true,
        flag = Some("authPath"),
        fork_only = true,
        yaml = Some("authPath"),
        "forward-auth endpoint path"
    ),
    opt!(
        AuthTimeout = "authTimeout",
        Duration,
        up = false,
        fork = true,
        flag = Some("authTimeout"),
        fork_only = true,
        yaml = Some("authTimeout"),
        "forward-auth request timeout"
    ),
    opt!(
        AuthCopyHeaders = "authCopyHeaders",
        Map,
        up = false,
        fork = true,
        flag = Some("authCopyHeader"),
        fork_only = true,
        yaml = Some("authCopyHeaders"),
        "headers copied from the auth response (names only)"
    ),
    opt!(
        AuthInsecureHttps = "authInsecureHTTPS",
        Bool,
        up = false,
        fork = true,
        flag = Some("authInsecureHTTPS"),
        fork_only = true,
        yaml = Some("authInsecureHTTPS"),
        "skip the auth service's certificate verification"
    ),
    opt!(
        AuthBypassForTailnet = "authBypassForTailnet",
        Bool,
        up = false,
        fork = true,
        flag = Some("authBypassForTailnet"),
        fork_only = true,
        yaml = Some("authBypassForTailnet"),
        "skip auth for identified tailnet users"
    ),
}

static BY_NAME: std::sync::LazyLock<std::collections::HashMap<&'static str, &'static OptionSpec>> =
    std::sync::LazyLock::new(|| OPTIONS.iter().map(|o| (o.name, o)).collect());

/// Looks an option up by canonical name.
pub fn spec(name: &str) -> Option<&'static OptionSpec> {
    BY_NAME.get(name).copied()
}

/// Looks an option up by CLI flag name (`tag`, `keyFile`, ...).
pub fn by_flag(flag: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.flag == Some(flag))
}

/// Looks an option up by YAML key.
pub fn by_yaml(key: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.yaml == Some(key))
}

/// The names of the module's per-service options under a flavour.
pub fn module_accepts(name: &str, fork: bool) -> bool {
    spec(name).is_some_and(|o| if fork { o.fork_module } else { o.upstream_module })
}

impl Opt {
    /// Its row of the table.
    pub fn spec(self) -> &'static OptionSpec {
        &OPTIONS[self as usize]
    }

    /// Its canonical name: the key the inventory stores it under (`toURL`).
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The option a canonical name names.
    pub fn from_name(name: &str) -> Option<Opt> {
        spec(name).map(|s| s.key)
    }
}

impl std::fmt::Display for Opt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_the_enums_order_and_names_are_unique() {
        for (i, o) in OPTIONS.iter().enumerate() {
            assert_eq!(o.key as usize, i, "{}", o.name);
            assert_eq!(Opt::from_name(o.name), Some(o.key));
            assert_eq!(o.key.to_string(), o.name);
        }
        assert_eq!(BY_NAME.len(), OPTIONS.len());
    }
}
