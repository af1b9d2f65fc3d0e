{ lib, ... }:
{
  homelab.jellyfin.enable = true;
  homelab.jellyfin.port = 8920;
  homelab.apps = {
    sonarr.port = 8989;
    radarr = {
      port = 7878;
      auth.path = "/api/authz/forward-auth";
    };
    overseerr = {
      port = 5055;
      public = true;
    };
  };
  services.tsnsrv.services.overseerr.authBypassForTailnet = true;
  services.tsnsrv.services.radarr.authTimeout = "10s";
}
