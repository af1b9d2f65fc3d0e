{ lib }:
rec {
  ports = builtins.fromTOML (builtins.readFile ../ports.toml);
  public = builtins.fromJSON (builtins.readFile ../data/public.json);
  isPublic = name: builtins.elem name public.funnel;
  mkProxy = host: name: port: {
    toURL = "http://127.0.0.1:${toString port}";
    funnel = isPublic name;
    prefixes = public.prefixes.${name} or [ ];
    upstreamHeaders = public.headers.${name} or { };
  };
  servicesFor = host: lib.mapAttrs (mkProxy host) (lib.filterAttrs (_: v: builtins.isInt v) ports.${host});
}
