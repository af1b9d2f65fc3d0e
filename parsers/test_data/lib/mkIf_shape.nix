# rule: mkIf, mkMerge, mkOverride, mkDefault, mkForce, mkBefore build nixpkgs' property sets
{ lib }: [ (lib.mkIf true 1) (lib.mkMerge [ 1 ]) (lib.mkDefault 2) (lib.mkForce 3) (lib.mkBefore [ 4 ]) ]
