[ (builtins.tryEval (throw "no")) (builtins.tryEval 42) (builtins.tryEval (assert false; 1)) ]
