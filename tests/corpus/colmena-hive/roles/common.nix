{ name, nodes, lib, ... }:
{
  services.tsnsrv = {
    enable = true;
    defaults.authKeyPath = "/run/keys/tsnsrv";
    defaults.ephemeral = true;
    services."${name}-ssh-web" = {
      toURL = "http://127.0.0.1:7681";
      tags = [ "tag:admin" ];
    };
  };
}
