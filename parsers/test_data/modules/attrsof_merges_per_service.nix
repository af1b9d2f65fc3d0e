# rule: definitions of one service in several modules merge attribute by attribute
{ imports = [ { services.tsnsrv.services.a.toURL = "http://127.0.0.1:1"; } ];
  services.tsnsrv.services.a.funnel = true; }
