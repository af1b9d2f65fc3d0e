# rule: mkMerge contributes each of its contents as a definition
{ lib, ... }: { services.tsnsrv.services = lib.mkMerge [ { a.toURL = "http://x:1"; } { a.funnel = true; } ]; }
