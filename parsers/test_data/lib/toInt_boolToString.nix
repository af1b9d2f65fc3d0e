# rule: toInt parses decimal integers; boolToString
{ lib }: [ (lib.toInt "42") (lib.toInt "-3") (lib.boolToString true) (lib.boolToString false) ]
