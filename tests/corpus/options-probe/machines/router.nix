{ config, lib, ... }:
{
  imports = [
    ../shared/base.nix
    ../shared/tailnet-apps.nix
    ../shared/disk.nix
  ];
  networking.hostName = "router";
  _module.args.site = {
    name = "home";
    lanPrefix = "192.168.10";
  };
}
