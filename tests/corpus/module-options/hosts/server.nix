{ config, lib, pkgs, ... }:
{
  imports = [
    ../modules/homelab.nix
    ../modules/services
  ];

  networking.hostName = "server";
  homelab = {
    domain = "tail9876.ts.net";
    jellyfin.enable = true;
    paperless = {
      enable = true;
      port = 28000;
    };
    vaultwarden.enable = true;
    proxy.defaultTags = [ "tag:home" "tag:apps" ];
  };
}
