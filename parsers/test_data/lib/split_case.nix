# rule: splitString splits on a literal separator; toUpper/toLower map ASCII letters
{ lib }: { s = lib.splitString "." "a.b.c"; u = lib.toUpper "abc-1"; l = lib.toLower "ABC-1"; }
