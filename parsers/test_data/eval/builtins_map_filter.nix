{ m = map (x: x * x) [ 1 2 3 ]; f = builtins.filter (x: x > 1) [ 1 2 3 ]; cm = builtins.concatMap (x: [ x x ]) [ 1 2 ]; }
