# The few NixOS options tailshift's module sets, declared for the test oracle (nixpkgs' real
# `lib` and module system, ../shared/nixpkgs-lib, under Nix 2.8): freeform where their exact
# type does not matter. Not NixOS; just enough of its shape.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  free = types.attrsOf types.anything;
  unit = types.submodule {
    freeformType = free;
    options = {
      enable = mkOption { type = types.bool; default = true; };
      serviceConfig = mkOption { type = free; default = { }; };
      environment = mkOption { type = types.attrsOf types.str; default = { }; };
      after = mkOption { type = types.listOf types.str; default = [ ]; };
      wants = mkOption { type = types.listOf types.str; default = [ ]; };
      wantedBy = mkOption { type = types.listOf types.str; default = [ ]; };
      restartTriggers = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    };
  };
in
{
  options = {
    systemd.services = mkOption { type = types.attrsOf unit; default = { }; };
    environment.systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };
    environment.etc = mkOption { type = types.attrsOf (types.submodule { freeformType = free; }); default = { }; };
    users.users = mkOption { type = types.attrsOf free; default = { }; };
    users.groups = mkOption { type = types.attrsOf free; default = { }; };
    assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    warnings = mkOption { type = types.listOf types.str; default = [ ]; };
    networking.firewall = mkOption { type = types.submodule { freeformType = free; }; default = { }; };
    networking.hostName = mkOption { type = types.str; default = "host"; };
    services.tailscale.enable = mkOption { type = types.bool; default = false; };
  };
}
