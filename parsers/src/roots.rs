//! Which `.nix` files found in a directory are NixOS modules (candidate roots of a host
//! configuration) and which are something else: helper libraries, overlays, package
//! expressions, plain functions, data sets or a flake's entry point.
//!
//! The decision is made on rnix's syntax tree, never by evaluating: a file is a module when it
//! is a function whose set pattern asks for module arguments (`config`, `options`,
//! `modulesPath`, or `lib`/`pkgs`/`...` with a body of module shape), or a set whose top-level
//! keys are module keys (`imports`, `options`, `config`, `services`, `networking`, ...).

use rnix::ast::{self, HasEntry};
use rowan::ast::AstNode;

/// What a `.nix` file is, from its syntax alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NixShape {
    /// A NixOS module: a candidate root of a host configuration.
    Module,
    /// Something else; the text says what (`an overlay (final: prev: ...)`).
    Other(String),
    /// The file does not parse; the text says why.
    Unparsable(String),
}

/// Arguments only the module system passes: a function asking for one of them is a module.
const STRONG_MODULE_ARGS: &[&str] = &["config", "options", "modulesPath"];

/// Arguments a package expression asks `callPackage` for.
const PACKAGE_ARGS: &[&str] = &[
    "stdenv",
    "stdenvNoCC",
    "fetchurl",
    "fetchzip",
    "fetchgit",
    "fetchFromGitHub",
    "fetchFromGitLab",
    "fetchPypi",
    "buildGoModule",
    "buildGoPackage",
    "buildPythonPackage",
    "buildPythonApplication",
    "buildNpmPackage",
    "buildRustPackage",
    "rustPlatform",
    "mkDerivation",
    "makeWrapper",
    "python3Packages",
    "pythonPackages",
    "nodePackages",
    "callPackage",
];

/// Top-level keys of a NixOS (or home-manager, nix-darwin) module.
const MODULE_KEYS: &[&str] = &[
    "imports",
    "options",
    "config",
    "disabledModules",
    "_file",
    "_class",
    "freeformType",
    "meta",
    "assertions",
    "warnings",
    "services",
    "networking",
    "systemd",
    "boot",
    "environment",
    "users",
    "security",
    "programs",
    "hardware",
    "fileSystems",
    "swapDevices",
    "nix",
    "nixpkgs",
    "system",
    "time",
    "i18n",
    "console",
    "virtualisation",
    "containers",
    "documentation",
    "fonts",
    "xdg",
    "power",
    "powerManagement",
    "zramSwap",
    "location",
    "sound",
    "specialisation",
    "sops",
    "age",
    "home-manager",
    "home",
    "launchd",
    "homebrew",
];

/// Attributes of a derivation: a set with one of these is a package, not a module.
const PACKAGE_KEYS: &[&str] = &[
    "pname",
    "src",
    "buildInputs",
    "nativeBuildInputs",
    "propagatedBuildInputs",
    "buildPhase",
    "installPhase",
    "unpackPhase",
    "vendorHash",
    "cargoHash",
    "npmDepsHash",
];

/// Heads of an application that builds a package (`stdenv.mkDerivation { ... }`).
const PACKAGE_BUILDERS: &[&str] = &[
    "mkDerivation",
    "buildGoModule",
    "buildGoPackage",
    "buildPythonPackage",
    "buildPythonApplication",
    "buildRustPackage",
    "buildNpmPackage",
    "callPackage",
    "writeText",
    "writeShellScript",
    "writeShellScriptBin",
    "writeShellApplication",
    "writeScript",
    "writeScriptBin",
    "runCommand",
    "symlinkJoin",
    "mkShell",
    "fetchurl",
    "fetchFromGitHub",
];

/// Helpers of the module system a module's body may be wrapped in.
const MODULE_WRAPPERS: &[&str] = &["mkIf", "mkMerge", "mkDefault", "mkForce", "mkOverride"];

/// Decides what a `.nix` file is.
pub fn nix_shape(text: &str) -> NixShape {
    let parse = rnix::Root::parse(text);
    let Some(expr) = parse.tree().expr() else {
        return NixShape::Other("an empty file".into());
    };
    if let Some(err) = parse.errors().first() {
        return NixShape::Unparsable(err.to_string());
    }
    match peel(expr) {
        ast::Expr::Lambda(l) => lambda_shape(&l),
        ast::Expr::AttrSet(s) => set_shape(&s, None),
        ast::Expr::Apply(a) => {
            NixShape::Other(format!("an application of `{}`, not a module", head_of(&a)))
        }
        ast::Expr::List(_) => NixShape::Other("a list, not a module".into()),
        _ => NixShape::Other("a plain value, not a module".into()),
    }
}

/// The expression under parentheses, `let ... in`, `with ...;` and `assert ...;`.
fn peel(mut e: ast::Expr) -> ast::Expr {
    loop {
        let next = match &e {
            ast::Expr::Paren(p) => p.expr(),
            ast::Expr::Root(r) => r.expr(),
            ast::Expr::LetIn(l) => l.body(),
            ast::Expr::With(w) => w.body(),
            ast::Expr::Assert(a) => a.body(),
            _ => None,
        };
        match next {
            Some(n) => e = n,
            None => return e,
        }
    }
}

/// The function at the head of an application chain, as written (`stdenv.mkDerivation`).
fn head_of(a: &ast::Apply) -> String {
    let mut f = a.lambda();
    while let Some(ast::Expr::Apply(inner)) = &f {
        f = inner.lambda();
    }
    match f.map(peel) {
        Some(e) => {
            let t = e.syntax().text().to_string();
            if t.chars().count() > 40 {
                format!("{}...", t.chars().take(40).collect::<String>())
            } else {
                t
            }
        }
        None => "?".into(),
    }
}

/// The last component of a dotted name (`pkgs.stdenv.mkDerivation` -> `mkDerivation`).
fn last_component(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

fn lambda_shape(l: &ast::Lambda) -> NixShape {
    let body = l.body().map(peel);
    let pattern = match l.param() {
        Some(ast::Param::Pattern(p)) => p,
        Some(ast::Param::IdentParam(p)) => {
            let first = p.ident().map(|i| i.syntax().text().to_string()).unwrap_or_default();
            if let Some(ast::Expr::Lambda(inner)) = &body
                && let Some(ast::Param::IdentParam(q)) = inner.param()
            {
                let second = q.ident().map(|i| i.syntax().text().to_string()).unwrap_or_default();
                return NixShape::Other(format!(
                    "an overlay or curried function (`{first}: {second}: ...`), not a module"
                ));
            }
            return NixShape::Other(format!("a plain function (`{first}: ...`), not a module"));
        }
        None => return NixShape::Other("a function, not a module".into()),
    };
    let names: Vec<String> = pattern
        .pat_entries()
        .filter_map(|e| e.ident().map(|i| i.syntax().text().to_string()))
        .collect();
    let ellipsis = pattern.ellipsis_token().is_some();
    let shown = {
        let mut s = names.join(", ");
        if ellipsis {
            s.push_str(if names.is_empty() { "..." } else { ", ..." });
        }
        format!("{{ {s} }}")
    };
    if names.iter().any(|n| STRONG_MODULE_ARGS.contains(&n.as_str())) {
        return NixShape::Module;
    }
    if let Some(pkg) = names.iter().find(|n| PACKAGE_ARGS.contains(&n.as_str())) {
        return NixShape::Other(format!(
            "a package expression (a function of {shown}, asking for `{pkg}`), not a module"
        ));
    }
    match body {
        Some(ast::Expr::AttrSet(s)) => match set_shape(&s, Some(&shown)) {
            // `{ ... }: { }` does nothing, but is a module all the same.
            NixShape::Other(_) if ellipsis && s.entries().next().is_none() => NixShape::Module,
            shape => shape,
        },
        Some(ast::Expr::Apply(a)) => {
            let head = head_of(&a);
            let last = last_component(&head);
            if PACKAGE_BUILDERS.contains(&last) {
                NixShape::Other(format!("a package expression (`{head} ...`), not a module"))
            } else if MODULE_WRAPPERS.contains(&last) && ellipsis {
                NixShape::Module
            } else {
                NixShape::Other(format!(
                    "a function of {shown} returning `{head} ...`, not a module"
                ))
            }
        }
        Some(ast::Expr::Lambda(_)) => {
            NixShape::Other(format!("a curried function of {shown}, not a module"))
        }
        _ => NixShape::Other(format!("a function of {shown} that does not return a set")),
    }
}

/// Top-level keys of a set (first component of each attribute path; `inherit`ed names too).
fn set_keys(s: &ast::AttrSet) -> (Vec<String>, bool) {
    let mut keys = Vec::new();
    let mut mentions_tsnsrv = false;
    for entry in s.entries() {
        match entry {
            ast::Entry::AttrpathValue(av) => {
                let Some(path) = av.attrpath() else { continue };
                let parts: Vec<String> = path
                    .attrs()
                    .map(|a| match a {
                        ast::Attr::Ident(i) => i.syntax().text().to_string(),
                        ast::Attr::Str(s) => s.syntax().text().to_string().trim_matches('"').into(),
                        ast::Attr::Dynamic(_) => String::new(),
                    })
                    .collect();
                mentions_tsnsrv |= parts.iter().any(|p| p == "tsnsrv");
                if let Some(first) = parts.into_iter().next()
                    && !first.is_empty()
                    && !keys.contains(&first)
                {
                    keys.push(first);
                }
            }
            ast::Entry::Inherit(i) => {
                for a in i.attrs() {
                    let t = a.syntax().text().to_string();
                    if !keys.contains(&t) {
                        keys.push(t);
                    }
                }
            }
        }
    }
    (keys, mentions_tsnsrv)
}

/// The shape of a set, at the top of a file or returned by a function of `args`.
fn set_shape(s: &ast::AttrSet, args: Option<&str>) -> NixShape {
    let (keys, mentions_tsnsrv) = set_keys(s);
    let listed = || {
        let mut l: Vec<String> = keys.iter().take(4).map(|k| format!("`{k}`")).collect();
        if keys.len() > 4 {
            l.push("...".into());
        }
        l.join(", ")
    };
    let of = match args {
        Some(a) => format!("a function of {a} returning a set"),
        None => "a set".into(),
    };
    if keys.iter().any(|k| k == "outputs") && args.is_none() {
        return NixShape::Other("a flake's entry point (it has `outputs`), not a module".into());
    }
    if let Some(k) = keys.iter().find(|k| PACKAGE_KEYS.contains(&k.as_str())) {
        return NixShape::Other(format!("a package expression ({of} with `{k}`), not a module"));
    }
    if mentions_tsnsrv || keys.iter().any(|k| MODULE_KEYS.contains(&k.as_str())) {
        return NixShape::Module;
    }
    if keys.is_empty() {
        return NixShape::Other(format!("{of} that is empty, not a module"));
    }
    match args {
        Some(_) => {
            NixShape::Other(format!("a helper library ({of} of {}), not a module", listed()))
        }
        None => NixShape::Other(format!("plain data (a set of {}), not a module", listed())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_module(text: &str) -> bool {
        nix_shape(text) == NixShape::Module
    }

    fn other(text: &str) -> String {
        match nix_shape(text) {
            NixShape::Other(why) => why,
            s => panic!("{text}: {s:?}"),
        }
    }

    #[test]
    fn modules_are_modules() {
        assert!(is_module("{ config, lib, pkgs, ... }: { services.tsnsrv.enable = true; }"));
        assert!(is_module("{ config, ... }: let cfg = 1; in with lib; { options.x = 1; }"));
        assert!(is_module("{ ... }: { imports = [ ./a.nix ]; }"));
        assert!(is_module("{ lib, pkgs, ... }: { environment.systemPackages = [ ]; }"));
        assert!(is_module("{ lib }: { networking.hostName = \"x\"; }"));
        assert!(is_module("{ ... }: { }"));
        assert!(is_module("{ imports = [ ./hosts/a.nix ]; }"));
        assert!(is_module("{ services.tsnsrv.services.a.toURL = \"http://x:1\"; }"));
        assert!(is_module("{ lib, ... }: lib.mkIf true { services.x = 1; }"));
        assert!(is_module("({ modulesPath, ... }: { })"));
        assert!(is_module("{ lib, ... }@args: { my.tsnsrv.x = 1; }"));
    }

    #[test]
    fn other_shapes_are_not_modules() {
        assert!(other("{ lib }: { mkSvc = name: { }; }").contains("helper library"));
        assert!(other("{ lib, ... }: { mkSvc = x: x; inherit (lib) id; }").contains("helper"));
        assert!(other("final: prev: { }").contains("overlay"));
        assert!(other("self: super: { foo = super.foo; }").contains("`self: super: ...`"));
        assert!(other("x: x + 1").contains("plain function"));
        assert!(
            other("{ stdenv, fetchurl }: stdenv.mkDerivation { pname = \"f\"; }")
                .contains("package")
        );
        assert!(
            other("{ lib, buildGoModule }: buildGoModule rec { pname = \"x\"; }")
                .contains("package")
        );
        assert!(other("{ lib, pkgs, ... }: pkgs.writeText \"a\" \"b\"").contains("package"));
        assert!(other("{ a = 1; b = [ ]; }").contains("plain data"));
        assert!(other("{ pname = \"x\"; src = ./.; }").contains("package"));
        assert!(
            other("{ description = \"d\"; inputs = { }; outputs = { self }: { }; }")
                .contains("flake")
        );
        assert!(other("import ./x.nix { }").contains("application of `import`"));
        assert!(other("[ 1 2 ]").contains("list"));
        assert!(other("\"s\"").contains("plain value"));
        assert!(other("").contains("empty"));
        assert!(other("# only a comment\n").contains("empty"));
    }

    #[test]
    fn syntax_errors_are_unparsable() {
        assert!(matches!(nix_shape("{ a = ; }"), NixShape::Unparsable(_)));
    }
}
