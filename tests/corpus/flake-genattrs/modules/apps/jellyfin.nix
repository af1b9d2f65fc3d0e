{ config, lib, ... }:
{
  options.homelab.jellyfin = {
    enable = lib.mkEnableOption "Jellyfin";
    port = lib.mkOption {
      type = lib.types.port;
      default = 8096;
    };
  };

  config = lib.mkIf config.homelab.jellyfin.enable {
    homelab.apps.jellyfin = {
      inherit (config.homelab.jellyfin) port;
      public = true;
      auth.enable = false;
    };
  };
}
