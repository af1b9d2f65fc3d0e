# rule: mkForce on a whole service discards the other definitions of that service
{ lib, ... }: { imports = [ { services.tsnsrv.services.a = { toURL = "http://x:1"; funnel = true; }; } ];
  services.tsnsrv.services.a = lib.mkForce { toURL = "http://y:2"; }; }
