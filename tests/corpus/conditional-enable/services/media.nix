# Each app publishes itself on the tailnet when it is enabled (nixpkgs' own enable options).
{ config, lib, ... }:
{
  config = lib.mkMerge [
    (lib.mkIf config.services.jellyfin.enable {
      services.tsnsrv.services.jellyfin = {
        toURL = "http://127.0.0.1:8096";
        funnel = true;
      };
    })
    (lib.mkIf config.services.sonarr.enable {
      services.tsnsrv.services.sonarr.toURL = "http://127.0.0.1:8989";
    })
    (lib.mkIf (config.services.radarr.enable && config.services.sonarr.enable) {
      services.tsnsrv.services.arr-dashboard.toURL = "http://127.0.0.1:8081";
    })
  ];
}
