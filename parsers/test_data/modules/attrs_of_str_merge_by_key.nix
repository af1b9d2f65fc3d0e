# rule: attrsOf str (upstreamHeaders) merges keys from several modules
{ imports = [ { services.tsnsrv.services.a.upstreamHeaders.X-A = "1"; } ];
  services.tsnsrv.services.a = { toURL = "http://x:1"; upstreamHeaders.X-B = "2"; }; }
