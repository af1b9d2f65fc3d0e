# `import "${inputs.private}/ports.nix" { }` for the corpus oracle.
{ ... }: { vault = 8222; wiki = 3080; }
