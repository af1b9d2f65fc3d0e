# `pkgs` of the nixpkgs stand-in: real derivations (they instantiate, so `nix flake check
# --no-build` and `nix flake show` see them) whose builder only fails: nothing is built here.
{ lib, system }:
let
  drv = name: attrs: derivation ({
    inherit name system;
    builder = "/bin/sh";
    args = [ "-c" "echo 'the nixpkgs stub builds nothing' >&2; exit 1" ];
  } // attrs);
  tools = [ "cargo" "rustc" "rustfmt" "clippy" "nix" "curl" "python3" "git" "chromium" "chromedriver" "systemd" "man-db" "groff" "zsh" "fish" "coreutils" "tailscale" ];
  pkgs = lib.genAttrs tools (n: drv n { }) // {
    inherit lib system;
    stdenv.hostPlatform.system = system;
    callPackage = f: args:
      let fn = if builtins.isFunction f then f else import f;
      in fn (builtins.intersectAttrs (lib.functionArgs fn) pkgs // args);
    installShellFiles = drv "install-shell-files" { };
    rustPlatform.buildRustPackage = a:
      assert builtins.pathExists a.cargoLock.lockFile;
      drv "${a.pname}-${a.version}" {
        inherit (a) src postInstall;
        cargoBuildFlags = a.cargoBuildFlags or [ ];
        cargoTestFlags = a.cargoTestFlags or [ ];
        nativeBuildInputs = a.nativeBuildInputs or [ ];
      } // { inherit (a) pname version meta; };
    mkShell = a: drv (a.name or "nix-shell") {
      packages = a.packages or [ ];
      inputsFrom = a.inputsFrom or [ ];
    };
    runCommand = name: env: script: drv name (env // { args = [ "-c" script ]; });
    writeText = name: text: builtins.toFile name text;
    formats.toml = { }: {
      type = lib.types.attrsOf lib.types.toml;
      generate = name: value: builtins.toFile name (builtins.toJSON value);
    };
  };
in
pkgs
