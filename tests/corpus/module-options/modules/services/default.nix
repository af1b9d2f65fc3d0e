{
  imports = [
    ./jellyfin.nix
    ./paperless.nix
    ./vaultwarden.nix
  ];
}
