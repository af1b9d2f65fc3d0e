{
  description = "Two boxes built from one helper";

  inputs = {
    nixpkgs.url = "github:nixos/nixpkgs/nixos-24.11";
    tsnsrv.url = "github:arsfeld/tsnsrv";
  };

  outputs = inputs@{ self, nixpkgs, ... }:
    let
      mkHost = import ./lib/mkHost.nix { inherit inputs self; };
    in
    {
      nixosConfigurations = nixpkgs.lib.genAttrs [ "pi" "tower" ] mkHost;
    };
}
