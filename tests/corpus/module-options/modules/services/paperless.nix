{ config, lib, ... }:
let
  cfg = config.homelab.paperless;
in
{
  options.homelab.paperless = {
    enable = lib.mkEnableOption "Paperless-ngx";
    port = lib.mkOption { type = lib.types.port; default = 28981; };
  };
  config = lib.mkIf cfg.enable {
    homelab.services.paperless.port = cfg.port;
    services.tsnsrv.services.paperless = {
      upstreamHeaders = { "X-Forwarded-Proto" = "https"; };
      timeout = "1m";
    };
  };
}
