# rule: attrByPath with default, hasAttrByPath, setAttrByPath
{ lib }: [ (lib.attrByPath [ "a" "b" ] 0 { a.b = 7; }) (lib.attrByPath [ "a" "x" ] 0 { a.b = 7; }) (lib.hasAttrByPath [ "a" "b" ] { a.b = 1; }) (lib.setAttrByPath [ "p" "q" ] 3) ]
