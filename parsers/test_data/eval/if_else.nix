let f = x: if x > 2 then "big" else if x > 0 then "small" else "none"; in map f [ 3 1 0 ]
