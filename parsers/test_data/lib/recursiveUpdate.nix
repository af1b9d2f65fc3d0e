# rule: lib.recursiveUpdate merges nested sets, the right side wins on leaves
{ lib }: lib.recursiveUpdate { a = { b = 1; c = 2; }; d = 1; } { a = { b = 10; }; e = 5; }
