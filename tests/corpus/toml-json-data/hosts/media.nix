{ config, lib, ... }:
let
  h = import ../helpers { inherit lib; };
in
{
  imports = [ ./common.nix ];
  networking.hostName = "media";
  services.tsnsrv.services = h.servicesFor "media" // {
    metrics = {
      toURL = "http://127.0.0.1:${toString h.ports.media.extra.metrics}/metrics";
      tags = [ "tag:monitoring" ];
    };
  };
}
