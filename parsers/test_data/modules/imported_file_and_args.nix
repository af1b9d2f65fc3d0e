# rule: imports of relative files are followed and every module gets config and lib
{ lib, pkgs, ... }: { imports = [ ./helper_module.nix ]; services.tsnsrv.services = lib.genAttrs [ "x" "y" ] (n: { toURL = "http://${n}:1"; }); }
