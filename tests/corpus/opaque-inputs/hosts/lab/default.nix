{ config, lib, ... }:
{
  networking.hostName = "lab";
  services.tsnsrv.services = {
    grafana.upstreamHeaders."X-WEBAUTH-USER" = "admin";
    homepage = {
      toURL = "http://127.0.0.1:8082";
      funnel = true;
      prefixes = [ "funnel:/" ];
    };
    docs = {
      toURL = "https://docs.${config.private.domain}";
      authBypassForTailnet = true;
    };
  };
}
