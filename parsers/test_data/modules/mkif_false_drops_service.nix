# rule: a service whose only definition is under mkIf false does not exist
{ lib, ... }: { services.tsnsrv.services = lib.mkMerge [ { a.toURL = "http://x:1"; } (lib.mkIf false { b.toURL = "http://y:1"; }) ]; }
