# The NAS: media, photos, documents and the home's automation. Every web app is its own tsnsrv
# node today (the fork, one process per service); the gateway module makes most of them from
# the registry, the rest are written by hand below.
{ config, lib, ... }:
let
  ports = import ../ports.nix;
  local = port: "http://127.0.0.1:${toString port}";
in
{
  imports = [ ../gateway.nix ];

  networking.hostName = "storage";

  services.scrutiny.enable = true;
  services.netdata.enable = false;

  services.tsnsrv = {
    separateProcesses = true;
    services = {
      # Syncthing's GUI listens on a unix socket only.
      syncthing = {
        toURL = "http://syncthing.local";
        upstreamUnixAddr = ports.syncthing;
      };

      # Home Assistant: its own login, and a short name people type on their phones.
      hass.toURL = local ports.home-assistant;

      # Cockpit: the fork's forward auth like everything else, set by hand.
      cockpit = {
        toURL = local ports.cockpit;
        authURL = "https://auth.tailnet.test${lib.optionalString (ports.https != 443) ":${toString ports.https}"}";
        authPath = "/api/verify";
        timeout = "30s";
      };

      # Grafana logs people in through its own OAuth now: no forward auth in front.
      grafana = lib.mkForce { toURL = local ports.grafana; };

      # Only the share links are public; the app itself stays on the tailnet.
      filebrowser = {
        prefixes = [ "funnel:/share/" "tailnet:/" ];
        stripPrefix = false;
      };

      scrutiny = lib.mkIf config.services.scrutiny.enable { toURL = local ports.scrutiny; };
      netdata = lib.mkIf config.services.netdata.enable { toURL = local ports.netdata; };
    };
  };
}
