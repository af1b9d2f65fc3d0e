# nixpkgs' nixos/modules/profiles/minimal.nix, stubbed for the corpus oracle: it sets nothing tsnsrv reads.
{ ... }: { }
