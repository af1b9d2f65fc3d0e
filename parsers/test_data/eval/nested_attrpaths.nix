{ a.b.c = 1; a.b.d = 2; a.e = 3; "quoted key" = 4; x = { p = 1; }; x.q = 2; }
