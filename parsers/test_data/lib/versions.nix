# rule: versionAtLeast and versionOlder compare like builtins.compareVersions
{ lib }: [ (lib.versionAtLeast "2.8" "2.6") (lib.versionOlder "1.9" "1.10") (lib.versionAtLeast "1.0" "1.0") ]
