//! Typed names of plan data: [`ServiceId`] (`host/name`) and [`Dependency`] (an id and why).
//! The plan file writes each as the same string it held before it was typed (`"nas/app"`,
//! `"cloud/auth (forward auth)"`), so plan files of every format read and write unchanged.

use crate::graph::EdgeKind;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use tailshift_parsers::Service;

/// The id of a service in a fleet: its host and its name, written `host/name`. A host the
/// inventory does not know is written `?`. Ids order as their text does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceId(String);

/// Text that is not a [`ServiceId`] or a [`Dependency`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not {what}")]
pub struct IdError {
    /// The text.
    pub text: String,
    /// What it should have been.
    pub what: &'static str,
}

impl ServiceId {
    /// The id of a service `name` on `host`.
    pub fn new(host: &str, name: &str) -> ServiceId {
        ServiceId(format!("{host}/{name}"))
    }

    /// The id of an inventory service (`?` for a host that is not known).
    pub fn of(s: &Service) -> ServiceId {
        ServiceId::new(s.host.known().map(String::as_str).unwrap_or("?"), &s.name)
    }

    /// The host (before the first `/`).
    pub fn host(&self) -> &str {
        self.0.split_once('/').map_or("", |(h, _)| h)
    }

    /// The service's name (after the first `/`).
    pub fn name(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, n)| n)
    }

    /// `host/name`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ServiceId {
    type Err = IdError;

    /// Reads `host/name`: anything with a `/` (every id a plan or a state file ever held).
    fn from_str(text: &str) -> Result<ServiceId, IdError> {
        if text.contains('/') {
            Ok(ServiceId(text.to_string()))
        } else {
            Err(IdError { text: text.into(), what: "a service id (host/name)" })
        }
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl AsRef<str> for ServiceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for ServiceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ServiceId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ServiceId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for ServiceId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<ServiceId> for String {
    fn eq(&self, other: &ServiceId) -> bool {
        *self == other.0
    }
}

impl Serialize for ServiceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ServiceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ServiceId, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a service depends on, directly, and why. Written `host/name (why)`, as
/// `cloud/auth (forward auth)` or `nas/db (policy)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dependency {
    /// The service depended on.
    pub id: ServiceId,
    /// Why: `[plan.dependencies]`, or forward auth.
    pub why: EdgeKind,
}

impl FromStr for Dependency {
    type Err = IdError;

    /// Reads `host/name (why)`.
    fn from_str(text: &str) -> Result<Dependency, IdError> {
        let bad = || IdError { text: text.into(), what: "a dependency (host/name (why))" };
        let (id, why) = text.strip_suffix(')').and_then(|t| t.rsplit_once(" (")).ok_or_else(bad)?;
        Ok(Dependency {
            id: id.parse().map_err(|_| bad())?,
            why: EdgeKind::parse(why).ok_or_else(bad)?,
        })
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id, self.why.as_str())
    }
}

impl Serialize for Dependency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dependency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dependency, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_id_is_its_host_and_name() {
        let id: ServiceId = "nas/app".parse().unwrap();
        assert_eq!((id.host(), id.name()), ("nas", "app"));
        assert_eq!(id, ServiceId::new("nas", "app"));
        assert_eq!(id.to_string(), "nas/app");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"nas/app\"");
        assert_eq!(serde_json::from_str::<ServiceId>("\"nas/app\"").unwrap(), id);
        for bad in ["app", ""] {
            assert!(bad.parse::<ServiceId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn service_ids_order_as_their_text() {
        // `-` sorts before `/`: h1-b/x before h1/x, as the plan always ordered them.
        let mut ids = vec![ServiceId::new("h1", "x"), ServiceId::new("h1-b", "x")];
        ids.sort();
        assert_eq!(ids, ["h1-b/x", "h1/x"]);
    }

    #[test]
    fn a_dependency_reads_and_writes_as_id_and_why() {
        for (text, why) in [
            ("cloud/auth (forward auth)", EdgeKind::ForwardAuth),
            ("nas/db (policy)", EdgeKind::Policy),
        ] {
            let d: Dependency = text.parse().unwrap();
            assert_eq!(d, Dependency { id: text.split(' ').next().unwrap().parse().unwrap(), why });
            assert_eq!(d.to_string(), text);
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{text}\""));
        }
        for bad in ["nas/db", "nas/db (what)", "db (policy)", "nas/db (policy", "nas/db(policy)"] {
            assert!(bad.parse::<Dependency>().is_err(), "{bad}");
        }
    }
}
