# nixpkgs' nixos/modules/installer/scan/not-detected.nix, stubbed for the corpus oracle: it sets nothing tsnsrv reads.
{ ... }: { }
