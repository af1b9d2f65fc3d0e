{ config, lib, ... }:
{
  services.tsnsrv.services = {
    wiki.urlParts = {
      protocol = "https";
      port = 8443;
    };
    grafana = {
      urlParts = { host = "10.1.0.4"; port = 3000; };
      whoisTimeout = "500ms";
      readHeaderTimeout = "2s";
      extraArgs = [ "-prometheusAddr=" ];
    };
    minio-console = {
      toURL = "http://127.0.0.1:9001";
      listenAddr = ":8443";
      ephemeral = true;
      tsnetVerbose = false;
    };
  };
}
