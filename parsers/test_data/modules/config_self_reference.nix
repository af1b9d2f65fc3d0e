# rule: config.networking.hostName defined by one module is read by another
{ config, ... }: { imports = [ { networking.hostName = "h"; } ];
  services.tsnsrv.services."${config.networking.hostName}-web".toURL = "http://${config.networking.hostName}:1"; }
