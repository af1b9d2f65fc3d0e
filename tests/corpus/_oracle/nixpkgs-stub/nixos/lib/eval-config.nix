# nixpkgs/nixos/lib/eval-config.nix for the corpus oracle (Colmena evaluates nodes with it).
{ modules ? [ ], specialArgs ? { }, system ? null, ... }@args:
let
  cfg = builtins.fromJSON (builtins.getEnv "TAILSHIFT_ORACLE");
  oracle = import (cfg.oracleDir + "/lib.nix") cfg;
in
oracle.nixosSystem { inherit modules specialArgs; }
