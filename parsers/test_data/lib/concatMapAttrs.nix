# rule: concatMapAttrs merges the sets f returns
{ lib }: lib.concatMapAttrs (n: v: { "${n}1" = v; "${n}2" = v; }) { a = 0; }
