{ config, lib, ... }:
{
  imports = [
    ../services/tsnsrv.nix
    ../services/media.nix
    ../services/photos.nix
    ../services/books.nix
  ];
  networking.hostName = "homeserver";
  services.audiobookshelf.enable = true;
}
