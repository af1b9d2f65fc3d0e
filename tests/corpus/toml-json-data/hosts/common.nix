{ lib, ... }:
{
  nixpkgs.overlays = [ (import ../overlays) ];
  services.tsnsrv = {
    enable = true;
    defaults = {
      authKeyPath = lib.removeSuffix "\n" (builtins.readFile ../data/authkey-path.txt);
      tags = builtins.fromJSON (builtins.readFile ../data/tags.json);
    };
  };
}
