# The small VPS: login, notifications and the public-facing bits. It runs the fork's single
# `tsnsrv-all` process (`separateProcesses = false`), so its upstreams see their own Host and
# prefixes are not stripped: each app must keep seeing exactly that after the move.
{ lib, ... }:
let
  ports = import ../ports.nix;
in
{
  imports = [ ../gateway.nix ];

  networking.hostName = "cloud";

  services.tsnsrv = {
    separateProcesses = false;
    services = {
      # AdGuard Home's web UI on plain port 80, behind forward auth like the rest.
      dns = {
        toURL = "http://127.0.0.1:${toString ports.adguard}";
        authURL = "https://auth.tailnet.test${lib.optionalString (ports.https != 443) ":${toString ports.https}"}";
        authPath = "/api/verify";
      };

      # Authelia must see where a request came from.
      auth.upstreamHeaders = {
        "X-Forwarded-Method" = "GET";
      };

      # Miniflux's fetcher takes long on slow feeds.
      miniflux.timeout = lib.mkDefault "2m";
    };
  };
}
