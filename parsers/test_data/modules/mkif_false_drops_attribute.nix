# rule: mkIf false removes that definition only
{ lib, ... }: { services.tsnsrv.services.a = { toURL = "http://x:1"; funnel = lib.mkIf false true; }; }
