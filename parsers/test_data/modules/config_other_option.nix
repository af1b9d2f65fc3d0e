# rule: a value may come from another option defined in the files (config.services.myapp.port)
{ config, ... }: { imports = [ { services.myapp.port = 8080; } ];
  services.tsnsrv.services.app.toURL = "http://127.0.0.1:${toString config.services.myapp.port}"; }
