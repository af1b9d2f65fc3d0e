{ modulesPath, ... }:
{
  imports = [ "${modulesPath}/installer/scan/not-detected.nix" ];
  boot.initrd.availableKernelModules = [ "nvme" "xhci_pci" "ahci" ];
  fileSystems."/".device = "/dev/disk/by-label/nixos";
}
