{ i = builtins.intersectAttrs { a = 0; c = 0; } { a = 1; b = 2; c = 3; }; c = builtins.catAttrs "x" [ { x = 1; } { y = 2; } { x = 3; } ]; }
