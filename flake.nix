{
  description = "tailshift: move tsnsrv services onto one Tailscale node behind one reverse proxy";

  # nixpkgs only: a release whose Rust (1.86) is new enough for edition 2024 and the
  # workspace's rust-version (1.85). No flake.lock is shipped: your first `nix` command writes it.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs = { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      package = pkgs: pkgs.callPackage ./nix/package.nix { };

      # The module evaluated on a host of each placement; a failed assertion fails the check.
      evalHost = pkgs: settings:
        let
          host = lib.nixosSystem {
            inherit (pkgs.stdenv.hostPlatform) system;
            modules = [ self.nixosModules.default settings ];
          };
          c = host.config;
          # Only the module's own: a host this small fails NixOS' (no root file system...).
          failed = builtins.filter (a: lib.hasPrefix "services.tailshift" a.message && !a.assertion) c.assertions;
        in
        if failed != [ ] then throw (lib.concatMapStringsSep "\n" (a: a.message) failed)
        else builtins.toJSON {
          inherit (c.systemd.services.tailshift-proxy) serviceConfig after wants;
          settings = c.environment.etc."tailshift/proxy.toml".source;
        };
      check = pkgs: name: settings:
        pkgs.runCommand "tailshift-module-${name}" { unit = evalHost pkgs settings; passAsFile = [ "unit" ]; } ''
          cp "$unitPath" "$out"
        '';
    in
    {
      packages = forAll (pkgs: rec {
        tailshift = package pkgs;
        default = tailshift;
      });

      apps = forAll (pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${pkgs.stdenv.hostPlatform.system}.default}/bin/migrate";
        };
      });

      devShells = forAll (pkgs: {
        # The toolchain, Nix, and what the tests need (.ci/run installs the same on Debian).
        default = pkgs.mkShell {
          inputsFrom = [ (package pkgs) ];
          packages = with pkgs; [
            cargo rustc rustfmt clippy
            nix curl python3 git
            chromium chromedriver
            systemd man-db groff zsh fish
          ];
        };
      });

      overlays.default = final: prev: {
        tailshift = final.callPackage ./nix/package.nix { };
      };

      nixosModules.default = { lib, pkgs, ... }: {
        imports = [ ./nix/module.nix ];
        services.tailshift.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      };
      nixosModules.tailshift = self.nixosModules.default;

      checks = forAll (pkgs: {
        module-tailscale-services = check pkgs "tailscale-services" {
          services.tailscale.enable = true;
          services.tailshift = { enable = true; placement = "tailscale-services"; };
        };
        module-tailnet-address = check pkgs "tailnet-address" {
          services.tailscale.enable = true; # certificates from tailscaled (no certDir)
          services.tailshift = {
            enable = true;
            placement = "tailnet-address";
            addresses = [ "100.64.0.1" ];
            dns = { enable = true; zone = "home.example.com"; };
          };
        };
      });
    };
}
