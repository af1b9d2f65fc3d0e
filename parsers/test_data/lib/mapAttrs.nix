# rule: lib.mapAttrs applies f to each name and value
{ lib }: lib.mapAttrs (n: v: v + 1) { a = 1; b = 2; }
