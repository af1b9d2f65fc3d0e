# A stand-in for the nixpkgs flake, for evaluating tailshift's flake offline (`--override-input
# nixpkgs path:<copy of this directory>`): nixpkgs' real `lib` (the test copies
# ../shared/nixpkgs-lib/lib beside this file), `lib.nixosSystem` as the module system with the
# NixOS options of ../stubs.nix, and `legacyPackages` whose derivations instantiate but build
# nothing (there is no nixpkgs here).
{
  outputs = { self }:
    let
      lib0 = import ./lib;
      systems = [ "x86_64-linux" "aarch64-linux" ];
    in
    {
      lib = lib0 // {
        nixosSystem = { system, modules, specialArgs ? { } }:
          lib0.evalModules {
            inherit specialArgs;
            modules = [ ./stubs.nix { _module.args.pkgs = self.legacyPackages.${system}; } ] ++ modules;
          };
      };
      legacyPackages = lib0.genAttrs systems (system: import ./pkgs.nix { lib = lib0; inherit system; });
    };
}
