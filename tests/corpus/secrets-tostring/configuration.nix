{ config, lib, secrets, ... }:
{
  imports = [
    ./modules/secrets.nix
    ./modules/proxies.nix
  ];
  networking.hostName = "vault";
  services.tsnsrv.enable = true;
  services.tsnsrv.defaults.authKeyPath = "${secrets.tailscale}";
}
