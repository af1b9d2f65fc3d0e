# rule: listOf definitions concatenate, the importing module before its imports (genericClosure order)
{ imports = [ { services.tsnsrv.services.a.tags = [ "tag:b" ]; } ];
  services.tsnsrv.services.a = { toURL = "http://x:1"; tags = [ "tag:a" ]; }; }
