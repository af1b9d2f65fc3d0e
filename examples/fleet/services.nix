# Turns apps.nix into tsnsrv services for whichever host imports it.
{ config, lib, ... }:
let
  apps = import ./apps.nix;
  host = config.networking.hostName;
  mine = apps.${host} or { };
  tailnet = "example-tailnet.ts.net";
  mkService = name: port: lib.nameValuePair name ({
    toURL = "http://127.0.0.1:${toString port}";
    funnel = lib.elem name apps.public;
  } // lib.optionalAttrs (!(lib.elem name apps.ownAuth)) {
    authURL = "https://auth.${tailnet}";
  });
in
{
  services.tsnsrv = {
    enable = true;
    defaults = {
      authKeyPath = "/run/agenix/tailscale-authkey";
      tags = [ "tag:web" ];
    };
    services = lib.listToAttrs (lib.mapAttrsToList mkService mine);
  };
}
