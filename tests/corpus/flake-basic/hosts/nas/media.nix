{ self, lib, ... }:
let
  ports = import "${self}/common/services.nix" { };
in
{
  services.tsnsrv.services = {
    jellyfin = {
      toURL = "http://127.0.0.1:${toString ports.jellyfin}";
      funnel = true;
      prefixes = [ "tailnet:/" "funnel:/web/" ];
      stripPrefix = false;
    };
    audiobookshelf = {
      toURL = lib.mkDefault "http://127.0.0.1:${toString ports.audiobookshelf}";
      funnel = true;
      upstreamHeaders."X-Forwarded-Proto" = "https";
    };
  };
}
