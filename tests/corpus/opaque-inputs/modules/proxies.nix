{ config, lib, inputs, ... }:
let
  privatePorts = import "${inputs.private}/ports.nix" { };
in
{
  services.tsnsrv = {
    enable = true;
    defaults.authKeyPath = config.private.authKeyFile;
    defaults.tags = [ "tag:lab" ];
    services = {
      vault.toURL = "http://127.0.0.1:${toString privatePorts.vault}";
      wiki = {
        toURL = "http://127.0.0.1:${toString privatePorts.wiki}";
        authURL = "https://auth.${inputs.private.lib.tailnet}";
      };
      grafana = {
        toURL = "http://127.0.0.1:3000";
        funnel = false;
      };
    };
  };
}
