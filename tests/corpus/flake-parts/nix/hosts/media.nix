{ config, lib, ... }:
{
  services.tsnsrv.defaults.urlParts = {
    protocol = "https";
    host = "media.internal";
    port = 443;
  };
  services.tsnsrv.services = {
    jellyseerr.urlParts.port = 5055;
    jellyfin.insecureHTTPS = true;
  };
}
