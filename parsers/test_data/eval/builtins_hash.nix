{ md5 = builtins.hashString "md5" "tailshift"; sha1 = builtins.hashString "sha1" "tailshift"; sha256 = builtins.hashString "sha256" "tailshift"; sha512 = builtins.hashString "sha512" "x"; }
