{ lib, ... }:
{
  services.tsnsrv = {
    enable = true;
    defaults = {
      authKeyPath = "/run/agenix/tailscale-key";
      authURL = lib.mkDefault "https://auth.bat-boa.ts.net";
      authPath = "/api/authz/forward-auth";
      authTimeout = "3s";
      authCopyHeaders = {
        "Remote-User" = "";
        "Remote-Groups" = "";
        "Remote-Email" = "";
      };
      tags = [ "tag:cloud" ];
      timeout = "90s";
    };
  };
}
