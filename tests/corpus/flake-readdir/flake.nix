{
  description = "homelab: every directory under ./hosts is a machine";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    tsnsrv.url = "github:boinkor-net/tsnsrv";
  };

  outputs = { self, nixpkgs, ... }@inputs:
    let
      inherit (nixpkgs) lib;
      hostNames = builtins.attrNames (lib.filterAttrs (_: type: type == "directory") (builtins.readDir ./hosts));
      mkHost = name: lib.nixosSystem {
        system = "x86_64-linux";
        specialArgs = { inherit inputs; };
        modules = [
          inputs.tsnsrv.nixosModules.default
          inputs.self.nixosModules.gateway
          ./hosts/${name}
          { networking.hostName = name; }
        ];
      };
    in
    {
      nixosModules.gateway = import ./modules/gateway.nix;
      nixosConfigurations = lib.genAttrs hostNames mkHost;
    };
}
