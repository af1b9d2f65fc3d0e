# rule: mkOverride 10 beats mkForce (50)
{ lib, ... }: { imports = [ { services.tsnsrv.services.a.toURL = lib.mkOverride 10 "http://p:1"; } ];
  services.tsnsrv.services.a.toURL = lib.mkForce "http://f:1"; }
