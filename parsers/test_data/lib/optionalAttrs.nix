# rule: lib.optionalAttrs cond set is set when cond, else {}
{ lib }: [ (lib.optionalAttrs true { a = 1; }) (lib.optionalAttrs false { a = 1; }) ]
