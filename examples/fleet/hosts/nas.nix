# The NAS: the fork of tsnsrv, one process per service.
{ config, lib, pkgs, ... }:
{
  imports = [ ../services.nix ];
  networking.hostName = "nas";
  services.tsnsrv.separateProcesses = true;

  # Grafana's port is set here, so the inventory can follow config.services.grafana.port.
  services.grafana.port = 3000;

  services.tsnsrv.services = {
    grafana.toURL = lib.mkForce "http://127.0.0.1:${toString config.services.grafana.port}";

    # Jellyfin's port comes from the nixpkgs module default, which is not in these files:
    # the inventory reports it as unknown instead of guessing 8096.
    jellyfin = {
      toURL = "http://127.0.0.1:${toString config.services.jellyfin.port}";
      funnel = true;
      prefixes = [ "tailnet:/" "funnel:/web/" ];
    };

    # Paperless listens on a unix socket and takes the user from the auth service's answer.
    paperless = {
      upstreamUnixAddr = "/run/paperless/web.sock";
      authCopyHeaders = { "Remote-User" = ""; };
    };

    # Syncthing keeps its Host header check, so it must keep seeing its own name.
    syncthing = lib.mkIf config.services.tsnsrv.enable {
      urlParts = { host = "127.0.0.1"; port = 8384; };
      stripPrefix = false;
    };
  };
}
