# nixpkgs' nixos/modules/virtualisation/amazon-image.nix, stubbed for the corpus oracle: it sets nothing tsnsrv reads.
{ ... }: { }
