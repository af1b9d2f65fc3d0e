{ lib, ... }:
let
  apps = {
    calibre = { port = 8083; public = true; };
    kavita = { port = 5000; public = false; };
    audiobookshelf = { port = 13378; public = true; };
  };
in
{
  services.tsnsrv.services = lib.mapAttrs (_: app: {
    toURL = "http://127.0.0.1:${toString app.port}";
    funnel = app.public;
    listenAddr = if app.public then ":443" else ":8443";
  }) apps;
}
