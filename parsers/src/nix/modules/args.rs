//! The arguments a module function is called with: `config` (lazy, the merged configuration),
//! `lib` (tailshift's), `options`, what nixpkgs would give (`pkgs`, `modulesPath`: unknown),
//! the host's `specialArgs`, and `_module.args` for the rest.

use crate::nix::error::EvalError;
use crate::nix::syntax::Param;
use crate::nix::value::*;
use std::rc::Rc;

/// A module argument that is neither standard nor a `specialArgs` entry: read from
/// `config._module.args.<name>`, unknown when the files do not set it.
fn module_arg_thunk(name: Rc<str>) -> Thunk {
    Thunk::native(move |ev| {
        let path: Vec<Rc<str>> = vec!["_module".into(), "args".into(), name.clone()];
        let defined = !ev.defs_at(&path)?.is_empty();
        if defined {
            let t = ev.config_select(&path[..2], &name, dummy_span())?;
            return ev.force(&t);
        }
        Ok(Value::Unknown(Rc::new(Unknown {
            reason: "is a module argument that neither specialArgs nor _module.args in the files read sets".into(),
            span: None,
            what: Some(name.to_string()),
        })))
    })
}

impl Eval {
    /// The arguments a module function is called with (`config`, `lib`, `options`, ...);
    /// `extra` (a submodule's own `config` and `name`) comes first.
    pub(crate) fn module_args(
        &mut self,
        f: &Value,
        extra: &[(&str, Value)],
    ) -> Result<Value, EvalError> {
        let wanted: Option<Vec<(Rc<str>, bool)>> = match f {
            Value::Lambda(c) => match &c.def.param {
                Param::Pattern { entries, ellipsis: false, .. } => {
                    Some(entries.iter().map(|(n, d)| (n.clone(), d.is_some())).collect())
                }
                Param::Pattern { entries, .. } => {
                    Some(entries.iter().map(|(n, d)| (n.clone(), d.is_some())).collect())
                }
                _ => None,
            },
            _ => None,
        };
        let lib = self.lib()?;
        let known: Vec<(&str, Value)> = vec![
            ("config", Value::Config(Rc::new(Vec::new()))),
            ("lib", lib),
            ("pkgs", Value::unknown("comes from nixpkgs, which tailshift does not read", None)),
            // Replaced below by the declarations, read lazily (all modules are loaded by then).
            ("options", Value::Null),
            (
                "modulesPath",
                Value::unknown(
                    "is the nixpkgs modules directory, which tailshift does not read",
                    None,
                ),
            ),
            ("utils", Value::unknown("comes from nixpkgs, which tailshift does not read", None)),
        ];
        // What the caller gives (a submodule's own `config` and `name`) comes first.
        let known: Vec<(&str, Value)> = extra.iter().cloned().chain(known).collect::<Vec<_>>();
        let mut m = AttrMap::new();
        match wanted {
            Some(names) => {
                for (name, has_default) in names {
                    let given = extra.iter().any(|(k, _)| **k == *name);
                    let special = (!given && !matches!(&*name, "config" | "options"))
                        .then(|| self.modules_mut().special_args.get(&name).cloned())
                        .flatten();
                    if let Some(t) = special {
                        m.insert(name.clone(), AttrEntry { value: t, span: None, cond: None });
                    } else if let Some((_, v)) = known.iter().find(|(k, _)| **k == *name) {
                        m.insert(name.clone(), entry(v.clone()));
                    } else if !has_default {
                        m.insert(
                            name.clone(),
                            AttrEntry {
                                value: module_arg_thunk(name.clone()),
                                span: None,
                                cond: None,
                            },
                        );
                    }
                }
            }
            None => {
                for (k, v) in known {
                    m.insert(k.into(), entry(v));
                }
                let special: Vec<(Rc<str>, Thunk)> = self
                    .modules_mut()
                    .special_args
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                for (k, t) in special {
                    if !matches!(&*k, "config" | "options") && !extra.iter().any(|(e, _)| **e == *k)
                    {
                        m.insert(k, AttrEntry { value: t, span: None, cond: None });
                    }
                }
            }
        }
        if let Some(e) = m.get_mut("options") {
            e.value = Thunk::native(|ev| ev.options_node(&[]));
        }
        Ok(Value::Attrs(Rc::new(m)))
    }
}
