# A small agenix-like secrets helper: each secret is an attribute set that turns into its path
# when used in a string.
{ lib, ... }:
let
  mkSecret = name: {
    inherit name;
    path = "/run/secrets/${name}";
    owner = "root";
    __toString = self: self.path;
  };
  secrets = lib.genAttrs [ "tailscale" "tailscale-funnel" "basic-auth" "tls-cert" "tls-key" ] mkSecret;
in
{
  _module.args.secrets = secrets;
  environment.etc."secrets-manifest".text = lib.concatMapStringsSep "\n" toString (lib.attrValues secrets);
}
