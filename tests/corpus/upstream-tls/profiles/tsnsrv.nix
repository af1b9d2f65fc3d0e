{ config, lib, ... }:
{
  services.tsnsrv = {
    enable = lib.mkDefault true;
    defaults = {
      authKeyPath = "/run/keys/ts-authkey";
      ephemeral = false;
      listenAddr = ":443";
      tsnetVerbose = true;
      extraArgs = [ "-recommendedProxyHeaders=true" ];
      supplementalGroups = [ "keys" ];
    };
  };
}
