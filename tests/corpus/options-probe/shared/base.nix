{ lib, options, ... }:
{
  # Shared by machines with and without tsnsrv's module: only set it where it exists.
  config = lib.mkMerge [
    (lib.optionalAttrs (options ? services.tsnsrv) {
      services.tsnsrv.enable = true;
      services.tsnsrv.defaults.authKeyPath = "/etc/tailscale/tsnsrv.key";
    })
    (lib.optionalAttrs (options ? services.openssh) {
      services.openssh.enable = true;
    })
  ];
}
