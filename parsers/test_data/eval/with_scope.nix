let s = { a = 1; b = 2; }; a = 10; in with s; [ a b ]
