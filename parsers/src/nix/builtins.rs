//! The `builtins` the evaluator knows, with Nix 2.8 semantics; differential tests against
//! `nix-instantiate` pin them.

use super::error::{ErrorKind, EvalError, type_err};
use super::files::normalize;
use super::syntax::Param;
use super::value::*;
use crate::source::Span;
use std::path::{Path, PathBuf};
use std::rc::Rc;

type PrimFn = fn(&mut Eval, &[Thunk], Span) -> EvalResult;

fn prim(name: &'static str, arity: usize, func: PrimFn) -> Value {
    Value::PrimOp(Rc::new(PrimOp { name, arity, func, args: Vec::new() }))
}

/// Forces argument `i`; returns early with it when it is unknown.
macro_rules! arg {
    ($ev:expr, $args:expr, $i:expr) => {{
        let v = $ev.force(&$args[$i])?;
        propagate!(v);
        v
    }};
}

fn want_int(v: &Value, span: Span) -> Result<i64, EvalError> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(type_err(
            format!("value is {} while an integer was expected", article(other)),
            span,
        )),
    }
}

fn want_str(v: &Value, span: Span) -> Result<Rc<str>, EvalError> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        other => {
            Err(type_err(format!("value is {} while a string was expected", article(other)), span))
        }
    }
}

fn want_list(v: &Value, span: Span) -> Result<Rc<Vec<Thunk>>, EvalError> {
    match v {
        Value::List(l) => Ok(l.clone()),
        other => {
            Err(type_err(format!("value is {} while a list was expected", article(other)), span))
        }
    }
}

fn want_bool(v: &Value, span: Span) -> Result<bool, EvalError> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => {
            Err(type_err(format!("value is {} while a Boolean was expected", article(other)), span))
        }
    }
}

fn list(items: Vec<Thunk>) -> Value {
    Value::List(Rc::new(items))
}

fn attrs(m: AttrMap) -> Value {
    Value::Attrs(Rc::new(m))
}

/// Coerces as string interpolation does; returns early on unknown.
macro_rules! coerce {
    ($ev:expr, $v:expr, $span:expr, $to_string:expr) => {
        match $ev.coerce_to_string(&$v, $span, $to_string)? {
            Ok(s) => s,
            Err(u) => return Ok(u),
        }
    };
}

/// A builtin the evaluator does not implement: a function of `arity` arguments whose result is
/// an unknown value naming it.
macro_rules! unsupported {
    ($name:literal, $arity:literal, $why:literal) => {
        ($name, prim($name, $arity, |_, _, s| Ok(not_supported($name, $why, s))))
    };
}

/// The root scope: `builtins` and the names Nix puts at top level.
pub fn global_env(registry: EnvRegistry) -> (Env, Thunk) {
    let b: Vec<(&'static str, Value)> = vec![
        ("add", prim("add", 2, |ev, a, s| bin(ev, a, s, super::syntax::BinOp::Add))),
        ("sub", prim("sub", 2, |ev, a, s| bin(ev, a, s, super::syntax::BinOp::Sub))),
        ("mul", prim("mul", 2, |ev, a, s| bin(ev, a, s, super::syntax::BinOp::Mul))),
        ("div", prim("div", 2, |ev, a, s| bin(ev, a, s, super::syntax::BinOp::Div))),
        ("lessThan", prim("lessThan", 2, |ev, a, s| bin(ev, a, s, super::syntax::BinOp::Less))),
        ("bitAnd", prim("bitAnd", 2, |ev, a, s| bits(ev, a, s, |x, y| x & y))),
        ("bitOr", prim("bitOr", 2, |ev, a, s| bits(ev, a, s, |x, y| x | y))),
        ("bitXor", prim("bitXor", 2, |ev, a, s| bits(ev, a, s, |x, y| x ^ y))),
        ("ceil", prim("ceil", 1, |ev, a, s| round(ev, a, s, f64::ceil))),
        ("floor", prim("floor", 1, |ev, a, s| round(ev, a, s, f64::floor))),
        ("all", prim("all", 2, |ev, a, s| any_all(ev, a, s, false))),
        ("any", prim("any", 2, |ev, a, s| any_all(ev, a, s, true))),
        ("attrNames", prim("attrNames", 1, attr_names)),
        ("attrValues", prim("attrValues", 1, attr_values)),
        ("baseNameOf", prim("baseNameOf", 1, base_name_of)),
        ("dirOf", prim("dirOf", 1, dir_of)),
        ("catAttrs", prim("catAttrs", 2, cat_attrs)),
        ("compareVersions", prim("compareVersions", 2, compare_versions)),
        ("splitVersion", prim("splitVersion", 1, split_version_prim)),
        ("parseDrvName", prim("parseDrvName", 1, parse_drv_name)),
        ("concatLists", prim("concatLists", 1, concat_lists)),
        ("concatMap", prim("concatMap", 2, concat_map)),
        ("concatStringsSep", prim("concatStringsSep", 2, concat_strings_sep)),
        ("deepSeq", prim("deepSeq", 2, deep_seq)),
        (
            "seq",
            prim("seq", 2, |ev, a, _| {
                ev.force(&a[0])?;
                ev.force(&a[1])
            }),
        ),
        ("elem", prim("elem", 2, elem)),
        ("elemAt", prim("elemAt", 2, elem_at)),
        ("filter", prim("filter", 2, filter)),
        ("foldl'", prim("foldl'", 3, foldl)),
        ("fromJSON", prim("fromJSON", 1, from_json)),
        ("toJSON", prim("toJSON", 1, to_json)),
        ("functionArgs", prim("functionArgs", 1, function_args)),
        ("genList", prim("genList", 2, gen_list)),
        ("getAttr", prim("getAttr", 2, get_attr)),
        ("hasAttr", prim("hasAttr", 2, has_attr)),
        ("groupBy", prim("groupBy", 2, group_by)),
        ("hashString", prim("hashString", 2, hash_string)),
        (
            "head",
            prim("head", 1, |ev, a, s| {
                let l = want_list(&arg!(ev, a, 0), s)?;
                match l.first() {
                    Some(t) => ev.force(&t.clone()),
                    None => Err(EvalError::new(
                        ErrorKind::Other,
                        "list index 0 is out of bounds",
                        Some(s),
                    )),
                }
            }),
        ),
        (
            "tail",
            prim("tail", 1, |ev, a, s| {
                let l = want_list(&arg!(ev, a, 0), s)?;
                if l.is_empty() {
                    return Err(EvalError::new(
                        ErrorKind::Other,
                        "'tail' called on an empty list",
                        Some(s),
                    ));
                }
                Ok(list(l[1..].to_vec()))
            }),
        ),
        (
            "length",
            prim("length", 1, |ev, a, s| {
                Ok(Value::Int(want_list(&arg!(ev, a, 0), s)?.len() as i64))
            }),
        ),
        ("intersectAttrs", prim("intersectAttrs", 2, intersect_attrs)),
        (
            "isAttrs",
            prim("isAttrs", 1, |ev, a, _| {
                is(ev, a, |v| matches!(v, Value::Attrs(_) | Value::Config(_)))
            }),
        ),
        ("isBool", prim("isBool", 1, |ev, a, _| is(ev, a, |v| matches!(v, Value::Bool(_))))),
        ("isFloat", prim("isFloat", 1, |ev, a, _| is(ev, a, |v| matches!(v, Value::Float(_))))),
        (
            "isFunction",
            prim("isFunction", 1, |ev, a, _| {
                is(ev, a, |v| matches!(v, Value::Lambda(_) | Value::PrimOp(_)))
            }),
        ),
        ("isInt", prim("isInt", 1, |ev, a, _| is(ev, a, |v| matches!(v, Value::Int(_))))),
        ("isList", prim("isList", 1, |ev, a, _| is(ev, a, |v| matches!(v, Value::List(_))))),
        ("isNull", prim("isNull", 1, |ev, a, _| is(ev, a, |v| matches!(v, Value::Null)))),
        ("isPath", prim("isPath", 1, |ev, a, _| is(ev, a, |v| matches!(v, Value::Path(_))))),
        ("isString", prim("isString", 1, |ev, a, _| is(ev, a, |v| matches!(v, Value::Str(_))))),
        ("listToAttrs", prim("listToAttrs", 1, list_to_attrs)),
        ("map", prim("map", 2, map)),
        ("mapAttrs", prim("mapAttrs", 2, map_attrs)),
        ("match", prim("match", 2, regex_match)),
        ("split", prim("split", 2, regex_split)),
        ("partition", prim("partition", 2, partition)),
        ("pathExists", prim("pathExists", 1, path_exists)),
        ("readFile", prim("readFile", 1, read_file)),
        ("removeAttrs", prim("removeAttrs", 2, remove_attrs)),
        ("replaceStrings", prim("replaceStrings", 3, replace_strings)),
        ("sort", prim("sort", 2, sort)),
        (
            "stringLength",
            prim("stringLength", 1, |ev, a, s| {
                let v = arg!(ev, a, 0);
                let st = coerce!(ev, v, s, false);
                Ok(Value::Int(st.len() as i64))
            }),
        ),
        ("substring", prim("substring", 3, substring)),
        (
            "throw",
            prim("throw", 1, |ev, a, s| {
                let v = arg!(ev, a, 0);
                let msg = coerce!(ev, v, s, false);
                Err(EvalError::new(ErrorKind::Throw, msg, Some(s)))
            }),
        ),
        (
            "abort",
            prim("abort", 1, |ev, a, s| {
                let v = arg!(ev, a, 0);
                let msg = coerce!(ev, v, s, false);
                Err(EvalError::new(
                    ErrorKind::Abort,
                    format!("evaluation aborted with the following error message: '{msg}'"),
                    Some(s),
                ))
            }),
        ),
        (
            "toString",
            prim("toString", 1, |ev, a, s| {
                let v = arg!(ev, a, 0);
                Ok(Value::string(coerce!(ev, v, s, true)))
            }),
        ),
        (
            "trace",
            prim("trace", 2, |ev, a, _| {
                ev.force(&a[0])?;
                ev.force(&a[1])
            }),
        ),
        ("tryEval", prim("tryEval", 1, try_eval)),
        (
            "typeOf",
            prim("typeOf", 1, |ev, a, _| {
                let v = arg!(ev, a, 0);
                Ok(Value::string(v.type_name()))
            }),
        ),
        ("zipAttrsWith", prim("zipAttrsWith", 2, zip_attrs_with)),
        ("addErrorContext", prim("addErrorContext", 2, |ev, a, _| ev.force(&a[1]))),
        (
            "unsafeDiscardStringContext",
            prim("unsafeDiscardStringContext", 1, |ev, a, _| ev.force(&a[0])),
        ),
        (
            "hasContext",
            prim("hasContext", 1, |ev, a, _| {
                arg!(ev, a, 0);
                Ok(Value::Bool(false))
            }),
        ),
        ("unsafeGetAttrPos", prim("unsafeGetAttrPos", 2, unsafe_get_attr_pos)),
        (
            "import",
            prim("import", 1, |ev, a, s| {
                let v = ev.force(&a[0])?;
                ev.import(&v, s)
            }),
        ),
        (
            "getEnv",
            prim("getEnv", 1, |ev, a, s| {
                let v = arg!(ev, a, 0);
                let name = want_str(&v, s)?;
                Ok(named_unknown(
                    format!("builtins.getEnv \"{name}\""),
                    format!(
                        "is the environment variable {name} of the machine that evaluates the configuration"
                    ),
                    Some(s),
                ))
            }),
        ),
        ("fromTOML", prim("fromTOML", 1, from_toml)),
        ("readDir", prim("readDir", 1, read_dir)),
        ("hashFile", prim("hashFile", 2, hash_file)),
        ("genericClosure", prim("genericClosure", 1, generic_closure)),
        ("toPath", prim("toPath", 1, to_path)),
        ("placeholder", prim("placeholder", 1, placeholder)),
        (
            "getContext",
            prim("getContext", 1, |ev, a, s| {
                // Every string the evaluator knows is free of context: what would carry one
                // (store paths, derivations) is unknown.
                want_str(&arg!(ev, a, 0), s)?;
                Ok(attrs(AttrMap::new()))
            }),
        ),
        (
            "appendContext",
            prim("appendContext", 2, |ev, a, s| {
                let v = arg!(ev, a, 0);
                want_str(&v, s)?;
                let ctx = arg!(ev, a, 1);
                ev.attrs_of(&ctx, s)?;
                Ok(v)
            }),
        ),
        (
            "unsafeDiscardOutputDependency",
            prim("unsafeDiscardOutputDependency", 1, |ev, a, s| {
                let v = arg!(ev, a, 0);
                Ok(Value::string(coerce!(ev, v, s, false)))
            }),
        ),
        (
            "__tailshiftUnknown",
            prim("__tailshiftUnknown", 1, |ev, a, s| {
                let reason = want_str(&arg!(ev, a, 0), s)?;
                Ok(Value::unknown(reason.to_string(), Some(s)))
            }),
        ),
        ("true", Value::Bool(true)),
        ("false", Value::Bool(false)),
        ("null", Value::Null),
        ("storeDir", Value::string(STORE_DIR)),
        ("langVersion", Value::Int(6)),
        ("nixVersion", Value::string("2.8.0")),
        (
            "currentSystem",
            named_unknown(
                "builtins.currentSystem",
                "is the system of the machine that evaluates the configuration",
                None,
            ),
        ),
        (
            "currentTime",
            named_unknown(
                "builtins.currentTime",
                "is the time at which the configuration is evaluated",
                None,
            ),
        ),
        (
            "nixPath",
            named_unknown(
                "builtins.nixPath",
                "is the search path of the machine that evaluates the configuration",
                None,
            ),
        ),
        unsupported!("derivation", 1, "it builds a package"),
        unsupported!("derivationStrict", 1, "it builds a package"),
        unsupported!("fetchTarball", 1, "it downloads from the network"),
        unsupported!("fetchGit", 1, "it downloads from the network"),
        unsupported!("fetchMercurial", 1, "it downloads from the network"),
        unsupported!("fetchTree", 1, "it downloads from the network"),
        unsupported!("fetchurl", 1, "it downloads from the network"),
        // Present when the `flakes` experimental feature is on, as it is for flake configurations.
        unsupported!("getFlake", 1, "it reads a flake and its inputs"),
        unsupported!("toFile", 2, "it writes to the Nix store"),
        unsupported!("path", 1, "it copies into the Nix store"),
        unsupported!("filterSource", 2, "it copies into the Nix store"),
        unsupported!("storePath", 1, "it reads the Nix store"),
        unsupported!("findFile", 2, "it searches the Nix search path"),
        unsupported!("scopedImport", 2, "it is not implemented"),
        unsupported!("toXML", 1, "it is not implemented"),
    ];
    let mut map = AttrMap::new();
    let mut internal = Vec::new();
    for (name, v) in b {
        if name.starts_with("__") {
            internal.push((name, v));
        } else {
            map.insert(name.into(), entry(v));
        }
    }
    // `builtins.builtins` exists in Nix too.
    let builtins_thunk = Thunk::value(Value::Null);
    map.insert(
        "builtins".into(),
        AttrEntry { value: builtins_thunk.clone(), span: None, cond: None },
    );
    let builtins = Value::Attrs(Rc::new(map));
    *builtins_thunk.0.borrow_mut() = ThunkState::Done(builtins.clone());

    // As in Nix, a few builtins are bound at top level under their own name and every other
    // one under its name prefixed with `__`.
    let mut vars = VarMap::default();
    if let Value::Attrs(m) = &builtins {
        for (name, e) in m.iter() {
            let top: Rc<str> = if TOP_LEVEL.contains(&&**name) {
                name.clone()
            } else {
                format!("__{name}").into()
            };
            vars.insert(top, e.value.clone());
        }
    }
    vars.insert("builtins".into(), builtins_thunk.clone());
    // tailshift's own helpers (used by `lib.nix`), invisible in `builtins`.
    for (name, v) in internal {
        vars.insert(name.into(), Thunk::value(v));
    }
    (Env::top(vars, registry), builtins_thunk)
}

/// Where Nix keeps its store; nothing under it is read.
pub const STORE_DIR: &str = "/nix/store";

/// The builtins Nix 2.8 binds at top level under their own name (the others are `__name`).
const TOP_LEVEL: &[&str] = &[
    "abort",
    "baseNameOf",
    "derivation",
    "derivationStrict",
    "dirOf",
    "false",
    "fetchGit",
    "fetchMercurial",
    "fetchTarball",
    "fetchTree",
    "fromTOML",
    "import",
    "isNull",
    "map",
    "null",
    "placeholder",
    "removeAttrs",
    "scopedImport",
    "throw",
    "toString",
    "true",
];

/// An unknown value that names what produced it (`builtins.fetchGit`, `builtins.readFile /x`).
fn named_unknown(what: impl Into<String>, reason: impl Into<String>, span: Option<Span>) -> Value {
    Value::Unknown(Rc::new(Unknown { reason: reason.into(), span, what: Some(what.into()) }))
}

/// The result of a builtin the evaluator does not implement.
pub fn not_supported(name: &str, why: &str, span: Span) -> Value {
    named_unknown(
        format!("builtins.{name}"),
        format!("is not supported by tailshift's evaluator ({why})"),
        Some(span),
    )
}

fn bin(ev: &mut Eval, a: &[Thunk], s: Span, op: super::syntax::BinOp) -> EvalResult {
    let x = arg!(ev, a, 0);
    let y = arg!(ev, a, 1);
    ev.binop_values(op, x, y, s)
}

fn bits(ev: &mut Eval, a: &[Thunk], s: Span, f: fn(i64, i64) -> i64) -> EvalResult {
    let x = want_int(&arg!(ev, a, 0), s)?;
    let y = want_int(&arg!(ev, a, 1), s)?;
    Ok(Value::Int(f(x, y)))
}

fn round(ev: &mut Eval, a: &[Thunk], s: Span, f: fn(f64) -> f64) -> EvalResult {
    match arg!(ev, a, 0) {
        Value::Int(i) => Ok(Value::Int(i)),
        Value::Float(x) => Ok(Value::Int(f(x) as i64)),
        other => {
            Err(type_err(format!("value is {} while a float was expected", article(&other)), s))
        }
    }
}

fn is(ev: &mut Eval, a: &[Thunk], f: fn(&Value) -> bool) -> EvalResult {
    let v = arg!(ev, a, 0);
    Ok(Value::Bool(f(&v)))
}

fn any_all(ev: &mut Eval, a: &[Thunk], s: Span, any: bool) -> EvalResult {
    let f = arg!(ev, a, 0);
    let l = want_list(&arg!(ev, a, 1), s)?;
    let mut unknown = None;
    for t in l.iter() {
        let r = ev.apply(f.clone(), t.clone(), s)?;
        match r {
            Value::Bool(b) if b == any => return Ok(Value::Bool(any)),
            Value::Bool(_) => {}
            Value::Unknown(_) => unknown = Some(r),
            other => {
                return Err(type_err(
                    format!("value is {} while a Boolean was expected", article(&other)),
                    s,
                ));
            }
        }
    }
    Ok(unknown.unwrap_or(Value::Bool(!any)))
}

/// An unknown when a set's attribute names are not all certain (see [`uncertain_names`]).
fn names_unknown(m: &AttrMap, what: &str) -> Option<Value> {
    uncertain_names(m).map(|u| {
        Value::Unknown(Rc::new(Unknown {
            reason: format!(
                "({what} of a set whose attribute names are not all certain) {}",
                u.describe()
            ),
            span: u.span,
            what: None,
        }))
    })
}

fn attr_names(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let v = arg!(ev, a, 0);
    let m = ev.attrs_of(&v, s)?;
    if let Some(u) = names_unknown(&m, "attrNames") {
        return Ok(u);
    }
    Ok(list(m.keys().map(|k| Thunk::value(Value::Str(k.clone()))).collect()))
}

fn attr_values(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let v = arg!(ev, a, 0);
    let m = ev.attrs_of(&v, s)?;
    if let Some(u) = names_unknown(&m, "attrValues") {
        return Ok(u);
    }
    Ok(list(m.values().map(|e| e.value.clone()).collect()))
}

fn base_name_of(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let v = arg!(ev, a, 0);
    let st = coerce!(ev, v, s, true);
    let trimmed = st.strip_suffix('/').unwrap_or(&st);
    Ok(Value::string(trimmed.rsplit('/').next().unwrap_or("")))
}

fn dir_of(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let v = arg!(ev, a, 0);
    let is_path = matches!(v, Value::Path(_));
    let st = coerce!(ev, v, s, true);
    let dir = match st.rfind('/') {
        Some(0) => "/".to_string(),
        Some(i) => st[..i].to_string(),
        None => ".".to_string(),
    };
    Ok(if is_path { Value::Path(Rc::new(PathBuf::from(dir))) } else { Value::string(dir) })
}

fn cat_attrs(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let name = want_str(&arg!(ev, a, 0), s)?;
    let l = want_list(&arg!(ev, a, 1), s)?;
    let mut out = Vec::new();
    for t in l.iter() {
        let v = ev.force(t)?;
        propagate!(v);
        let m = ev.attrs_of(&v, s)?;
        if let Some(u) = names_unknown(&m, "catAttrs") {
            return Ok(u);
        }
        if let Some(e) = m.get(&*name) {
            out.push(e.value.clone());
        }
    }
    Ok(list(out))
}

/// Nix's version components: runs of digits, runs of other non-separator characters.
fn split_version(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = v.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '.' || c == '-' {
            i += 1;
            continue;
        }
        let digit = c.is_ascii_digit();
        let start = i;
        while i < chars.len()
            && chars[i] != '.'
            && chars[i] != '-'
            && chars[i].is_ascii_digit() == digit
        {
            i += 1;
        }
        out.push(chars[start..i].iter().collect());
    }
    out
}

fn component_less(a: &str, b: &str) -> bool {
    let an = a.parse::<u64>().ok();
    let bn = b.parse::<u64>().ok();
    match (an, bn) {
        (Some(x), Some(y)) => x < y,
        _ if a.is_empty() && bn.is_some() => true,
        _ if a == "pre" && b != "pre" => true,
        _ if b == "pre" => false,
        _ if bn.is_some() => true,
        _ if an.is_some() => false,
        _ => a < b,
    }
}

fn compare_versions(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let x = want_str(&arg!(ev, a, 0), s)?;
    let y = want_str(&arg!(ev, a, 1), s)?;
    let xs = split_version(&x);
    let ys = split_version(&y);
    let n = xs.len().max(ys.len());
    for i in 0..n {
        let c1 = xs.get(i).map(String::as_str).unwrap_or("");
        let c2 = ys.get(i).map(String::as_str).unwrap_or("");
        if component_less(c1, c2) {
            return Ok(Value::Int(-1));
        }
        if component_less(c2, c1) {
            return Ok(Value::Int(1));
        }
    }
    Ok(Value::Int(0))
}

fn split_version_prim(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let x = want_str(&arg!(ev, a, 0), s)?;
    Ok(list(split_version(&x).into_iter().map(|c| Thunk::value(Value::string(c))).collect()))
}

fn parse_drv_name(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let x = want_str(&arg!(ev, a, 0), s)?;
    let bytes = x.as_bytes();
    let mut split = None;
    for i in 0..bytes.len() {
        if bytes[i] == b'-' && i + 1 < bytes.len() && !bytes[i + 1].is_ascii_alphabetic() {
            split = Some(i);
            break;
        }
    }
    let (name, version) = match split {
        Some(i) => (&x[..i], &x[i + 1..]),
        None => (&*x, ""),
    };
    let mut m = AttrMap::new();
    m.insert("name".into(), entry(Value::string(name)));
    m.insert("version".into(), entry(Value::string(version)));
    Ok(attrs(m))
}

fn concat_lists(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let l = want_list(&arg!(ev, a, 0), s)?;
    let mut out = Vec::new();
    for t in l.iter() {
        let v = ev.force(t)?;
        propagate!(v);
        out.extend(want_list(&v, s)?.iter().cloned());
    }
    Ok(list(out))
}

fn concat_map(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let f = arg!(ev, a, 0);
    let l = want_list(&arg!(ev, a, 1), s)?;
    let mut out = Vec::new();
    for t in l.iter() {
        let v = ev.apply(f.clone(), t.clone(), s)?;
        propagate!(v);
        out.extend(want_list(&v, s)?.iter().cloned());
    }
    Ok(list(out))
}

fn concat_strings_sep(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let sep = want_str(&arg!(ev, a, 0), s)?;
    let l = want_list(&arg!(ev, a, 1), s)?;
    let mut out = String::new();
    for (i, t) in l.iter().enumerate() {
        if i > 0 {
            out.push_str(&sep);
        }
        let v = ev.force(t)?;
        out.push_str(&coerce!(ev, v, s, false));
    }
    Ok(Value::string(out))
}

/// Forces a value and everything inside it.
pub fn deep_force(ev: &mut Eval, v: &Value) -> Result<(), EvalError> {
    deep_force_at(ev, v, 0)
}

fn deep_force_at(ev: &mut Eval, v: &Value, depth: usize) -> Result<(), EvalError> {
    if depth > MAX_EVAL_DEPTH {
        return Err(EvalError::new(
            ErrorKind::Budget,
            "value nested too deeply (a value that contains itself?)",
            None,
        ));
    }
    match v {
        Value::List(l) => {
            for t in l.iter() {
                let v = ev.force(t)?;
                deep_force_at(ev, &v, depth + 1)?;
            }
        }
        Value::Attrs(m) => {
            for e in m.values() {
                let v = ev.force(&e.value)?;
                deep_force_at(ev, &v, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn deep_seq(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let v = ev.force(&a[0])?;
    deep_force(ev, &v)?;
    let _ = s;
    ev.force(&a[1])
}

/// Lists at least this long get a hash set the first time `elem` searches them: the pattern
/// `builtins.elem name registry.funnels`, run once per service, is otherwise quadratic.
const ELEM_INDEX_MIN_LEN: usize = 16;

fn elem(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let x = ev.force(&a[0])?;
    let l = want_list(&arg!(ev, a, 1), s)?;
    if let Value::Str(needle) = &x
        && l.len() >= ELEM_INDEX_MIN_LEN
        && let Some(set) = ev.string_index(&l)
    {
        return Ok(Value::Bool(set.contains(needle)));
    }
    let mut unknown = None;
    for t in l.iter() {
        let v = ev.force(t)?;
        match ev.equal(&x, &v, s)? {
            Some(true) => return Ok(Value::Bool(true)),
            Some(false) => {}
            None => unknown = Some(if let Value::Unknown(_) = x { x.clone() } else { v }),
        }
    }
    Ok(unknown.unwrap_or(Value::Bool(false)))
}

fn elem_at(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let l = want_list(&arg!(ev, a, 0), s)?;
    let i = want_int(&arg!(ev, a, 1), s)?;
    match usize::try_from(i).ok().and_then(|i| l.get(i)) {
        Some(t) => ev.force(&t.clone()),
        None => Err(EvalError::new(
            ErrorKind::Other,
            format!("list index {i} is out of bounds"),
            Some(s),
        )),
    }
}

fn filter(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let f = arg!(ev, a, 0);
    let l = want_list(&arg!(ev, a, 1), s)?;
    let mut out = Vec::new();
    for t in l.iter() {
        let r = ev.apply(f.clone(), t.clone(), s)?;
        propagate!(r);
        if want_bool(&r, s)? {
            out.push(t.clone());
        }
    }
    Ok(list(out))
}

fn foldl(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let f = arg!(ev, a, 0);
    let l = want_list(&arg!(ev, a, 2), s)?;
    let mut acc = ev.force(&a[1])?;
    for t in l.iter() {
        let g = ev.apply(f.clone(), Thunk::value(acc), s)?;
        acc = ev.apply(g, t.clone(), s)?;
    }
    Ok(acc)
}

/// Whether each number of a JSON text, in order, is written as an integer (no fraction, no
/// exponent). serde_json reads `-0` as a float where Nix reads the integer 0.
fn json_integer_literals(text: &str) -> Vec<bool> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                out.push(!bytes[start..i].iter().any(|c| matches!(c, b'.' | b'e' | b'E')));
            }
            _ => i += 1,
        }
    }
    out
}

/// Builds Nix values straight from the JSON parser, numbers as Nix 2.8 reads them: integers
/// above i64::MAX (up to u64::MAX) wrap around, larger ones and fractions are floats, `-0` is 0;
/// a key given twice keeps its last value.
#[derive(Clone, Copy)]
struct JsonSeed<'a> {
    integers: &'a [bool],
    next_number: &'a std::cell::Cell<usize>,
}

impl JsonSeed<'_> {
    fn number(&self) -> bool {
        let i = self.next_number.get();
        self.next_number.set(i + 1);
        self.integers.get(i).copied().unwrap_or(false)
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for JsonSeed<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonSeed<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        self.number();
        Ok(Value::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        self.number();
        Ok(Value::Int(u as i64))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        let integer = self.number();
        Ok(if integer && f == 0.0 { Value::Int(0) } else { Value::Float(f) })
    }
    fn visit_str<E>(self, st: &str) -> Result<Value, E> {
        Ok(Value::string(st))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(Thunk::value(v));
        }
        Ok(list(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = AttrMap::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(self)?;
            out.insert(k.into(), entry(v));
        }
        Ok(attrs(out))
    }
}

fn from_json(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    use serde::de::DeserializeSeed;
    let text = want_str(&arg!(ev, a, 0), s)?;
    ev.charge(text.len() / 16, s)?;
    let integers = json_integer_literals(&text);
    let next_number = std::cell::Cell::new(0);
    let seed = JsonSeed { integers: &integers, next_number: &next_number };
    let mut de = serde_json::Deserializer::from_str(&text);
    match seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v)) {
        Ok(v) => Ok(v),
        Err(e) => Err(EvalError::new(ErrorKind::Other, format!("invalid JSON: {e}"), Some(s))),
    }
}

fn to_json(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let v = arg!(ev, a, 0);
    match ev.to_json(&v, s)? {
        Ok(j) => Ok(Value::string(nix_json_string(&j))),
        Err(u) => Ok(Value::Unknown(u)),
    }
}

/// JSON text as Nix prints it (compact, floats in C++ default notation).
pub fn nix_json_string(j: &serde_json::Value) -> String {
    serde_json::to_string(j).unwrap_or_default()
}

fn function_args(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let f = arg!(ev, a, 0);
    let mut m = AttrMap::new();
    match &f {
        Value::Lambda(c) => {
            if let Param::Pattern { entries, .. } = &c.def.param {
                for (name, default) in entries {
                    m.insert(name.clone(), entry(Value::Bool(default.is_some())));
                }
            }
        }
        Value::PrimOp(_) => {}
        other => {
            return Err(type_err(
                format!("'functionArgs' requires a function, got {}", article(other)),
                s,
            ));
        }
    }
    Ok(attrs(m))
}

fn gen_list(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let f = arg!(ev, a, 0);
    let n = want_int(&arg!(ev, a, 1), s)?;
    if n < 0 {
        return Err(EvalError::new(
            ErrorKind::Other,
            format!("cannot create list of size {n}"),
            Some(s),
        ));
    }
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let f = f.clone();
        out.push(Thunk::native(move |ev| ev.apply(f, Thunk::value(Value::Int(i)), s)));
    }
    Ok(list(out))
}

fn get_attr(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let name = want_str(&arg!(ev, a, 0), s)?;
    let v = arg!(ev, a, 1);
    match ev.select(&v, &name, s)? {
        Some(t) => ev.force(&t),
        None => Err(EvalError::new(
            ErrorKind::MissingAttr,
            format!("attribute '{name}' missing"),
            Some(s),
        )),
    }
}

fn has_attr(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let name = want_str(&arg!(ev, a, 0), s)?;
    let v = arg!(ev, a, 1);
    let m = ev.attrs_of(&v, s)?;
    match m.get(&*name) {
        Some(e) if e.cond.is_none() => Ok(Value::Bool(true)),
        Some(_) => Ok(names_unknown(&m, "hasAttr").unwrap_or(Value::Bool(true))),
        None => Ok(if m.contains_key(REST_KEY) {
            names_unknown(&m, "hasAttr").unwrap_or(Value::Bool(false))
        } else {
            Value::Bool(false)
        }),
    }
}

fn group_by(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let f = arg!(ev, a, 0);
    let l = want_list(&arg!(ev, a, 1), s)?;
    let mut groups: std::collections::BTreeMap<Rc<str>, Vec<Thunk>> = Default::default();
    for t in l.iter() {
        let k = ev.apply(f.clone(), t.clone(), s)?;
        propagate!(k);
        groups.entry(want_str(&k, s)?).or_default().push(t.clone());
    }
    let mut m = AttrMap::new();
    for (k, v) in groups {
        m.insert(k, entry(list(v)));
    }
    Ok(attrs(m))
}

fn hash_string(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let algo = want_str(&arg!(ev, a, 0), s)?;
    let text = want_str(&arg!(ev, a, 1), s)?;
    Ok(Value::string(hex(&digest(&algo, text.as_bytes(), s)?)))
}

fn intersect_attrs(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let x = arg!(ev, a, 0);
    let y = arg!(ev, a, 1);
    let x = ev.attrs_of(&x, s)?;
    let y = ev.attrs_of(&y, s)?;
    if let Some(u) = names_unknown(&x, "intersectAttrs") {
        return Ok(u);
    }
    let mut m = AttrMap::new();
    for (k, e) in y.iter() {
        if x.contains_key(k) {
            m.insert(k.clone(), e.clone());
        }
    }
    Ok(attrs(m))
}

fn list_to_attrs(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let l = want_list(&arg!(ev, a, 0), s)?;
    let mut m = AttrMap::new();
    for t in l.iter() {
        let v = ev.force(t)?;
        propagate!(v);
        let item = ev.attrs_of(&v, s)?;
        let Some(name) = item.get("name") else {
            return Err(EvalError::new(
                ErrorKind::MissingAttr,
                "attribute 'name' missing",
                Some(s),
            ));
        };
        let name_v = ev.force(&name.value.clone())?;
        if let Value::Unknown(u) = &name_v {
            ev.diagnostics.push(
                crate::diagnostic::Diagnostic::warning(
                    "unknown_attribute_name",
                    format!(
                        "an attribute name built by listToAttrs cannot be known: {}",
                        u.describe()
                    ),
                )
                .at(Some(ev.sources.location(u.span.unwrap_or(s)))),
            );
            continue;
        }
        let name_s = want_str(&name_v, s)?;
        let Some(value) = item.get("value") else {
            return Err(EvalError::new(
                ErrorKind::MissingAttr,
                "attribute 'value' missing",
                Some(s),
            ));
        };
        m.entry(name_s).or_insert(AttrEntry {
            value: value.value.clone(),
            span: value.span.or(name.span),
            cond: None,
        });
    }
    Ok(attrs(m))
}

fn map(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let f = arg!(ev, a, 0);
    let l = want_list(&arg!(ev, a, 1), s)?;
    Ok(list(
        l.iter()
            .map(|t| {
                let f = f.clone();
                let t = t.clone();
                Thunk::native(move |ev| ev.apply(f, t, s))
            })
            .collect(),
    ))
}

fn map_attrs(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let f = arg!(ev, a, 0);
    let v = arg!(ev, a, 1);
    let m = ev.attrs_of(&v, s)?;
    let mut out = AttrMap::new();
    for (k, e) in m.iter() {
        if &**k == REST_KEY {
            out.insert(k.clone(), e.clone());
            continue;
        }
        let f = f.clone();
        let name = Thunk::value(Value::Str(k.clone()));
        let value = e.value.clone();
        let t = Thunk::native(move |ev| {
            let g = ev.apply(f, name, s)?;
            ev.apply(g, value, s)
        });
        out.insert(k.clone(), AttrEntry { value: t, span: e.span, cond: e.cond.clone() });
    }
    Ok(attrs(out))
}

/// Translates a POSIX extended regular expression to the `regex` crate's syntax.
fn posix_regex(re: &str, whole: bool) -> Result<regex::Regex, String> {
    let mut out = String::new();
    let chars: Vec<char> = re.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '[' {
            // Copy a bracket expression, translating character classes.
            let mut j = i + 1;
            out.push('[');
            if j < chars.len() && chars[j] == '^' {
                out.push('^');
                j += 1;
            }
            if j < chars.len() && chars[j] == ']' {
                out.push_str("\\]");
                j += 1;
            }
            while j < chars.len() && chars[j] != ']' {
                if chars[j] == '[' && j + 1 < chars.len() && chars[j + 1] == ':' {
                    let end = chars[j..].iter().collect::<String>().find(":]").map(|e| j + e);
                    if let Some(e) = end {
                        out.extend(chars[j..e + 2].iter());
                        j = e + 2;
                        continue;
                    }
                }
                if chars[j] == '\\' || (chars[j] == '[') {
                    out.push('\\');
                }
                out.push(chars[j]);
                j += 1;
            }
            out.push(']');
            i = j + 1;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    let pat = if whole { format!("^(?:{out})$") } else { out };
    regex::Regex::new(&pat).map_err(|e| e.to_string())
}

fn captures_list(caps: &regex::Captures) -> Vec<Thunk> {
    (1..caps.len())
        .map(|i| {
            Thunk::value(match caps.get(i) {
                Some(m) => Value::string(m.as_str()),
                None => Value::Null,
            })
        })
        .collect()
}

fn regex_match(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let re = want_str(&arg!(ev, a, 0), s)?;
    let text = want_str(&arg!(ev, a, 1), s)?;
    let re = posix_regex(&re, true).map_err(|e| {
        EvalError::new(ErrorKind::Other, format!("invalid regular expression: {e}"), Some(s))
    })?;
    Ok(match re.captures(&text) {
        Some(c) => list(captures_list(&c)),
        None => Value::Null,
    })
}

fn regex_split(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let re = want_str(&arg!(ev, a, 0), s)?;
    let text = want_str(&arg!(ev, a, 1), s)?;
    let re = posix_regex(&re, false).map_err(|e| {
        EvalError::new(ErrorKind::Other, format!("invalid regular expression: {e}"), Some(s))
    })?;
    let mut out = Vec::new();
    let mut last = 0;
    for c in re.captures_iter(&text) {
        let m = c.get(0).expect("group 0");
        out.push(Thunk::value(Value::string(&text[last..m.start()])));
        out.push(Thunk::value(list(captures_list(&c))));
        last = m.end();
    }
    out.push(Thunk::value(Value::string(&text[last..])));
    Ok(list(out))
}

fn partition(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let f = arg!(ev, a, 0);
    let l = want_list(&arg!(ev, a, 1), s)?;
    let (mut right, mut wrong) = (Vec::new(), Vec::new());
    for t in l.iter() {
        let r = ev.apply(f.clone(), t.clone(), s)?;
        propagate!(r);
        if want_bool(&r, s)? { right.push(t.clone()) } else { wrong.push(t.clone()) }
    }
    let mut m = AttrMap::new();
    m.insert("right".into(), entry(list(right)));
    m.insert("wrong".into(), entry(list(wrong)));
    Ok(attrs(m))
}

/// Coerces to an absolute path as Nix's `coerceToPath` does: a path, or a string (or a set with
/// `__toString`/`outPath`) naming an absolute path. `Ok(Err(_))` carries an unknown.
fn path_of(ev: &mut Eval, v: Value, s: Span) -> Result<Result<PathBuf, Value>, EvalError> {
    Ok(Ok(match v {
        Value::Path(p) => (*p).clone(),
        other => match ev.coerce_to_string(&other, s, false)? {
            Ok(st) if st.starts_with('/') => normalize(Path::new(&st)),
            Ok(st) => {
                return Err(EvalError::new(
                    ErrorKind::Other,
                    format!("string '{st}' doesn't represent an absolute path"),
                    Some(s),
                ));
            }
            Err(u) => return Ok(Err(u)),
        },
    }))
}

/// The path with symbolic links resolved as far as it exists (the rest appended as written).
fn canonical(p: &Path) -> PathBuf {
    for anc in p.ancestors() {
        if let Ok(c) = std::fs::canonicalize(anc) {
            return match p.strip_prefix(anc) {
                Ok(rest) if !rest.as_os_str().is_empty() => c.join(rest),
                _ => c,
            };
        }
    }
    p.to_path_buf()
}

/// The configuration tree a call belongs to: the nearest directory above the calling file that
/// holds `flake.nix` or `.git`; without one, the parent of the calling file's directory.
fn config_tree(ev: &Eval, s: Span) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_default();
    // A call from tailshift's own Nix (`lib.importJSON`) reads for the user's file.
    let mut src = ev.sources.get(s.file);
    if src.path.to_string_lossy().starts_with('<')
        && let Some(user) = ev.sources.first_user_file()
    {
        src = user;
    }
    let file = normalize(&cwd.join(&src.path));
    let dir = file.parent().map(Path::to_path_buf).unwrap_or(cwd);
    for anc in dir.ancestors() {
        if anc.parent().is_none() {
            break;
        }
        if anc.join("flake.nix").exists() || anc.join(".git").exists() {
            return anc.to_path_buf();
        }
    }
    match dir.parent() {
        Some(p) if p.parent().is_some() => p.to_path_buf(),
        _ => dir,
    }
}

/// Why a file builtin does not look at `p`, if it does not: files in the Nix store and outside
/// the configuration tree (secrets, files of the machine that evaluates) are never read.
fn unreadable(ev: &Eval, p: &Path, s: Span) -> Option<String> {
    let real = canonical(p);
    if p.starts_with(STORE_DIR) || real.starts_with(STORE_DIR) {
        return Some(
            "cannot be known: it is in the Nix store, which tailshift does not read".into(),
        );
    }
    if ev.git.as_ref().is_some_and(|g| g.hides(p)) {
        return Some(format!(
            "cannot be known: {} is not tracked by git, so Nix does not see it in the flake",
            p.display()
        ));
    }
    let tree = canonical(&config_tree(ev, s));
    if !real.starts_with(&tree) {
        return Some(format!(
            "cannot be known: the path is outside the configuration tree {} (it may be a secret or exist only on the machine that evaluates the configuration)",
            tree.display()
        ));
    }
    None
}

/// Forces the path argument of a file builtin and checks it may be read: `Ok(Err(unknown))`
/// when it is unknown or must not be read.
fn file_arg(
    ev: &mut Eval,
    a: &Thunk,
    name: &str,
    s: Span,
) -> Result<Result<PathBuf, Value>, EvalError> {
    let v = ev.force(a)?;
    if let Value::Unknown(_) = v {
        return Ok(Err(v));
    }
    let p = match path_of(ev, v, s)? {
        Ok(p) => p,
        Err(u) => return Ok(Err(u)),
    };
    Ok(match unreadable(ev, &p, s) {
        Some(why) => Err(named_unknown(format!("builtins.{name} {}", p.display()), why, Some(s))),
        None => Ok(p),
    })
}

/// An unknown for a file builtin whose file is absent or unusable where tailshift runs.
fn file_unknown(name: &str, p: &Path, why: impl std::fmt::Display, s: Span) -> Value {
    named_unknown(
        format!("builtins.{name} {}", p.display()),
        format!(
            "cannot be known: {why} (it may exist only on the machine that evaluates the configuration)"
        ),
        Some(s),
    )
}

fn path_exists(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let p = match file_arg(ev, &a[0], "pathExists", s)? {
        Ok(p) => p,
        Err(u) => return Ok(u),
    };
    // Like Nix, a symbolic link exists even when what it points to does not.
    Ok(Value::Bool(std::fs::symlink_metadata(&p).is_ok()))
}

/// Largest file `readFile`, `hashFile` and `fromTOML` inputs read.
pub const MAX_READ_BYTES: u64 = 16 * 1024 * 1024;

/// The bytes of a file inside the configuration tree; `Ok(Err(unknown))` when it is outside, absent
/// or too large.
fn read_bytes(
    ev: &mut Eval,
    a: &Thunk,
    name: &str,
    s: Span,
) -> Result<Result<(PathBuf, Vec<u8>), Value>, EvalError> {
    let p = match file_arg(ev, a, name, s)? {
        Ok(p) => p,
        Err(u) => return Ok(Err(u)),
    };
    let meta = match std::fs::metadata(&p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err(file_unknown(name, &p, "the file does not exist", s)));
        }
        Err(e) => return Ok(Err(file_unknown(name, &p, e, s))),
    };
    if meta.is_dir() {
        return Err(EvalError::new(
            ErrorKind::Other,
            format!("reading from file '{}': Is a directory", p.display()),
            Some(s),
        ));
    }
    if !meta.is_file() {
        return Ok(Err(file_unknown(name, &p, "it is not a regular file", s)));
    }
    if meta.len() > MAX_READ_BYTES {
        return Ok(Err(file_unknown(
            name,
            &p,
            format!("the file is larger than {MAX_READ_BYTES} bytes"),
            s,
        )));
    }
    match std::fs::read(&p) {
        Ok(bytes) => Ok(Ok((p, bytes))),
        Err(e) => Ok(Err(file_unknown(name, &p, e, s))),
    }
}

/// `readFile` reads files of the configuration tree; anything else (secrets under /run, the
/// store, files absent here) is unknown instead of being read, so no secret reaches the inventory.
fn read_file(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let (p, bytes) = match read_bytes(ev, &a[0], "readFile", s)? {
        Ok(r) => r,
        Err(u) => return Ok(u),
    };
    if bytes.contains(&0) {
        return Err(EvalError::new(
            ErrorKind::Other,
            format!(
                "the contents of the file '{}' cannot be represented as a Nix string",
                p.display()
            ),
            Some(s),
        ));
    }
    match String::from_utf8(bytes) {
        Ok(t) => {
            ev.charge(t.len() / 16, s)?;
            Ok(Value::string(t))
        }
        Err(_) => Ok(file_unknown("readFile", &p, "the file is not UTF-8 text", s)),
    }
}

fn read_dir(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let p = match file_arg(ev, &a[0], "readDir", s)? {
        Ok(p) => p,
        Err(u) => return Ok(u),
    };
    let entries = match std::fs::read_dir(&p) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(file_unknown("readDir", &p, "the directory does not exist", s));
        }
        Err(e) => {
            return Err(EvalError::new(
                ErrorKind::Other,
                format!("opening directory '{}': {e}", p.display()),
                Some(s),
            ));
        }
    };
    let mut m = AttrMap::new();
    for e in entries {
        let e = e.map_err(|e| {
            EvalError::new(
                ErrorKind::Other,
                format!("reading directory '{}': {e}", p.display()),
                Some(s),
            )
        })?;
        let Ok(name) = e.file_name().into_string() else {
            return Ok(file_unknown("readDir", &p, "an entry's name is not UTF-8", s));
        };
        let kind = match e.file_type() {
            Ok(t) if t.is_symlink() => "symlink",
            Ok(t) if t.is_dir() => "directory",
            Ok(t) if t.is_file() => "regular",
            _ => "unknown",
        };
        ev.charge(1, s)?;
        // In a flake, Nix lists only what git tracks.
        if ev.git.as_ref().is_some_and(|g| g.hides(&e.path()) || g.hides_dir(&e.path())) {
            continue;
        }
        m.insert(name.into(), entry(Value::string(kind)));
    }
    Ok(attrs(m))
}

fn digest(algo: &str, bytes: &[u8], s: Span) -> Result<Vec<u8>, EvalError> {
    use sha2::Digest;
    Ok(match algo {
        "md5" => md5::Md5::digest(bytes).to_vec(),
        "sha1" => sha1::Sha1::digest(bytes).to_vec(),
        "sha256" => sha2::Sha256::digest(bytes).to_vec(),
        "sha512" => sha2::Sha512::digest(bytes).to_vec(),
        other => {
            return Err(EvalError::new(
                ErrorKind::Other,
                format!("unknown hash algorithm '{other}'"),
                Some(s),
            ));
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_file(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let algo = want_str(&arg!(ev, a, 0), s)?;
    let (_, bytes) = match read_bytes(ev, &a[1], "hashFile", s)? {
        Ok(r) => r,
        Err(u) => return Ok(u),
    };
    Ok(Value::string(hex(&digest(&algo, &bytes, s)?)))
}

fn toml_to_value(v: toml::Value, s: Span) -> EvalResult {
    Ok(match v {
        toml::Value::String(st) => Value::string(st),
        toml::Value::Integer(i) => Value::Int(i),
        toml::Value::Float(f) => Value::Float(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(_) => {
            return Err(EvalError::new(
                ErrorKind::Other,
                "while parsing a TOML string: Dates and times are not supported",
                Some(s),
            ));
        }
        toml::Value::Array(items) => list(
            items
                .into_iter()
                .map(|i| toml_to_value(i, s).map(Thunk::value))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => toml_table(t, s)?,
    })
}

fn toml_table(t: toml::Table, s: Span) -> EvalResult {
    let mut m = AttrMap::new();
    for (k, v) in t {
        m.insert(k.into(), entry(toml_to_value(v, s)?));
    }
    Ok(attrs(m))
}

fn from_toml(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let v = arg!(ev, a, 0);
    let text = want_str(&v, s)?;
    ev.charge(text.len() / 16, s)?;
    match text.parse::<toml::Table>() {
        Ok(t) => toml_table(t, s),
        Err(e) => Err(EvalError::new(
            ErrorKind::Other,
            format!("while parsing a TOML string: {}", e.message()),
            Some(s),
        )),
    }
}

/// The position of `key` among the sorted `keys` (Nix orders `genericClosure` keys with `<`).
fn key_position(
    ev: &mut Eval,
    keys: &[Value],
    key: &Value,
    s: Span,
) -> Result<Result<usize, usize>, EvalError> {
    let (mut lo, mut hi) = (0, keys.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if ev.less_than(&keys[mid], key, s)? {
            lo = mid + 1;
        } else if ev.less_than(key, &keys[mid], s)? {
            hi = mid;
        } else {
            return Ok(Ok(mid));
        }
    }
    Ok(Err(lo))
}

fn generic_closure(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let v = arg!(ev, a, 0);
    let m = ev.attrs_of(&v, s)?;
    let required = |name: &str| {
        EvalError::new(ErrorKind::MissingAttr, format!("attribute '{name}' required"), Some(s))
    };
    let start = m.get("startSet").ok_or_else(|| required("startSet"))?.value.clone();
    let start = ev.force(&start)?;
    propagate!(start);
    let mut queue: std::collections::VecDeque<Thunk> =
        want_list(&start, s)?.iter().cloned().collect();
    let op = m.get("operator").ok_or_else(|| required("operator"))?.value.clone();
    let op = ev.force(&op)?;
    propagate!(op);
    let mut keys: Vec<Value> = Vec::new();
    let mut out = Vec::new();
    while let Some(t) = queue.pop_front() {
        ev.charge(1, s)?;
        let e = ev.force(&t)?;
        propagate!(e);
        let em = ev.attrs_of(&e, s)?;
        let key = em.get("key").ok_or_else(|| required("key"))?.value.clone();
        let key = ev.force(&key)?;
        propagate!(key);
        match key_position(ev, &keys, &key, s)? {
            Ok(_) => continue,
            Err(i) => keys.insert(i, key),
        }
        out.push(Thunk::value(e.clone()));
        let next = ev.apply(op.clone(), Thunk::value(e), s)?;
        propagate!(next);
        queue.extend(want_list(&next, s)?.iter().cloned());
    }
    Ok(list(out))
}

fn to_path(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let v = arg!(ev, a, 0);
    Ok(match path_of(ev, v, s)? {
        Ok(p) => Value::string(p.to_string_lossy()),
        Err(u) => u,
    })
}

/// Nix's base-32 alphabet (no e, o, u, t).
const NIX_BASE32: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// A hash in Nix's base 32.
fn nix_base32(hash: &[u8]) -> String {
    let len = (hash.len() * 8 - 1) / 5 + 1;
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let (i, j) = (b / 8, b % 8);
        let lo = hash[i] >> j;
        let hi =
            if i + 1 < hash.len() { hash[i + 1].checked_shl(8 - j as u32).unwrap_or(0) } else { 0 };
        out.push(NIX_BASE32[((lo | hi) & 0x1f) as usize] as char);
    }
    out
}

fn placeholder(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let v = arg!(ev, a, 0);
    let output = want_str(&v, s)?;
    let h = digest("sha256", format!("nix-output:{output}").as_bytes(), s)?;
    Ok(Value::string(format!("/{}", nix_base32(&h))))
}

fn remove_attrs(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let v = arg!(ev, a, 0);
    let m = ev.attrs_of(&v, s)?;
    let l = want_list(&arg!(ev, a, 1), s)?;
    let mut out = (*m).clone();
    for t in l.iter() {
        let k = ev.force(t)?;
        propagate!(k);
        out.remove(&*want_str(&k, s)?);
    }
    Ok(attrs(out))
}

fn replace_strings(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let from_l = want_list(&arg!(ev, a, 0), s)?;
    let to_l = want_list(&arg!(ev, a, 1), s)?;
    if from_l.len() != to_l.len() {
        return Err(EvalError::new(
            ErrorKind::Other,
            "'from' and 'to' arguments to 'replaceStrings' have different lengths",
            Some(s),
        ));
    }
    // Like Nix, every argument must be a string (sets are not coerced).
    let mut from = Vec::new();
    for t in from_l.iter() {
        let v = ev.force(t)?;
        propagate!(v);
        from.push(want_str(&v, s)?);
    }
    let mut to: Vec<Option<Rc<str>>> = vec![None; to_l.len()];
    let text = want_str(&arg!(ev, a, 2), s)?;
    let mut out = String::new();
    let mut i = 0;
    let bytes = text.as_bytes();
    loop {
        let mut matched = false;
        for (k, f) in from.iter().enumerate() {
            if bytes[i..].starts_with(f.as_bytes()) {
                if to[k].is_none() {
                    let v = ev.force(&to_l[k])?;
                    propagate!(v);
                    to[k] = Some(want_str(&v, s)?);
                }
                out.push_str(to[k].as_deref().unwrap_or(""));
                if f.is_empty() {
                    if i < bytes.len() {
                        let ch = text[i..].chars().next().expect("char");
                        out.push(ch);
                        i += ch.len_utf8();
                    } else {
                        i += 1;
                    }
                } else {
                    i += f.len();
                }
                matched = true;
                break;
            }
        }
        if !matched {
            if i >= bytes.len() {
                break;
            }
            let ch = text[i..].chars().next().expect("char");
            out.push(ch);
            i += ch.len_utf8();
        }
        if i > bytes.len() {
            break;
        }
    }
    Ok(Value::string(out))
}

fn sort(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let f = arg!(ev, a, 0);
    let l = want_list(&arg!(ev, a, 1), s)?;
    // A stable merge sort whose comparator may fail or be unknown.
    let mut items: Vec<Thunk> = l.to_vec();
    let mut width = 1;
    let n = items.len();
    while width < n {
        let mut merged = Vec::with_capacity(n);
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut i, mut j) = (start, mid);
            while i < mid && j < end {
                // Take from the right only when right < left (stability).
                let g = ev.apply(f.clone(), items[j].clone(), s)?;
                let r = ev.apply(g, items[i].clone(), s)?;
                propagate!(r);
                if want_bool(&r, s)? {
                    merged.push(items[j].clone());
                    j += 1;
                } else {
                    merged.push(items[i].clone());
                    i += 1;
                }
            }
            merged.extend_from_slice(&items[i..mid]);
            merged.extend_from_slice(&items[j..end]);
            start = end;
        }
        items = merged;
        width *= 2;
    }
    Ok(list(items))
}

fn substring(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let start = want_int(&arg!(ev, a, 0), s)?;
    let len = want_int(&arg!(ev, a, 1), s)?;
    let v = arg!(ev, a, 2);
    let text = coerce!(ev, v, s, false);
    if start < 0 {
        return Err(EvalError::new(
            ErrorKind::Other,
            "negative start position in 'substring'",
            Some(s),
        ));
    }
    let bytes = text.as_bytes();
    let start = (start as usize).min(bytes.len());
    let end =
        if len < 0 { bytes.len() } else { start.saturating_add(len as usize).min(bytes.len()) };
    Ok(Value::string(String::from_utf8_lossy(&bytes[start..end]).into_owned()))
}

fn try_eval(ev: &mut Eval, a: &[Thunk], _s: Span) -> EvalResult {
    let mut m = AttrMap::new();
    match ev.force(&a[0]) {
        Ok(v) => {
            m.insert("success".into(), entry(Value::Bool(true)));
            m.insert("value".into(), entry(v));
        }
        Err(e) if matches!(e.kind, ErrorKind::Throw | ErrorKind::Assert) => {
            m.insert("success".into(), entry(Value::Bool(false)));
            m.insert("value".into(), entry(Value::Bool(false)));
        }
        Err(e) => return Err(e),
    }
    Ok(attrs(m))
}

fn zip_attrs_with(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let f = arg!(ev, a, 0);
    let l = want_list(&arg!(ev, a, 1), s)?;
    let mut groups: std::collections::BTreeMap<Rc<str>, Vec<Thunk>> = Default::default();
    for t in l.iter() {
        let v = ev.force(t)?;
        propagate!(v);
        let m = ev.attrs_of(&v, s)?;
        if let Some(u) = names_unknown(&m, "zipAttrsWith") {
            return Ok(u);
        }
        for (k, e) in m.iter() {
            groups.entry(k.clone()).or_default().push(e.value.clone());
        }
    }
    let mut out = AttrMap::new();
    for (k, vs) in groups {
        let f = f.clone();
        let name = Thunk::value(Value::Str(k.clone()));
        let t = Thunk::native(move |ev| {
            let g = ev.apply(f, name, s)?;
            ev.apply(g, Thunk::value(list(vs)), s)
        });
        out.insert(k, AttrEntry { value: t, span: None, cond: None });
    }
    Ok(attrs(out))
}

fn unsafe_get_attr_pos(ev: &mut Eval, a: &[Thunk], s: Span) -> EvalResult {
    let name = want_str(&arg!(ev, a, 0), s)?;
    let v = arg!(ev, a, 1);
    let m = ev.attrs_of(&v, s)?;
    let Some(span) = m.get(&*name).and_then(|e| e.span) else { return Ok(Value::Null) };
    let src = ev.sources.get(span.file);
    let offset = inherit_position(&src.text, span).unwrap_or(span.start);
    let (line, column) = src.line_col(offset);
    // Nix names the file by its absolute path.
    let path = ev.sources.get(span.file).path.clone();
    let file = if path.is_absolute() || path.exists() {
        normalize(&std::env::current_dir().unwrap_or_default().join(path))
    } else {
        path
    };
    let mut out = AttrMap::new();
    out.insert("file".into(), entry(Value::string(file.to_string_lossy())));
    out.insert("line".into(), entry(Value::Int(line as i64)));
    out.insert("column".into(), entry(Value::Int(column as i64)));
    Ok(attrs(out))
}

/// Nix 2.8 places an inherited attribute right after `inherit` (or after `inherit (expr)`), for
/// every name of the list. `span` is an inherited name when its text is just the name (a
/// `name = value;` binding spans its value too); `None` otherwise.
fn inherit_position(text: &str, span: Span) -> Option<u32> {
    let bytes = text.as_bytes();
    let name = text.get(span.start as usize..span.end as usize)?;
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'\'' | b'-');
    if name.is_empty() || name.contains('=') {
        return None;
    }
    let mut i = span.start as usize;
    loop {
        while i > 0 && bytes[i - 1].is_ascii_whitespace() {
            i -= 1;
        }
        if i == 0 {
            return None;
        }
        if bytes[i - 1] == b')' {
            return Some(i as u32);
        }
        if text[..i].ends_with("inherit") && (i == 7 || !is_ident(bytes[i - 8])) {
            return Some(i as u32);
        }
        // Another name of the list: a plain or a quoted one.
        if bytes[i - 1] == b'"' {
            i -= 1;
            while i > 0 && bytes[i - 1] != b'"' {
                i -= 1;
            }
            i = i.checked_sub(1)?;
        } else if is_ident(bytes[i - 1]) {
            while i > 0 && is_ident(bytes[i - 1]) {
                i -= 1;
            }
        } else {
            return None;
        }
    }
}
