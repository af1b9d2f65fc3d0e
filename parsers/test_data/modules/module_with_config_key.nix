# rule: a module with options/config keys defines only what is under config
{ lib, ... }: { options.my.thing = lib.mkOption { default = 1; }; config.services.tsnsrv.services.o.toURL = "http://o:1"; }
