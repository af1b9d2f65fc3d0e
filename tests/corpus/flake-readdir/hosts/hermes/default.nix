{ config, lib, ... }:
{
  homelab.tailnet = "hermes-net.ts.net";
  homelab.expose.ntfy = 2586;
  homelab.expose.vaultwarden = 8222;

  services.tsnsrv.services.vaultwarden = {
    toURL = lib.mkForce "http://127.0.0.1:8222/";
    suppressWhois = true;
    extraArgs = [ "-recommendedProxyHeaders=false" ];
  };
}
