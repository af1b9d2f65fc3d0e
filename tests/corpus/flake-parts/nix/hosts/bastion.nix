{ lib, ... }:
{
  services.tsnsrv.services.grafana = {
    timeout = "30s";
    ephemeral = lib.mkDefault true;
  };
  services.tsnsrv.defaults.urlParts.host = "10.0.0.2";
}
