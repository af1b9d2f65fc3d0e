//! Diagnostics: what the parsers say about their inputs, each with a stable code and a location.

use crate::source::Location;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing is wrong.
    Info,
    /// The inventory is complete but something needs attention (a unit that cannot start, an
    /// unknown value).
    Warning,
    /// The input is wrong: the run exits with code 1.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

tailshift_util::codes! {
    /// A diagnostic's stable code, written as its snake_case string (`docs/inventory-schema.md`,
    /// "Diagnostic codes").
    pub enum DiagnosticCode {
        /// An input does not parse (Nix, JSON, YAML).
        SyntaxError = "syntax_error",
        /// Evaluating a Nix expression failed.
        EvalError = "eval_error",
        /// The set of services cannot be read: some service may be missing.
        ServicesUnreadable = "services_unreadable",
        /// A flake input that is not read: what its modules declare is unknown.
        OpaqueInput = "opaque_input",
        /// `--host` names no host of the flake.
        NoSuchHost = "no_such_host",
        /// `--host` given with a flake, whose hosts name themselves.
        HostFlagUnused = "host_flag_unused",
        /// A value of the wrong type for the tsnsrv module (`funnel = "yes"`).
        InvalidType = "invalid_type",
        /// A file of a flake that git does not track, which Nix does not see.
        UntrackedFile = "untracked_file",
        /// An imported module that does not exist.
        ImportNotFound = "import_not_found",
        /// A module that is not read and may declare services.
        UnknownModule = "unknown_module",
        /// An attribute name that cannot be known (the set may hide a service).
        UnknownAttributeName = "unknown_attribute_name",
        /// An attribute (under `services.tsnsrv`), YAML key or flag that is no tsnsrv option.
        UnknownAttribute = "unknown_attribute",
        /// A service declared twice on one host.
        DuplicateService = "duplicate_service",
        /// `toURL` or `authURL` is not an http(s) URL.
        InvalidUrl = "invalid_url",
        /// `funnel` with `plaintext`, which tsnsrv refuses.
        FunnelWithPlaintext = "funnel_with_plaintext",
        /// Funnel on a port Funnel does not serve.
        FunnelPort = "funnel_port",
        /// `funnelOnly` without `funnel`.
        FunnelOnlyWithoutFunnel = "funnel_only_without_funnel",
        /// A prefix that starts with none of `/`, `tailnet:/`, `funnel:/`.
        InvalidPrefix = "invalid_prefix",
        /// A tag that does not start with `tag:`.
        InvalidTag = "invalid_tag",
        /// `certificateFile` without `certificateKey`, or the reverse.
        CertificatePair = "certificate_pair",
        /// `plaintext` with a custom certificate.
        PlaintextWithCertificate = "plaintext_with_certificate",
        /// Both `upstreamUnixAddr` and `upstreamTCPAddr`.
        TwoUpstreamAddresses = "two_upstream_addresses",
        /// A tsnsrv command line or YAML entry without a name.
        MissingName = "missing_name",
        /// A tsnsrv command line without its destination URL.
        MissingDestination = "missing_destination",
        /// A command line with an unterminated quote.
        UnterminatedQuote = "unterminated_quote",
        /// A unit or command line that does not run tsnsrv.
        NotTsnsrv = "not_tsnsrv",
        /// tsnsrv runs with `-config` on a YAML file that was not given.
        ConfigFileNotRead = "config_file_not_read",
        /// A unit or script that holds no tsnsrv invocation.
        NoServices = "no_services",
        /// A unit that cannot have started: the service is down today.
        UnitCannotStart = "unit_cannot_start",
        /// A module option the NixOS module never passes to tsnsrv.
        ModuleOptionIgnored = "module_option_ignored",
        /// `services.tailshift.moves` (tailshift's own module) names a file that cannot be
        /// read, or of another schema.
        MovesUnreadable = "moves_unreadable",
        /// An option the fork's `tsnsrv-all` mode ignores.
        OptionIgnored = "option_ignored",
        /// A value the fork's YAML does not carry, so its default was lost.
        YamlDefaultLost = "yaml_default_lost",
        /// Services sharing tsnet's default state directory.
        SharedStateDir = "shared_state_dir",
        /// An `extraArgs` flag tailshift does not know.
        UnsupportedExtraArg = "unsupported_extra_arg",
        /// A file of a directory walk that is not a tsnsrv input, and why.
        SkippedInput = "skipped_input",
        /// A file or directory reached again through a symlink.
        AlreadyRead = "already_read",
        /// A module about something else the evaluator had trouble with.
        ModuleWithoutTsnsrv = "module_without_tsnsrv",
        /// A symlink to nothing.
        DanglingSymlink = "dangling_symlink",
        /// A file that cannot be read.
        UnreadableInput = "unreadable_input",
        /// The directories given declare no tsnsrv service at all.
        NoTsnsrv = "no_tsnsrv",
    }
}

/// One finding about the inputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Its stable code, e.g. `syntax_error`, `funnel_with_plaintext`.
    pub code: DiagnosticCode,
    /// How serious it is.
    pub severity: Severity,
    /// One sentence saying what is wrong.
    pub message: String,
    /// Where, when it is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Byte length of the marked range at `location` (for underlining), 0 when unknown.
    #[serde(skip)]
    pub length: u32,
    /// The service it concerns, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Further explanation or a suggested fix.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// A diagnostic without location or notes.
    pub fn new(code: DiagnosticCode, severity: Severity, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity,
            message: message.into(),
            location: None,
            length: 0,
            service: None,
            notes: Vec::new(),
        }
    }

    /// An error diagnostic.
    pub fn error(code: DiagnosticCode, message: impl Into<String>) -> Self {
        Self::new(code, Severity::Error, message)
    }

    /// An info diagnostic: worth knowing, nothing is wrong (a file skipped and why).
    pub fn info(code: DiagnosticCode, message: impl Into<String>) -> Self {
        Self::new(code, Severity::Info, message)
    }

    /// A warning diagnostic.
    pub fn warning(code: DiagnosticCode, message: impl Into<String>) -> Self {
        Self::new(code, Severity::Warning, message)
    }

    /// Sets the location.
    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    /// Sets the length of the marked range.
    pub fn len(mut self, length: u32) -> Self {
        self.length = length;
        self
    }

    /// Sets the service.
    pub fn for_service(mut self, service: &str) -> Self {
        self.service = Some(service.to_string());
        self
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{loc}: ")?;
        }
        write!(f, "{}[{}]: {}", self.severity, self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_written_as_the_strings_they_always_were() {
        let d = Diagnostic::error(DiagnosticCode::UnitCannotStart, "x");
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["code"], "unit_cannot_start");
        let back: Diagnostic = serde_json::from_value(json).unwrap();
        assert_eq!(back.code, DiagnosticCode::UnitCannotStart);
        let mut seen = std::collections::BTreeSet::new();
        for c in DiagnosticCode::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert!(c.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{c}");
        }
    }

    #[test]
    fn every_code_is_documented() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/inventory-schema.md"),
        )
        .unwrap();
        let codes = &doc[doc.find("## Diagnostic codes").unwrap()..];
        for c in DiagnosticCode::ALL {
            assert!(codes.contains(&format!("`{c}`")), "{c} is not in docs/inventory-schema.md");
        }
    }
}
