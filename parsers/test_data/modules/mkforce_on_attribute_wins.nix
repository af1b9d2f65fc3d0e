# rule: mkForce on one attribute beats a plain definition of it, the rest still merges
{ lib, ... }: { imports = [ { services.tsnsrv.services.a = { toURL = "http://x:1"; funnel = true; }; } ];
  services.tsnsrv.services.a.toURL = lib.mkForce "http://y:2"; }
