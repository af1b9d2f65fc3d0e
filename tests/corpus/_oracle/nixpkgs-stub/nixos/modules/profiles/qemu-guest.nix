# nixpkgs' nixos/modules/profiles/qemu-guest.nix, stubbed for the corpus oracle: it sets nothing tsnsrv reads.
{ ... }: { }
