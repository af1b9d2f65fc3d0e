builtins.mapAttrs (n: v: "${n}=${toString v}") { x = 1; y = 2; }
