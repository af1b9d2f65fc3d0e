{ config, lib, ... }:
let
  mqttPort = (builtins.fromTOML (builtins.readFile ../ports.toml)).cloud.mqtt;
in
{
  networking.hostName = "cloud";
  # All services in one tsnsrv process (`tsnsrv-all`, driven by a generated YAML file).
  services.tsnsrv.separateProcesses = false;

  services.tsnsrv.services = {
    mqtt.toURL = lib.mkForce "http://127.0.0.1:${toString (mqttPort + 8000)}";
    dns = {
      urlParts = { protocol = "http"; host = "127.0.0.1"; port = 4000; };
      plaintext = true;
      listenAddr = ":80";
    };
  };
}
