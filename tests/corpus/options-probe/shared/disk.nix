{ lib, options, ... }:
{
  # disko is only imported on some machines.
  config = lib.mkMerge [
    (lib.optionalAttrs (options ? disko) {
      disko.devices.disk.main.device = "/dev/sda";
    })
    (lib.optionalAttrs (!(options ? disko)) {
      fileSystems."/".device = "/dev/disk/by-label/root";
    })
  ];
}
