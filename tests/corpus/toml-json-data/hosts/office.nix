{ config, lib, ... }:
let
  h = import ../helpers { inherit lib; };
  inherit (h.ports) office;
in
{
  imports = [ ./common.nix ];
  networking.hostName = "office";
  services.tsnsrv.services = lib.mkMerge [
    (h.servicesFor "office")
    { stirling.upstreamHeaders."X-Api-Key-Header" = "none"; }
    { paperless.toURL = lib.mkForce "http://127.0.0.1:${toString (office.paperless + 1)}"; }
  ];
}
