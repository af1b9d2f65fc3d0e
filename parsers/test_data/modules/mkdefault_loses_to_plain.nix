# rule: mkDefault (1000) loses to a plain definition (100)
{ lib, ... }: { imports = [ { services.tsnsrv.services.a.toURL = lib.mkDefault "http://d:1"; } ];
  services.tsnsrv.services.a.toURL = "http://x:1"; }
