# Turns the registry into one tsnsrv node per service for the host importing this module
# (arsfeld's tsnsrv fork: `authURL`/`authPath` are its forward-auth options).
{ config, lib, ... }:
let
  registry = import ./registry.nix;
  ports = import ./ports.nix;
  host = config.networking.hostName;
  domain = registry.tailnet;
  httpsSuffix = lib.optionalString (ports.https != 443) ":${toString ports.https}";

  service = name: port:
    {
      toURL = "http://127.0.0.1:${toString port}";
    }
    // lib.optionalAttrs (!(builtins.elem name registry.bypassAuth)) {
      authURL = "https://auth.${domain}${httpsSuffix}";
      authPath = "/api/verify";
    }
    // lib.optionalAttrs (builtins.elem name registry.funnels) { funnel = true; };
in
{
  services.tsnsrv = {
    enable = true;
    defaults = {
      authKeyPath = "/run/agenix/tailscale-authkey";
      ephemeral = false;
    };
    services = lib.mapAttrs service (registry.hosts.${host} or { });
  };
}
