let compose = fs: x: builtins.foldl' (acc: f: f acc) x fs; in compose [ (x: x + 1) (x: x * 2) toString ] 4
