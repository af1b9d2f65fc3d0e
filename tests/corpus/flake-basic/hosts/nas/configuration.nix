{ self, config, lib, pkgs, ... }:
let
  ports = import "${self}/common/services.nix" { extra = { sonarr = 8989; radarr = 7878; }; };
  local = port: "http://127.0.0.1:${toString port}";
in
{
  imports = [
    (self + "/modules/tailscale-defaults.nix")
    ./media.nix
  ];

  networking.hostName = "nas";
  system.stateVersion = "24.11";

  services.tsnsrv.defaults.ephemeral = true;

  services.tsnsrv.services = lib.mkMerge [
    {
      paperless.toURL = local ports.paperless;
      grafana = {
        toURL = local ports.grafana;
        timeout = "2m";
      };
    }
    (lib.mapAttrs (_: port: { toURL = local port; }) { inherit (ports) sonarr radarr; })
    {
      radarr.tags = lib.mkForce [ "tag:arr" ];
      sonarr.tags = [ "tag:arr" ];
    }
  ];
}
