# imported by imported_file_and_args.nix
{ config, lib, ... }: { services.tsnsrv.services.h = { toURL = "http://h:9"; funnel = lib.mkDefault true; }; }
