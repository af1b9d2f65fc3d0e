let x = "lexical"; in with { x = "with"; y = "y"; }; [ x y ]
