# Turns registry entries into tsnsrv service definitions.
{ lib, registry, gateway }:
{
  authDefaults = {
    authURL = "https://${gateway.authHost}.${gateway.tailnet}";
    inherit (gateway) authPath;
  };

  mkService = authDefaults: name: port:
    {
      toURL = "http://127.0.0.1:${toString port}";
      funnel = builtins.elem name registry.funnels;
    }
    // lib.optionalAttrs (!(builtins.elem name registry.bypassAuth)) authDefaults;
}
