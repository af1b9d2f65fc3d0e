# rule: unique keeps first occurrences; flatten; range is inclusive; last
{ lib }: { u = lib.unique [ 1 2 1 3 2 ]; f = lib.flatten [ 1 [ 2 [ 3 ] ] 4 ]; r = lib.range 2 5; l = lib.last [ 1 2 3 ]; }
