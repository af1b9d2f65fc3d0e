{ config, lib, secrets, ... }:
let
  headerFrom = secret: "Bearer file:${secret}";
in
{
  services.tsnsrv.services = {
    wiki = {
      toURL = "http://127.0.0.1:3080";
      authKeyPath = secrets.tailscale-funnel;
      funnel = true;
    };
    api = {
      toURL = "https://127.0.0.1:8443";
      upstreamHeaders.Authorization = headerFrom secrets.basic-auth;
      certificateFile = "${secrets.tls-cert}";
      certificateKey = toString secrets.tls-key;
    };
    status.toURL = "http://127.0.0.1:${toString 3001}/status/${secrets.tailscale.name}";
  };
}
