{ inputs, self }:
hostname:
inputs.nixpkgs.lib.nixosSystem {
  system = if hostname == "pi" then "aarch64-linux" else "x86_64-linux";
  specialArgs = { inherit inputs self hostname; };
  modules = [
    inputs.tsnsrv.nixosModules.default
    ../modules/homelab.nix
    ../machines/${hostname}.nix
    ({ hostname, ... }: { networking.hostName = hostname; })
  ];
}
