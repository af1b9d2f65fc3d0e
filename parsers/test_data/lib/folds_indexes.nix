# rule: foldr folds from the right; imap1 counts from 1; zipListsWith stops at the shorter list
{ lib }: { fr = lib.foldr (x: acc: acc ++ [ x ]) [ ] [ 1 2 3 ]; im = lib.imap1 (i: v: "${toString i}${v}") [ "a" "b" ]; z = lib.zipListsWith (a: b: a + b) [ 1 2 ] [ 10 20 30 ]; }
