let a = b + 1; b = 2; f = n: if n == 0 then 1 else n * f (n - 1); in { inherit a b; fact = f 6; }
