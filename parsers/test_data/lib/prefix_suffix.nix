# rule: hasPrefix, hasSuffix, removePrefix, removeSuffix
{ lib }: [ (lib.hasPrefix "tag:" "tag:svc") (lib.hasSuffix ".ts.net" "a.ts.net") (lib.removePrefix "http://" "http://x") (lib.removeSuffix "/" "x/") (lib.removePrefix "z" "abc") ]
