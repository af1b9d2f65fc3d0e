# rule: escapeShellArg leaves safe words bare and single-quotes the rest
{ lib }: [ (lib.escapeShellArg "plain") (lib.escapeShellArg "it's here") (lib.escapeShellArgs [ "a b" "c" ]) ]
