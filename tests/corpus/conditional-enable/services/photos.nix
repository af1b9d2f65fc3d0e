{ config, lib, ... }:
let
  immich = config.services.immich;
in
{
  services.tsnsrv.services = {
    photos = lib.mkIf immich.enable {
      toURL = "http://127.0.0.1:${toString immich.port}";
      funnel = true;
      prefixes = [ "tailnet:/" "funnel:/share/" "funnel:/api/" ];
    };
  } // lib.optionalAttrs config.services.immich.enable {
    immich-ml.toURL = "http://127.0.0.1:3003";
  } // {
    photos-legacy.toURL = "http://127.0.0.1:2342";
  };
}
