{ config, lib, ... }:
let
  cfg = config.homelab.jellyfin;
in
{
  options.homelab.jellyfin = {
    enable = lib.mkEnableOption "Jellyfin";
    port = lib.mkOption {
      type = lib.types.port;
      default = 8096;
    };
  };
  config = lib.mkIf cfg.enable {
    homelab.services.jellyfin = {
      inherit (cfg) port;
      funnel = true;
    };
    homelab.services.jf = {
      inherit (cfg) port;
      tailnetHostname = "tv";
    };
  };
}
