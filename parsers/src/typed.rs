//! Typed reads of a service's options: the way code outside the reader asks for a value.
//!
//! Options are stored as JSON under their tsnsrv names (the inventory's JSON form); these
//! accessors take an [`Opt`] and give the value its type: a [`Url`] (parsed here and nowhere
//! else), a Go duration, a [`ListenAddr`], a header map, a bool, a list of strings. An option
//! that is absent or null is tsnsrv's own default ([`crate::defaults::tsnsrv`]); an option whose
//! value is unknown is an [`OptionError::Unknown`], never a guess.

use crate::defaults;
use crate::inventory::{Options, Sourced};
use crate::options::Opt;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::fmt;
use url::Url;

/// Why an option's typed value cannot be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// The value depends on something outside the inputs.
    #[error("{opt} is unknown ({reason})")]
    Unknown {
        /// The option.
        opt: Opt,
        /// Why it is unknown.
        reason: String,
    },
    /// The value does not parse as the option's type.
    #[error("{opt} = {value:?}: {message}")]
    Invalid {
        /// The option.
        opt: Opt,
        /// The value as written (a string as is, anything else as JSON).
        value: String,
        /// What is wrong.
        message: String,
    },
}

/// A Go listen address: `:443`, `0.0.0.0:8443`, `[::]:80`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenAddr {
    /// The host part, empty for every address (`:443`).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl ListenAddr {
    /// Parses `host:port`; the host may be empty.
    pub fn parse(addr: &str) -> Option<ListenAddr> {
        let (host, port) = addr.rsplit_once(':')?;
        Some(ListenAddr { host: host.to_string(), port: port.parse().ok()? })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Parses a Go duration (`1s`, `500ms`, `1m30s`, `1.5h`, `0`) into milliseconds.
pub fn go_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let mut total = 0.0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_end..];
    }
    Some(total.round() as u64)
}

fn text_of(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Options {
    /// The option's value when known, `None` when it is absent or null; an error when unknown.
    pub fn known(&self, opt: Opt) -> Result<Option<&Json>, OptionError> {
        match self.get(opt) {
            None => Ok(None),
            Some(Sourced::Known { value, .. }) => Ok((!value.is_null()).then_some(value)),
            Some(Sourced::Unknown { reason, .. }) => {
                Err(OptionError::Unknown { opt, reason: reason.clone() })
            }
        }
    }

    /// A boolean option; absent, null or not a boolean: tsnsrv's default (false when it has none).
    pub fn flag(&self, opt: Opt) -> Result<bool, OptionError> {
        let own = self.known(opt)?.and_then(Json::as_bool);
        Ok(own.or_else(|| defaults::tsnsrv(opt)?.as_bool()).unwrap_or(false))
    }

    /// A string option, or tsnsrv's default when it is absent, null or not a string; `None`
    /// when neither is a string.
    pub fn text(&self, opt: Opt) -> Result<Option<String>, OptionError> {
        let own = self.known(opt)?.and_then(Json::as_str).map(str::to_string);
        Ok(own.or_else(|| defaults::tsnsrv(opt)?.as_str().map(str::to_string)))
    }

    /// A URL option (`toURL`, `authURL`), parsed: the one place an option's URL is parsed. No
    /// default: `None` when it is absent or null.
    pub fn url(&self, opt: Opt) -> Result<Option<Url>, OptionError> {
        let Some(v) = self.known(opt)? else { return Ok(None) };
        let invalid = |message: String| OptionError::Invalid { opt, value: text_of(v), message };
        let text = v.as_str().ok_or_else(|| invalid("not a string".into()))?;
        Url::parse(text).map(Some).map_err(|e| invalid(e.to_string()))
    }

    /// A Go duration option in milliseconds, or tsnsrv's default.
    pub fn duration_ms(&self, opt: Opt) -> Result<Option<u64>, OptionError> {
        let Some(v) = self.text(opt)? else { return Ok(None) };
        match go_duration_ms(&v) {
            Some(ms) => Ok(Some(ms)),
            None => {
                Err(OptionError::Invalid { opt, value: v, message: "not a Go duration".into() })
            }
        }
    }

    /// A listen address option (`listenAddr`, `prometheusAddr`). No default: `None` when it is
    /// absent or null (what that means depends on the listener: the caller decides).
    pub fn listen_addr(&self, opt: Opt) -> Result<Option<ListenAddr>, OptionError> {
        let Some(v) = self.known(opt)? else { return Ok(None) };
        let parsed = v.as_str().and_then(ListenAddr::parse);
        parsed.map(Some).ok_or_else(|| OptionError::Invalid {
            opt,
            value: text_of(v),
            message: "not a listen address ([host]:port)".into(),
        })
    }

    /// A list-of-strings option (`prefixes`, `tags`); absent: empty. Non-strings are skipped.
    pub fn strings(&self, opt: Opt) -> Result<Vec<String>, OptionError> {
        Ok(self
            .known(opt)?
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default())
    }

    /// A header map option (`upstreamHeaders`, `authCopyHeaders`); absent: empty. A value that
    /// is not a string reads as empty.
    pub fn headers(&self, opt: Opt) -> Result<BTreeMap<String, String>, OptionError> {
        Ok(self
            .known(opt)?
            .and_then(Json::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(pairs: &[(Opt, Json)]) -> Options {
        let mut o = Options::default();
        for (k, v) in pairs {
            o.set(*k, Sourced::declared(v.clone(), None));
        }
        o
    }

    #[test]
    fn go_durations() {
        for (s, ms) in [
            ("1s", 1000),
            ("500ms", 500),
            ("1m30s", 90_000),
            ("1.5h", 5_400_000),
            ("0s", 0),
            ("0", 0),
        ] {
            assert_eq!(go_duration_ms(s), Some(ms), "{s}");
        }
        assert_eq!(go_duration_ms("5"), None);
        assert_eq!(go_duration_ms("1d"), None);
    }

    #[test]
    fn absent_values_are_tsnsrvs_defaults() {
        let o = Options::default();
        assert!(o.flag(Opt::StripPrefix).unwrap() && o.flag(Opt::RecommendedProxyHeaders).unwrap());
        assert!(!o.flag(Opt::Funnel).unwrap());
        assert_eq!(o.duration_ms(Opt::WhoisTimeout).unwrap(), Some(1000));
        assert_eq!(o.duration_ms(Opt::AuthTimeout).unwrap(), Some(5000));
        assert_eq!(o.text(Opt::AuthPath).unwrap().as_deref(), Some(defaults::AUTH_PATH));
        assert_eq!(o.text(Opt::UpstreamUnixAddr).unwrap(), None);
        assert_eq!(o.url(Opt::ToUrl).unwrap(), None);
        assert_eq!(o.listen_addr(Opt::ListenAddr).unwrap(), None);
        assert!(o.strings(Opt::Prefixes).unwrap().is_empty());
        assert!(o.headers(Opt::UpstreamHeaders).unwrap().is_empty());
    }

    #[test]
    fn values_are_typed_and_unknowns_are_errors() {
        let mut o = opts(&[
            (Opt::ToUrl, json!("http://127.0.0.1:8096")),
            (Opt::AuthUrl, json!("not a url")),
            (Opt::ListenAddr, json!("0.0.0.0:8443")),
            (Opt::UpstreamHeaders, json!({"X-A": "1"})),
            (Opt::WhoisTimeout, json!("2")),
        ]);
        assert_eq!(o.url(Opt::ToUrl).unwrap().unwrap().port(), Some(8096));
        assert!(matches!(o.url(Opt::AuthUrl), Err(OptionError::Invalid { .. })));
        assert_eq!(
            o.listen_addr(Opt::ListenAddr).unwrap(),
            Some(ListenAddr { host: "0.0.0.0".into(), port: 8443 })
        );
        assert_eq!(o.headers(Opt::UpstreamHeaders).unwrap()["X-A"], "1");
        let e = o.duration_ms(Opt::WhoisTimeout).unwrap_err();
        assert_eq!(e.to_string(), "whoisTimeout = \"2\": not a Go duration");
        o.set(Opt::Funnel, Sourced::unknown("depends on the host", None));
        assert_eq!(
            o.flag(Opt::Funnel).unwrap_err().to_string(),
            "funnel is unknown (depends on the host)"
        );
    }
}
