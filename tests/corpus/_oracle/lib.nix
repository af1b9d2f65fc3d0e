# The corpus oracle: nixpkgs' real lib (../shared/nixpkgs-lib) with `nixosSystem` added, as
# the stub nixpkgs flake and the non-flake trees use it.
#
#   nixpkgsLib  absolute path of ../shared/nixpkgs-lib
#   flavour     "upstream" | "fork" (the tsnsrv module's option tree)
#   conditions  { "services.jellyfin.enable" = true; ... }, forced (mkOverride 10) on every host
#
# `(nixosSystem { modules; specialArgs; }).tailshiftOracle` is
#   { hostName; full = <services with the module's defaults>; defined = <services as the
#     files define them: options without constant defaults>; errors = [ "svc.opt" ... ] }
{ nixpkgsLib, flavour ? "fork", conditions ? { }, ... }:
let
  lib0 = import (nixpkgsLib + "/lib");
  tsnsrvOptions = import ./tsnsrv-options.nix;
  conditionModule = { lib, ... }: {
    config = lib.mkMerge (lib.mapAttrsToList
      (path: value: lib.setAttrByPath (lib.splitString "." path) (lib.mkOverride 10 value))
      conditions);
  };

  # A value as JSON can carry it: `__toString` sets become their string, derivations and
  # functions are dropped, and anything that throws is left out.
  tryValue = v:
    let r = builtins.tryEval v; in
    if !r.success then { ok = false; }
    else if builtins.isFunction r.value then { ok = false; }
    else if builtins.isAttrs r.value && r.value ? __toString then tryValue (toString r.value)
    else if builtins.isAttrs r.value && (r.value.type or null) == "derivation" then { ok = false; }
    else if builtins.isAttrs r.value then { ok = true; value = projectAttrs r.value; }
    else if builtins.isList r.value then
      (let items = map tryValue r.value; in
        if builtins.all (i: i.ok) items then { ok = true; value = map (i: i.value) items; } else { ok = false; })
    else
      (let s = builtins.tryEval (builtins.deepSeq r.value r.value); in
        if s.success then { ok = true; value = s.value; } else { ok = false; });
  projectAttrs = set:
    let
      names = builtins.filter (n: builtins.substring 0 1 n != "_" && n != "package") (builtins.attrNames set);
      tried = lib0.genAttrs names (n: tryValue set.${n});
    in
    lib0.mapAttrs (n: t: t.value) (lib0.filterAttrs (n: t: t.ok) tried);
  project = services:
    let r = builtins.tryEval services; in
    if r.success then lib0.mapAttrs (n: s: projectAttrs s) r.value else { };
  errorsOf = services:
    let r = builtins.tryEval services; in
    if !r.success then [ "services" ] else
    lib0.concatLists (lib0.mapAttrsToList (n: s:
      map (o: "${n}.${o}") (builtins.filter (o: o != "package" && builtins.substring 0 1 o != "_" && !(tryValue s.${o}).ok) (builtins.attrNames s)))
      r.value);

  nixosSystem = args:
    let
      specialArgs = (args.specialArgs or { }) // { modulesPath = ./nixpkgs-stub/nixos/modules; };
      evalWith = withDefaults: lib.evalModules {
        modules = (args.modules or [ ]) ++ [
          (tsnsrvOptions { inherit flavour withDefaults; })
          ./stubs.nix
          conditionModule
        ] ++ lib0.optional (args ? system) { nixpkgs.system = args.system; };
        inherit specialArgs;
      };
      full = evalWith true;
      defined = evalWith false;
    in
    full // {
      tailshiftOracle = {
        hostName = let h = builtins.tryEval full.config.networking.hostName; in if h.success then h.value else null;
        full = project full.config.services.tsnsrv.services;
        defined = project defined.config.services.tsnsrv.services;
        errors = errorsOf full.config.services.tsnsrv.services;
      };
    };

  lib = lib0.extend (self: super: { inherit nixosSystem; });
in
{
  inherit lib nixosSystem;
}
