//! Reading the merged configuration: `config.<path>` as the modules see it (lazily, node by
//! node), the names under a path, a path read as JSON with where it was defined, and what an
//! option nothing defines is (its default, or unknown, saying why).

use crate::nix::error::EvalError;
use crate::nix::modules::decls::NIXPKGS_NAMESPACES;
use crate::nix::modules::kinds::*;
use crate::nix::value::*;
use crate::source::Span;
use std::collections::BTreeSet;
use std::rc::Rc;

/// A value read from the merged configuration, with where it was defined.
#[derive(Debug, Clone)]
pub struct Declared {
    /// The value as JSON, or why it cannot be known.
    pub value: Result<serde_json::Value, Rc<Unknown>>,
    /// The binding of the winning definition.
    pub span: Option<Span>,
}

impl Eval {
    /// `config.<path>.<key>` as a thunk.
    pub(crate) fn config_select(
        &mut self,
        path: &[Rc<str>],
        key: &str,
        span: Span,
    ) -> Result<Thunk, EvalError> {
        let mut child = path.to_vec();
        child.push(key.into());
        let v = self.config_value(&child, span)?;
        Ok(Thunk::value(v))
    }

    fn config_value(&mut self, path: &[Rc<str>], span: Span) -> Result<Value, EvalError> {
        let v = self.config_value_unapplied(path, span)?;
        if is_tsnsrv(path) {
            return Ok(v);
        }
        match self.declared_option(path) {
            Some(o) if o.apply.is_some() && !matches!(v, Value::Unknown(_)) => {
                let f = self.force(&o.apply.clone().expect("checked"))?;
                self.apply(f, Thunk::value(v), span)
            }
            _ => Ok(v),
        }
    }

    /// What `config.<path>` is for an option nothing defines: unknown, saying whether the
    /// files declare it (without a default) or nixpkgs presumably does.
    fn undefined_option(&mut self, path: &[Rc<str>], span: Span) -> Value {
        match self.declared_option(path) {
            Some(o) => Value::Unknown(Rc::new(Unknown {
                reason: "is declared without a default and not defined in the files read (NixOS would refuse to read it)".into(),
                span: o.span.or(Some(span)),
                what: Some(format!("config.{}", dotted(path))),
            })),
            None => option_default(path),
        }
    }

    fn config_value_unapplied(&mut self, path: &[Rc<str>], span: Span) -> Result<Value, EvalError> {
        match self.kind_at(path) {
            Kind::Leaf(ty) => match self.merge_leaf(path, ty)? {
                Some((v, _)) => Ok(v),
                None => Ok(self.undefined_option(path, span)),
            },
            Kind::Namespace | Kind::AttrsOf | Kind::Submodule => {
                Ok(Value::Config(Rc::new(path.to_vec())))
            }
            Kind::Generic => match self.generic_is_set(path)? {
                None if self.declared_option(path).is_some() => {
                    Ok(self.undefined_option(path, span))
                }
                None => Ok(Value::Unknown(Rc::new(Unknown {
                    reason: undeclared_reason(path),
                    span: Some(span),
                    what: Some(format!("config.{}", dotted(path))),
                }))),
                Some(true) => Ok(Value::Config(Rc::new(path.to_vec()))),
                Some(false) => Ok(self
                    .merge_leaf(path, LeafTy::Scalar)?
                    .map(|(v, _)| v)
                    .unwrap_or(Value::Null)),
            },
        }
    }

    /// The attribute names defined under a config path.
    pub fn config_keys(&mut self, path: &[Rc<str>]) -> Result<Vec<Rc<str>>, EvalError> {
        let kind = self.kind_at(path);
        let defs: Vec<Def> = match kind {
            Kind::AttrsOf | Kind::Submodule => self.discharged_at(path)?.to_vec(),
            _ => {
                let mut out = Vec::new();
                for d in self.defs_at(path)?.iter() {
                    self.pushdown(d.clone(), &mut out)?;
                }
                out
            }
        };
        let mut keys = BTreeSet::new();
        for d in &defs {
            let v = self.force(&d.value)?;
            if let Value::Attrs(_) | Value::Config(_) = v {
                let m = self.attrs_of(&v, d.span.unwrap_or(dummy_span()))?;
                keys.extend(m.keys().cloned());
            }
        }
        let mut out = Vec::new();
        for k in keys {
            if kind == Kind::AttrsOf {
                // An element all of whose definitions are switched off by mkIf does not exist.
                let mut child = path.to_vec();
                child.push(k.clone());
                if self.discharged_at(&child)?.is_empty() {
                    continue;
                }
            }
            out.push(k);
        }
        Ok(out)
    }

    pub(crate) fn config_materialize(
        &mut self,
        path: &[Rc<str>],
        span: Span,
    ) -> Result<Rc<AttrMap>, EvalError> {
        let keys = self.config_keys(path)?;
        let mut m = AttrMap::new();
        for k in keys {
            let p = path.to_vec();
            let key = k.clone();
            let t = Thunk::native(move |ev| {
                let t = ev.config_select(&p, &key, span)?;
                ev.force(&t)
            });
            m.insert(k, AttrEntry { value: t, span: None, cond: None });
        }
        Ok(Rc::new(m))
    }

    /// Reads a config path as JSON with the location of its definition; `None` if undefined.
    /// Sets (a submodule such as `urlParts`, or a generic namespace) are read key by key.
    pub fn config_read(&mut self, path: &[&str]) -> Result<Option<Declared>, EvalError> {
        let p = str_path(path);
        self.config_read_path(&p)
    }

    /// [`Eval::config_read`] for a path already made of shared segments (no allocation).
    pub fn config_read_path(&mut self, p: &[Rc<str>]) -> Result<Option<Declared>, EvalError> {
        let kind = self.kind_at(p);
        let is_set = match kind {
            Kind::Leaf(_) => false,
            Kind::Generic => match self.generic_is_set(p)? {
                None => return Ok(None),
                Some(b) => b,
            },
            _ => true,
        };
        if !is_set {
            let ty = if let Kind::Leaf(t) = kind { t } else { LeafTy::Scalar };
            let Some((v, span)) = self.merge_leaf(p, ty)? else { return Ok(None) };
            let value = self.to_json(&v, span.unwrap_or(dummy_span()))?;
            return Ok(Some(Declared { value, span }));
        }
        let defs = self.defs_at(p)?;
        if defs.is_empty() {
            return Ok(None);
        }
        let span = defs.iter().find_map(|d| d.span);
        let mut obj = serde_json::Map::new();
        for k in self.config_keys(p)? {
            let mut child = p.to_vec();
            child.push(k.clone());
            if let Some(d) = self.config_read_path(&child)? {
                match d.value {
                    Ok(j) => {
                        obj.insert(k.to_string(), j);
                    }
                    Err(u) => return Ok(Some(Declared { value: Err(u), span: d.span })),
                }
            }
        }
        Ok(Some(Declared { value: Ok(serde_json::Value::Object(obj)), span }))
    }

    /// The binding of the first definition of a config path (for locating a service's name).
    pub fn config_span(&mut self, path: &[&str]) -> Result<Option<Span>, EvalError> {
        let p = str_path(path);
        Ok(self.defs_at(&p)?.iter().find_map(|d| d.span))
    }

    /// [`Eval::config_span`] for a path of shared segments.
    pub fn config_span_path(&mut self, p: &[Rc<str>]) -> Result<Option<Span>, EvalError> {
        Ok(self.defs_at(p)?.iter().find_map(|d| d.span))
    }

    /// Every binding that defines a config path (for locating each attribute a service sets).
    pub fn config_def_spans(&mut self, path: &[&str]) -> Result<Vec<Span>, EvalError> {
        let p = str_path(path);
        Ok(self.defs_at(&p)?.iter().filter_map(|d| d.span).collect())
    }
}

/// Why a path no module read declares or defines is unknown: nixpkgs' default where nixpkgs
/// declares options, else whatever module not read declares it.
fn undeclared_reason(path: &[Rc<str>]) -> String {
    if path.first().is_some_and(|p| NIXPKGS_NAMESPACES.contains(&&**p)) {
        "is not set in the files read; its value is the default of the NixOS option that declares it (nixpkgs)".into()
    } else {
        "is not declared by any module read; a module not read (a flake input's) may declare and set it".into()
    }
}

/// What `config.<path>` is when no file defines it.
fn option_default(path: &[Rc<str>]) -> Value {
    let p: Vec<&str> = path.iter().map(|s| &**s).collect();
    let known = |v: Value| v;
    match p.as_slice() {
        ["services", "tsnsrv", "enable"] => known(Value::Bool(false)),
        ["services", "tsnsrv", "services", _, f] | ["services", "tsnsrv", "defaults", f] => match *f {
            "funnel" | "plaintext" | "insecureHTTPS" | "suppressWhois" | "suppressTailnetDialer"
            | "tsnetVerbose" | "upstreamAllowInsecureCiphers" | "authInsecureHTTPS"
            | "authBypassForTailnet" => Value::Bool(false),
            "stripPrefix" => Value::Bool(true),
            "upstreamUnixAddr" | "whoisTimeout" | "readHeaderTimeout" | "urlParts" => Value::Null,
            "prefixes" | "extraArgs" => Value::List(Rc::new(Vec::new())),
            "upstreamHeaders" | "authCopyHeaders" => Value::Attrs(Rc::new(AttrMap::new())),
            "authPath" => Value::string("/api/authz/forward-auth"),
            _ => Value::Unknown(Rc::new(Unknown {
                reason: "is not set in the files read; its default comes from services.tsnsrv.defaults or the tsnsrv module".into(),
                span: None,
                what: Some(format!("config.{}", dotted(path))),
            })),
        },
        _ => Value::Unknown(Rc::new(Unknown {
            reason: "is not set in the files read; its default comes from the module that declares it".into(),
            span: None,
            what: Some(format!("config.{}", dotted(path))),
        })),
    }
}
