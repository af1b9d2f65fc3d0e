# Evaluates tailshift's module (nix/module.nix) with nixpkgs' real module system and the stubs
# beside this file, and returns what the tests read: failed assertions, the proxy's unit, its
# settings (JSON), the tsnsrv units and what they run. `modules`: the host's configuration.
# Run with `nix-instantiate --eval --strict --json --read-write-mode` (the settings file is
# written to the store to be read back).
{ nixpkgsLib, modules ? [ ], module ? ../../nix/module.nix, withTsnsrv ? true }:
let
  lib = import (nixpkgsLib + "/lib");
  pkgs = import ./pkgs.nix { inherit lib; };
  eval = lib.evalModules {
    modules = [ ./stubs.nix module { _module.args.pkgs = pkgs; } ]
      ++ lib.optional withTsnsrv ./tsnsrv.nix ++ modules;
  };
  c = eval.config;
  units = c.systemd.services;
  proxy = units.tailshift-proxy or null;
  config = c.environment.etc."tailshift/proxy.toml".source or null;
in
{
  failed = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
  warnings = c.warnings;
  unit = if proxy == null || !c.services.tailshift.enable then null else {
    inherit (proxy) after wants wantedBy;
    serviceConfig = proxy.serviceConfig;
  };
  # The file is checked at build time (a runCommand running the package's `--check-config`):
  # its input is read here, and its script returned.
  settings = if config == null then null else builtins.fromJSON (builtins.readFile (config.unchecked or config));
  configCheck = if config == null then null else config.buildCommand or null;
  checkedSettings = if config == null || !(config ? checked) then null else builtins.fromJSON (builtins.readFile config.checked);
  users = builtins.attrNames c.users.users;
  systemPackages = map (p: p.name) c.environment.systemPackages;
  tailscaledEnv = units.tailscaled.environment or { };
  tailscaledDefined = units ? tailscaled;
  firewall = c.networking.firewall;
  # Every tsnsrv unit the host would run, with its ExecStart (and the YAML it reads, if any).
  tsnsrv = lib.mapAttrs
    (n: u: let exec = u.serviceConfig.ExecStart or ""; m = builtins.match ".*-config=([^ ]+).*" exec; in {
      inherit exec;
      yaml = if m == null then null else builtins.readFile (builtins.head m);
    })
    (lib.filterAttrs (n: u: lib.hasPrefix "tsnsrv-" n && u.enable) units);
  toURL = lib.mapAttrs (_: s: s.toURL) (c.services.tsnsrv.services or { });
}
