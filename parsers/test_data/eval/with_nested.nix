with { x = 1; y = 1; }; with { y = 2; }; [ x y ]
