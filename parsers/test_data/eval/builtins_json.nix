{ to = builtins.toJSON { a = [ 1 "x" null true ]; b.c = "d"; }; from = builtins.fromJSON "{\"k\": [1, 2.5, \"s\", false, null]}"; }
