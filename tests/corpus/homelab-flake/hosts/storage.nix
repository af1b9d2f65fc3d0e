{ config, lib, ... }:
{
  networking.hostName = "storage";
  # One tsnsrv process per service (the fork's per-service units).
  services.tsnsrv.separateProcesses = true;

  services.tsnsrv.services = {
    # Home Assistant needs its websocket and keeps the original Host.
    hass.upstreamHeaders = { "X-Forwarded-Proto" = "https"; };

    # Served from a unix socket instead of TCP.
    syncthing = lib.mkForce {
      toURL = "http://localhost";
      upstreamUnixAddr = "/run/syncthing/gui.sock";
      funnel = false;
    };

    # Only the public share path is exposed on the funnel.
    filebrowser.prefixes = [ "tailnet:/" "funnel:/share/" ];
  };
}
