{ config, lib, ... }:
let
  inherit (lib) mkOption mkEnableOption types;
  cfg = config.homelab;

  appModule = { name, config, ... }: {
    options = {
      enable = mkEnableOption "publishing ${name} on the tailnet" // { default = true; };
      port = mkOption { type = types.port; };
      tailnetHostname = mkOption {
        type = types.str;
        default = "${name}";
      };
      public = mkOption { type = types.bool; default = false; };
      auth = mkOption {
        type = types.submodule {
          options = {
            enable = mkOption { type = types.bool; default = true; };
            path = mkOption { type = types.str; default = "/api/verify"; };
          };
        };
        default = { };
      };
    };
  };
in
{
  imports = [ ./apps/jellyfin.nix ];

  options.homelab = {
    authUrl = mkOption { type = types.str; default = "https://auth.lan.ts.net"; };
    apps = mkOption {
      type = types.attrsOf (types.submodule appModule);
      default = { };
    };
  };

  config.services.tsnsrv = {
    enable = cfg.apps != { };
    defaults.authKeyPath = "/var/lib/tailscale/authkey";
    services = lib.mapAttrs' (name: app: lib.nameValuePair app.tailnetHostname ({
      toURL = "http://127.0.0.1:${toString app.port}";
      funnel = app.public;
    } // lib.optionalAttrs app.auth.enable {
      authURL = cfg.authUrl;
      authPath = app.auth.path;
    })) (lib.filterAttrs (_: app: app.enable) cfg.apps);
  };
}
