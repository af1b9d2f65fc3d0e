{ lib, ... }:
{
  services.tsnsrv.services = {
    auth.authBypassForTailnet = true;
    code-server = {
      authBypassForTailnet = lib.mkForce false;
      authInsecureHTTPS = true;
      authURL = "https://auth.internal:9443";
      stripPrefix = false;
      prefixes = [ "/" ];
    };
    syncthing = lib.mkForce {
      urlParts = {
        protocol = "http";
        host = "localhost";
        port = 8384;
      };
      upstreamUnixAddr = "/run/syncthing/gui.sock";
      authURL = null;
    };
    ntfy.readHeaderTimeout = "10s";
    linkding.authCopyHeaders = lib.mkForce { "Remote-User" = ""; };
  };
}
