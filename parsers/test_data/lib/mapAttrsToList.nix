# rule: lib.mapAttrsToList walks names in sorted order
{ lib }: lib.mapAttrsToList (n: v: "${n}=${toString v}") { b = 2; a = 1; }
