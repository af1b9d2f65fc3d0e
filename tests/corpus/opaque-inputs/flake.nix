{
  description = "lab: public config, private bits in a separate repository";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";
    tsnsrv.url = "github:arsfeld/tsnsrv";
    # Private repository: keys, domains, ports of work services.
    private.url = "git+ssh://git@github.com/example/nix-private.git";
  };

  outputs = { self, nixpkgs, tsnsrv, private, ... }@inputs: {
    nixosModules.proxies = import ./modules/proxies.nix;

    nixosConfigurations.lab = nixpkgs.lib.nixosSystem {
      system = "x86_64-linux";
      specialArgs = { inherit inputs; };
      modules = [
        tsnsrv.nixosModules.default
        inputs.private.nixosModules.default
        self.nixosModules.proxies
        ./hosts/lab
      ];
    };
  };
}
