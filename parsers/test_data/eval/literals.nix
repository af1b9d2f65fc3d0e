{ i = 42; neg = -7; s = "hello"; t = true; f = false; n = null; l = [ 1 "two" null ]; }
