let f = { a, b ? a * 2, ... }@args: [ a b (args ? c) ]; in [ (f { a = 1; }) (f { a = 1; b = 5; c = 0; }) ]
