# NixOS modules this flake exports.
{ inputs, ... }:
{
  flake.nixosModules = {
    tailnet = { config, lib, ... }: {
      imports = [ inputs.tsnsrv.nixosModules.default ];
      services.tsnsrv = {
        enable = true;
        defaults = {
          authKeyPath = "/run/credentials/tailscale.key";
          tags = [ "tag:server" ];
          loginServerUrl = "https://headscale.example.com";
        };
      };
    };

    monitoring = { config, lib, ... }: {
      services.tsnsrv.services = {
        grafana.toURL = "http://127.0.0.1:3000";
        prometheus = {
          toURL = "http://127.0.0.1:9090";
          tags = [ "tag:server" "tag:monitoring" ];
        };
        alertmanager = {
          toURL = "http://127.0.0.1:9093";
          prefixes = [ "/api/" ];
          stripPrefix = false;
        };
      };
    };

    media = { config, lib, ... }: {
      services.tsnsrv.services.jellyfin = {
        urlParts = { host = "127.0.0.1"; port = 8096; };
        funnel = true;
      };
    };
  };
}
