map toString [ 1 true false null "s" [ 1 2 ] 1.5 ]
