{ config, lib, ... }:
let
  cfg = config.homelab.vaultwarden;
in
{
  options.homelab.vaultwarden = {
    enable = lib.mkEnableOption "Vaultwarden";
    port = lib.mkOption { type = lib.types.port; default = 8222; };
    hostname = lib.mkOption { type = lib.types.str; default = "vault"; };
  };
  config = lib.mkIf cfg.enable {
    homelab.services.${cfg.hostname} = {
      port = cfg.port;
      url = "http://127.0.0.1:${toString cfg.port}";
    };
  };
}
