rec { x = 1; y = x + 1; z = { w = y * 10; }; }
