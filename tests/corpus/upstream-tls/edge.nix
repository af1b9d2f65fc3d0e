{ config, lib, ... }:
let
  acmeDir = "/var/lib/acme";
in
{
  imports = [ ./profiles/tsnsrv.nix ./profiles/apps.nix ];

  networking.hostName = "edge";
  networking.domain = "home.arpa";

  services.tsnsrv.defaults.urlParts = {
    host = "127.0.0.1";
    port = 80;
  };

  services.tsnsrv.services = {
    gitea = {
      urlParts.port = 3000;
      certificateFile = "${acmeDir}/git.home.arpa/fullchain.pem";
      certificateKey = "${acmeDir}/git.home.arpa/key.pem";
    };
    wiki = {
      acmeHost = "wiki.${config.networking.domain}";
      supplementalGroups = [ "acme" ];
    };
    nginx = {
      toURL = "http://localhost";
      upstreamUnixAddr = "/run/nginx/nginx.sock";
      suppressTailnetDialer = true;
    };
  };
}
