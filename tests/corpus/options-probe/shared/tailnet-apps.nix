{ config, lib, options, site, ... }:
let
  lan = suffix: port: "http://${site.lanPrefix}.${toString suffix}:${toString port}";
  hasDisko = options ? disko;
in
{
  services.tsnsrv.services = {
    unifi = {
      toURL = lan 2 8443;
      insecureHTTPS = true;
      upstreamAllowInsecureCiphers = true;
    };
    printer.toURL = lan 30 631;
    "${site.name}-nas" = {
      toURL = lan 5 5000;
      tags = if hasDisko then [ "tag:disko" ] else [ "tag:legacy" ];
    };
  };
}
