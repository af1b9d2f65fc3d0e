{
  description = "nas + edge: media server and a small VPS, one tsnsrv node per app";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";
    tsnsrv.url = "github:boinkor-net/tsnsrv";
    tsnsrv.inputs.nixpkgs.follows = "nixpkgs";
  };

  outputs = { self, nixpkgs, tsnsrv, ... }@inputs: {
    nixosConfigurations = {
      nas = nixpkgs.lib.nixosSystem {
        system = "x86_64-linux";
        specialArgs = { inherit self inputs; };
        modules = [
          tsnsrv.nixosModules.default
          ./hosts/nas/configuration.nix
        ];
      };
      edge = nixpkgs.lib.nixosSystem {
        system = "x86_64-linux";
        specialArgs = { inherit self inputs; };
        modules = [
          tsnsrv.nixosModules.default
          ./hosts/edge/configuration.nix
          (self + "/modules/tailscale-defaults.nix")
        ];
      };
    };
  };
}
