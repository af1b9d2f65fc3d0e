{
  description = "homelab (storage + cloud), one tsnsrv node per web app";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    tsnsrv.url = "github:arsfeld/tsnsrv";
    tsnsrv.inputs.nixpkgs.follows = "nixpkgs";
  };

  outputs = { self, nixpkgs, tsnsrv, ... }@inputs:
    let
      mkHost = name: nixpkgs.lib.nixosSystem {
        system = "x86_64-linux";
        specialArgs = { inherit self inputs; };
        modules = [
          tsnsrv.nixosModules.default
          self.nixosModules.gateway
          ./hosts/${name}.nix
        ];
      };
    in
    {
      nixosModules.gateway = import ./modules/gateway.nix;
      nixosConfigurations = nixpkgs.lib.genAttrs [ "storage" "cloud" ] mkHost;
    };
}
