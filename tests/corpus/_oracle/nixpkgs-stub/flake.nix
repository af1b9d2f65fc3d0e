# nixpkgs for the corpus oracle (given with --override-input nixpkgs path:...; needs --impure):
# the real lib of ../shared/nixpkgs-lib with `nixosSystem` evaluating the modules against the
# tsnsrv options and stubs (../lib.nix). The test sets TAILSHIFT_ORACLE to
# {"oracleDir":..., "nixpkgsLib":..., "flavour":..., "conditions":{...}}.
{
  description = "nixpkgs stand-in for the tailshift corpus oracle";
  outputs = { self }:
    let
      cfg = builtins.fromJSON (builtins.getEnv "TAILSHIFT_ORACLE");
      oracle = import (cfg.oracleDir + "/lib.nix") cfg;
      pkgs = import ./default.nix { };
    in
    {
      inherit (oracle) lib;
      legacyPackages.x86_64-linux = pkgs;
      legacyPackages.aarch64-linux = pkgs;
      nixosModules.notDetected = { };
    };
}
