# rule: lib.strings, lib.lists, lib.attrsets expose the same functions
{ lib }: [ (lib.strings.concatStringsSep "-" [ "a" "b" ]) (lib.lists.optional true 1) (lib.attrsets.filterAttrs (n: _: n != "b") { a = 1; b = 2; }) ]
