{ self, inputs, config, lib, ... }:
let
  ports = import "${inputs.self}/common/services.nix" { };
in
{
  networking.hostName = "edge";
  networking.domain = "example.net";

  services.tsnsrv.services = {
    uptime = {
      toURL = "http://127.0.0.1:${toString ports.uptime}";
      funnel = true;
      ephemeral = true;
    };
    status = {
      urlParts = {
        protocol = "http";
        host = "127.0.0.1";
        port = ports.uptime;
      };
      plaintext = true;
      listenAddr = ":80";
    };
    grafana = lib.mkForce {
      toURL = "https://grafana.${config.networking.domain}";
      insecureHTTPS = true;
      tags = [ "tag:monitoring" ];
    };
  };

  # Dropped by the module system: the mkForce above replaces every other definition.
  imports = [ { services.tsnsrv.services.grafana.timeout = "10s"; } ];
}
