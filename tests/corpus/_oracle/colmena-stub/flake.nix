# Colmena for the corpus oracle: `lib.makeHive` evaluates each node of a hive as Colmena does
# (meta.nixpkgs' eval-config, defaults + the node's module, `name`/`nodes` + meta.specialArgs
# and meta.nodeSpecialArgs.<node>).
{
  description = "colmena stand-in for the tailshift corpus oracle";
  outputs = { self, ... }: {
    lib.makeHive = hive:
      let
        meta = hive.meta or { };
        names = builtins.filter (n: n != "meta" && n != "defaults") (builtins.attrNames hive);
        nixpkgsFor = n: (meta.nodeNixpkgs or { }).${n} or meta.nixpkgs;
        evalNode = n: import ((nixpkgsFor n).path + "/nixos/lib/eval-config.nix") {
          modules = [ (hive.defaults or { }) hive.${n} ];
          specialArgs = { name = n; inherit nodes; } // (meta.specialArgs or { }) // ((meta.nodeSpecialArgs or { }).${n} or { });
        };
        nodes = builtins.listToAttrs (map (n: { name = n; value = evalNode n; }) names);
      in
      { inherit nodes; __schema = "v0"; };
  };
}
