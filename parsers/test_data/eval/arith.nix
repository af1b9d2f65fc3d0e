{ add = 1 + 2; sub = 10 - 3; mul = 6 * 7; div = 17 / 5; negdiv = -17 / 5; prec = 2 + 3 * 4 - 1; }
