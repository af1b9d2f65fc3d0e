{ hostname, ... }:
{
  homelab.apps = {
    adguard = { port = 3000; tailnetHostname = "dns-${hostname}"; };
    homeassistant = {
      port = 8123;
      tailnetHostname = "hass";
      auth.enable = false;
    };
    zigbee = { port = 8080; enable = false; };
  };
  services.tsnsrv.services.hass.upstreamHeaders.Host = "hass.local";
}
