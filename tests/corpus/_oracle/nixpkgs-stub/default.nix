# `import nixpkgs { system = ...; }` for the corpus oracle (Colmena's meta.nixpkgs).
{ system ? "x86_64-linux", overlays ? [ ], config ? { }, ... }:
let
  cfg = builtins.fromJSON (builtins.getEnv "TAILSHIFT_ORACLE");
  oracle = import (cfg.oracleDir + "/lib.nix") cfg;
  base = {
    inherit system;
    inherit (oracle) lib;
    path = ./.;
    tsnsrv = { type = "derivation"; name = "tsnsrv"; outPath = "/nix/store/00000000000000000000000000000000-tsnsrv"; };
  };
in
builtins.foldl' (acc: o: acc // o acc base) base overlays
