{ config, lib, ... }:
with lib;
let
  cfg = config.homelab;
in
{
  options.homelab = {
    domain = mkOption {
      type = types.str;
      description = "The tailnet's DNS name.";
    };
    proxy = mkOption {
      type = types.submodule {
        options = {
          defaultTags = mkOption { type = types.listOf types.str; default = [ "tag:home" ]; };
          keyFile = mkOption { type = types.str; default = "/etc/tsnsrv/authkey"; };
          timeout = mkOption { type = types.nullOr types.str; default = null; };
        };
      };
      default = { };
    };
    services = mkOption {
      type = types.attrsOf (types.submodule ({ name, config, ... }: {
        options = {
          port = mkOption { type = types.port; };
          tailnetHostname = mkOption { type = types.str; default = "${name}"; };
          funnel = mkEnableOption "Tailscale Funnel for ${name}";
          url = mkOption {
            type = types.str;
            default = "http://localhost:${toString config.port}";
          };
        };
      }));
      default = { };
    };
  };

  config = mkIf (cfg.services != { }) {
    services.tsnsrv.enable = true;
    services.tsnsrv.defaults = {
      authKeyPath = cfg.proxy.keyFile;
      tags = cfg.proxy.defaultTags;
      timeout = mkIf (cfg.proxy.timeout != null) cfg.proxy.timeout;
    };
    services.tsnsrv.services = mapAttrs' (name: svc: nameValuePair svc.tailnetHostname {
      toURL = svc.url;
      funnel = svc.funnel;
    }) cfg.services;
  };
}
