# rule: lib.mapAttrs' renames through nameValuePair
{ lib }: lib.mapAttrs' (n: v: lib.nameValuePair "tsnsrv-${n}" v) { a = 1; }
