# rule: mkBefore (order 500) comes before unordered definitions (1000)
{ lib, ... }: { imports = [ { services.tsnsrv.services.a.tags = lib.mkBefore [ "tag:first" ]; } ];
  services.tsnsrv.services.a = { toURL = "http://x:1"; tags = [ "tag:a" ]; }; }
