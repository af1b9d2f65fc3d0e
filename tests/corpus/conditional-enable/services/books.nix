{ config, lib, ... }:
lib.mkIf config.services.audiobookshelf.enable {
  services.tsnsrv.services.audiobookshelf = {
    toURL = "http://127.0.0.1:13378";
    funnel = lib.mkDefault false;
  };
}
