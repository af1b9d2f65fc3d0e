[ (builtins.match "([a-z]+)-([0-9]+)" "svc-42") (builtins.match "[a-z]+" "123") (builtins.match "(a)|(b)" "b") ]
