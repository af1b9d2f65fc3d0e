# rule: lib.nameValuePair builds {name, value}; listToAttrs turns them into a set
{ lib }: lib.listToAttrs (map (n: lib.nameValuePair n (n + "!")) [ "a" "b" ])
