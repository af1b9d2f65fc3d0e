# What nixpkgs would declare, for the corpus oracle: the few options the corpus reads (with
# nixpkgs' defaults), and a freeform type taking every other definition (networking,
# systemd, users, deployment.*, ...) without checking it.
{ lib, ... }:
let
  inherit (lib) mkOption mkEnableOption types;
  apps = [
    "adguardhome" "audiobookshelf" "bazarr" "calibre-web" "forgejo" "gitea" "grafana"
    "home-assistant" "immich" "jellyfin" "jellyseerr" "lidarr" "mealie" "miniflux"
    "navidrome" "nextcloud" "ntfy-sh" "paperless" "plex" "prometheus" "prowlarr"
    "radarr" "sabnzbd" "sonarr" "syncthing" "uptime-kuma" "vaultwarden" "kavita"
  ];
in
{
  config._module.freeformType = types.lazyAttrsOf types.anything;
  config._module.args.pkgs = {
    system = "x86_64-linux";
    inherit lib;
    tsnsrv = { type = "derivation"; name = "tsnsrv"; outPath = "/nix/store/00000000000000000000000000000000-tsnsrv"; };
  };
  options = {
    networking.hostName = mkOption { type = types.str; default = "nixos"; };
    networking.domain = mkOption { type = types.nullOr types.str; default = null; };
    services = lib.genAttrs apps (a: { enable = mkEnableOption a; }) // {
      paperless = { enable = mkEnableOption "paperless"; port = mkOption { type = types.port; default = 28981; }; };
      immich = { enable = mkEnableOption "immich"; port = mkOption { type = types.port; default = 2283; }; };
      navidrome = { enable = mkEnableOption "navidrome"; settings = mkOption { type = types.lazyAttrsOf types.anything; default = { }; }; };
    };
  };
}
