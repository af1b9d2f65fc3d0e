# rule: lib.genAttrs names f maps each name to f name
{ lib }: lib.genAttrs [ "x" "y" ] (n: "svc-" + n)
