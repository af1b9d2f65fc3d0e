{ config, lib, exposeAdmin ? false, ... }:
{
  deployment.buildOnTarget = true;
  services.tsnsrv.services = {
    adguard = {
      toURL = "http://127.0.0.1:3000";
      supplementalGroups = [ "adguardhome" ];
    };
    traefik-dashboard = lib.mkIf exposeAdmin {
      toURL = "http://127.0.0.1:8080";
      prefixes = [ "/dashboard/" "/api/" ];
      stripPrefix = false;
    };
  };
}
