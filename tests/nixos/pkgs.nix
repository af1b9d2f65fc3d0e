# A minimal `pkgs` with what tailshift's module uses (`runCommand` builds nothing: its script is
# there to be read). `formats.toml`'s generate writes JSON (so
# the test reads the settings back and converts them itself) and refuses null, which TOML
# cannot hold.
{ lib }:
let
  drv = name: { type = "derivation"; inherit name; outPath = "/nix/store/00000000000000000000000000000000-${name}"; };
  noNull = path: v:
    if v == null then throw "formats.toml: null at ${path}: TOML has no null"
    else if builtins.isAttrs v then lib.mapAttrs (k: noNull "${path}.${k}") v
    else if builtins.isList v then lib.imap0 (i: noNull "${path}[${toString i}]") v
    else v;
in
{
  tailshift = drv "tailshift-0.1.0";
  coreutils = drv "coreutils-9.5";
  tsnsrv = drv "tsnsrv-0.0.0";
  writeText = name: text: builtins.toFile name text;
  # Builds nothing: the derivation's attributes (its environment) and its script, to be read.
  runCommand = name: env: buildCommand: drv name // env // { inherit buildCommand; };
  formats.toml = { }: {
    type = lib.types.attrsOf lib.types.toml;
    generate = name: value: builtins.toFile name (builtins.toJSON (noNull "settings" value));
  };
}
