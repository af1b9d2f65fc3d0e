# rule: mkIf around a namespace set applies to each definition inside it
{ config, lib, ... }: { imports = [ { services.tsnsrv.enable = true; } ];
  config = lib.mkIf config.services.tsnsrv.enable { services.tsnsrv.services.c.toURL = "http://c:1"; }; }
