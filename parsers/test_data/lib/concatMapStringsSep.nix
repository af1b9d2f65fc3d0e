# rule: lib.concatMapStringsSep maps then joins
{ lib }: lib.concatMapStringsSep "," (x: "<${x}>") [ "a" "b" ]
