{ config, lib, ... }:
{
  services.tsnsrv = {
    enable = true;
    defaults.authKeyPath = config.age.secrets.tsnsrv.path or "/run/agenix/tsnsrv";
    defaults.tags = [ "tag:homeserver" ];
  };
  services.tsnsrv.services.homepage.toURL = "http://127.0.0.1:8082";
}
