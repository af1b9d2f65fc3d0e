{ config, lib, tailnet, ... }:
{
  imports = [ ./hardware.nix ];

  homelab.expose = {
    jellyfin = 8096;
    navidrome = 4533;
    immich = 2283;
  };

  services.tsnsrv.services = {
    immich.funnel = true;
    immich.readHeaderTimeout = "5s";
    navidrome.upstreamHeaders."X-Real-Host" = "music.${tailnet}";
    jellyfin.whoisTimeout = "3s";
  };
}
