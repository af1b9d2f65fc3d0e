{ p = builtins.partition (x: x > 2) [ 1 2 3 4 ]; g = builtins.groupBy (s: builtins.substring 0 1 s) [ "apple" "avocado" "banana" ]; }
