{ config, lib, ... }:
let
  protected = {
    linkding = 9090;
    freshrss = 8280;
    syncthing = 8384;
    code-server = 4444;
  };
  public = {
    ntfy = 2586;
    auth = 9091;
  };
in
{
  services.tsnsrv.services = lib.mkMerge [
    (lib.mapAttrs (name: port: {
      toURL = "http://127.0.0.1:${toString port}";
    }) protected)
    (lib.mapAttrs (name: port: {
      toURL = "http://127.0.0.1:${toString port}";
      funnel = true;
      authURL = null;
    }) public)
  ];
}
