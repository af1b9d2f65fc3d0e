# rule: lib.optional wraps one element, lib.optionals passes a list, both only when cond
{ lib }: lib.optional true 1 ++ lib.optional false 2 ++ lib.optionals true [ 3 4 ] ++ lib.optionals false [ 5 ]
