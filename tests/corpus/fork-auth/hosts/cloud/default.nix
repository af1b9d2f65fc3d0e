{ config, lib, ... }:
{
  imports = [
    ../../modules/tsnsrv-fork.nix
    ../../modules/authelia-protected.nix
    ./overrides.nix
  ];
  networking.hostName = "cloud";
  services.tsnsrv.separateProcesses = false;
  services.tsnsrv.prometheusAddr = "127.0.0.1:9099";
}
