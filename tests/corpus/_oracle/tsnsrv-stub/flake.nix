# The tsnsrv flake for the corpus oracle: its module's options come with the stub nixpkgs'
# nixosSystem (../tsnsrv-options.nix), so the module imported here adds nothing.
{
  description = "tsnsrv stand-in for the tailshift corpus oracle";
  outputs = { self, ... }: {
    nixosModules.default = { ... }: { };
    overlays.default = final: prev: { };
  };
}
