{ lib, ... }:
{
  services.tsnsrv = {
    enable = true;
    defaults = {
      authKeyPath = lib.mkDefault "/run/agenix/tailscale-authkey";
      tags = [ "tag:web" ];
      ephemeral = lib.mkDefault false;
    };
  };
}
