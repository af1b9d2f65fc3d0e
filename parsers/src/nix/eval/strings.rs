//! Strings and paths: interpolation, path literals resolved against the file they are written
//! in, and the coercion to a string that interpolation and `toString` do.
//!
//! Separate because a path's or a set's string is where values first become unknown (a store
//! path exists only once Nix copies the file; `~` depends on the user).

use crate::nix::error::{EvalError, type_err};
use crate::nix::files::{absolute, normalize};
use crate::nix::syntax::*;
use crate::nix::value::*;
use crate::source::Span;
use std::path::Path;
use std::rc::Rc;

impl Eval {
    pub(super) fn eval_string(&mut self, parts: &[StrPart], env: &Env) -> EvalResult {
        if let [StrPart::Lit(s)] = parts {
            return Ok(Value::string(s.as_str()));
        }
        let mut out = String::new();
        for p in parts {
            match p {
                StrPart::Lit(s) => out.push_str(s),
                StrPart::Interp(e) => {
                    let v = self.eval(e, env)?;
                    match self.coerce_to_string(&v, e.span, false)? {
                        Ok(s) => {
                            self.charge(s.len() / 16, e.span)?;
                            out.push_str(&s)
                        }
                        Err(u) => return Ok(u),
                    }
                }
            }
        }
        Ok(Value::string(out))
    }

    pub(super) fn eval_path(&mut self, parts: &[StrPart], env: &Env, span: Span) -> EvalResult {
        let mut text = String::new();
        for p in parts {
            match p {
                StrPart::Lit(s) => text.push_str(s),
                StrPart::Interp(e) => {
                    let v = self.eval(e, env)?;
                    match self.coerce_to_string(&v, e.span, false)? {
                        Ok(s) => text.push_str(&s),
                        Err(u) => return Ok(u),
                    }
                }
            }
        }
        if let Some(rest) = text.strip_prefix("~/") {
            return Ok(Value::unknown(
                format!("the home-relative path ~/{rest} depends on the user running Nix"),
                Some(span),
            ));
        }
        let p = Path::new(&text);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            let base = self.sources.get(span.file).path.clone();
            let dir = base.parent().map(Path::to_path_buf).unwrap_or_default();
            absolute(&dir.join(p))
        };
        Ok(Value::Path(Rc::new(normalize(&full))))
    }

    /// Coerces to a string as interpolation (`to_string == false`) or `toString` does.
    /// `Ok(Err(v))` carries an unknown value.
    pub fn coerce_to_string(
        &mut self,
        v: &Value,
        span: Span,
        to_string: bool,
    ) -> Result<Result<String, Value>, EvalError> {
        Ok(Ok(match v {
            Value::Str(s) => s.to_string(),
            Value::Unknown(_) => return Ok(Err(v.clone())),
            Value::Path(p) => {
                if to_string {
                    p.to_string_lossy().into_owned()
                } else {
                    return Ok(Err(Value::unknown(
                        format!(
                            "is the Nix store path of {}, known only once Nix copies it",
                            p.display()
                        ),
                        Some(span),
                    )));
                }
            }
            Value::Attrs(_) | Value::Config(_) => {
                // As Nix: `__toString` is called with the set itself, else `outPath` is used.
                let m = self.attrs_of(v, span)?;
                if let Some(f) = m.get("__toString") {
                    let f = self.force(&f.value.clone())?;
                    let r = self.apply(f, Thunk::value(v.clone()), span)?;
                    return self.coerce_to_string(&r, span, to_string);
                }
                if let Some(o) = m.get("outPath") {
                    let o = self.force(&o.value.clone())?;
                    return self.coerce_to_string(&o, span, to_string);
                }
                return Err(type_err("cannot coerce a set to a string", span));
            }
            Value::Int(i) if to_string => i.to_string(),
            Value::Float(f) if to_string => format!("{f:.6}"),
            Value::Bool(b) if to_string => {
                if *b {
                    "1".into()
                } else {
                    String::new()
                }
            }
            Value::Null if to_string => String::new(),
            Value::List(items) if to_string => {
                let mut parts = Vec::new();
                for t in items.iter() {
                    let v = self.force(t)?;
                    match self.coerce_to_string(&v, span, true)? {
                        Ok(s) => parts.push(s),
                        Err(u) => return Ok(Err(u)),
                    }
                }
                parts.join(" ")
            }
            other => {
                return Err(type_err(
                    format!("cannot coerce {} to a string", article(other)),
                    span,
                ));
            }
        }))
    }
}
