# Publishes this host's registry entries as tsnsrv nodes (one Tailscale identity per app).
{ config, lib, self, ... }:
let
  cfg = config.homelab.gateway;
  registry = import "${self}/registry.nix" { inherit self; };
  helpers = import (self + "/lib/helpers.nix") { inherit lib registry; gateway = cfg; };
  host = config.networking.hostName;
  mine = registry.hosts.${host} or { };
in
{
  options.homelab.gateway = {
    tailnet = lib.mkOption {
      type = lib.types.str;
      default = "bat-boa.ts.net";
    };
    authHost = lib.mkOption {
      type = lib.types.str;
      default = "auth";
      description = "Tailnet name of the Authelia node.";
    };
    authPath = lib.mkOption {
      type = lib.types.str;
      default = "/api/authz/forward-auth";
    };
    keyFile = lib.mkOption {
      type = lib.types.str;
      default = "/run/secrets/tailscale-key";
    };
    tags = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ "tag:service" ];
    };
  };

  config.services.tsnsrv = {
    enable = true;
    defaults = {
      authKeyPath = cfg.keyFile;
      ephemeral = true;
      inherit (cfg) tags;
    };
    services = lib.mapAttrs (helpers.mkService helpers.authDefaults) mine;
  };
}
