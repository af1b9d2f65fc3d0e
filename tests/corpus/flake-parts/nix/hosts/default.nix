{ inputs, self, withSystem, ... }:
let
  mkSystem = name: modules: inputs.nixpkgs.lib.nixosSystem {
    specialArgs = { inherit inputs self; };
    modules = [ { networking.hostName = name; } ] ++ modules;
  };
in
{
  flake.nixosConfigurations = {
    bastion = mkSystem "bastion" [
      self.nixosModules.tailnet
      self.nixosModules.monitoring
      ./bastion.nix
    ];
    media = mkSystem "media" (with self.nixosModules; [ tailnet media ./media.nix ]);
  };
}
