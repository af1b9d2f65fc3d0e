[ (baseNameOf "/a/b/c.nix") (dirOf "/a/b/c.nix") (baseNameOf "x/") (dirOf "file") ]
