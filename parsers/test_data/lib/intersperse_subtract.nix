# rule: intersperse puts a separator between elements; subtractLists removes members
{ lib }: [ (lib.intersperse 0 [ 1 2 3 ]) (lib.subtractLists [ 2 ] [ 1 2 3 ]) ]
