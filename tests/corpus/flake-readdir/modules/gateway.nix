# Publishes `homelab.expose` entries as tsnsrv nodes.
{ config, lib, ... }:
let
  cfg = config.homelab;
  helpers = import ../lib/helpers.nix { inherit lib; };
in
{
  options.homelab = {
    tailnet = lib.mkOption {
      type = lib.types.str;
      default = "tail1234.ts.net";
    };
    expose = lib.mkOption {
      type = lib.types.attrsOf lib.types.port;
      default = { };
      description = "Local web apps to publish on the tailnet, name -> port.";
    };
  };

  config = lib.mkIf (cfg.expose != { }) {
    _module.args.tailnet = cfg.tailnet;
    services.tsnsrv = {
      enable = true;
      defaults.authKeyPath = "/run/secrets/tsnsrv";
      defaults.tags = [ "tag:homelab" ];
      services = lib.mapAttrs (name: port: {
        toURL = helpers.localURL port;
        upstreamHeaders = helpers.proxyHeaders name;
      }) cfg.expose;
    };
  };
}
