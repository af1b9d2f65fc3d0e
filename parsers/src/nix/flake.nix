# tailshift's reading of a flake: its `outputs` called with `self` (the flake's own tree) and its
# inputs. The inputs whose behaviour decides how hosts are built are understood by their
# well-known entry points (nixpkgs' `lib.nixosSystem`, flake-parts' `lib.mkFlake`, flake-utils'
# system helpers, Colmena's `makeHive`, snowfall-lib's `mkFlake`); tsnsrv's own module is
# declared by tailshift itself, and tailshift's own module read by it; every other input is
# opaque (unknown, with its name).
{ lib, flake, src, kinds }:
let
  b = builtins;
  unknown = __tailshiftUnknown;
  opaque = name: unknown "is the flake input `${name}`, which tailshift does not read (it may declare services)";

  # A host as `nixosConfigurations.<attr>` holds it: tailshift reads its modules itself.
  nixosSystem = args: {
    _type = "tailshift-nixos";
    inherit args;
    config = unknown "is a NixOS configuration's evaluated config (read per host by tailshift)";
    options = unknown "is a NixOS configuration's options";
  };
  nixpkgsLib = lib // { inherit nixosSystem; };

  systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
  mergeTwoLevels = a: c: a // b.mapAttrs (n: v: if b.isAttrs v && b.isAttrs (a.${n} or null) then a.${n} // v else v) c;
  eachSystem = syss: f: b.foldl' (acc: sys: mergeTwoLevels acc (b.mapAttrs (_: v: { ${sys} = v; }) (f sys))) { } syss;

  # flake-parts: `flake.*` of every module (the top one and what it imports), merged.
  callModule = args: m:
    let
      m1 = if b.isPath m || b.isString m then import m else m;
      fargs = b.functionArgs m1;
    in if b.isFunction m1 then m1 (if fargs == { } then args else b.intersectAttrs fargs args // b.intersectAttrs fargs { }) else m1;
  partsMkFlake = mkArgs: top:
    let
      inputs = mkArgs.inputs;
      self' = inputs.self or (unknown "is the flake's self, not passed to mkFlake");
      args = {
        inherit inputs lib;
        self = self';
        config = { flake = result; };
        options = unknown "is flake-parts' options";
        flake-parts-lib = { importApply = p: a: (import p) a; mkPerSystemOption = _: { }; };
        withSystem = _sys: f: f (unknown "is flake-parts' per-system arguments");
        moduleWithSystem = f: unknown "is a flake-parts moduleWithSystem module";
        getSystem = _: unknown "is flake-parts' per-system configuration";
      };
      collect = m: let v = callModule args m; in [ v ] ++ b.concatMap collect (v.imports or [ ]);
      modules = collect top;
      result = b.foldl' mergeTwoLevels { } (map (m: m.flake or { }) modules);
    in result;

  # snowfall-lib: hosts under systems/<arch>/<host>, NixOS modules under modules/nixos/<name>.
  snowfallMkFlake = mkArgs:
    let
      root = mkArgs.src;
      dirs = p: if b.pathExists p then b.attrNames (lib.filterAttrs (_: t: t == "directory") (b.readDir p)) else [ ];
      nixosModules = b.listToAttrs (map (n: { name = n; value = root + "/modules/nixos/${n}"; }) (dirs (root + "/modules/nixos")));
      hosts = b.concatMap (arch: map (host: { inherit arch host; }) (dirs (root + "/systems/${arch}"))) (dirs (root + "/systems"));
      host = h: nixosSystem {
        modules = [ (root + "/systems/${h.arch}/${h.host}") ] ++ b.attrValues nixosModules ++ (mkArgs.systems.modules.nixos or [ ]);
        specialArgs = {
          inherit (mkArgs) inputs;
          system = h.arch;
          target = h.arch;
          host = h.host;
          namespace = mkArgs.snowfall.namespace or "internal";
          format = "linux";
          virtual = false;
        } // (mkArgs.systems.hosts.${h.host}.specialArgs or { });
      };
    in {
      inherit nixosModules;
      nixosConfigurations = b.listToAttrs (map (h: { name = h.host; value = host h; }) hosts);
    } // (mkArgs.outputs-builder or (_: { })) (unknown "is snowfall-lib's channels");

  inputValue = name: kind:
    if kind == "nixpkgs" then {
      lib = nixpkgsLib;
      outPath = unknown "is the nixpkgs source, which tailshift does not read";
      legacyPackages = unknown "is nixpkgs' package set, which tailshift does not read";
      nixosModules = unknown "is nixpkgs' modules, which tailshift does not read";
    }
    else if kind == "flake-parts" then {
      lib = { mkFlake = partsMkFlake; evalFlakeModule = unknown "is flake-parts' evalFlakeModule"; };
      flakeModules = unknown "is flake-parts' flake modules";
    }
    else if kind == "flake-utils" then {
      lib = {
        inherit eachSystem;
        eachDefaultSystem = eachSystem systems;
        eachSystemMap = syss: f: b.listToAttrs (map (s: { name = s; value = f s; }) syss);
        defaultSystems = systems;
        allSystems = systems;
        system = b.listToAttrs (map (s: { name = s; value = s; }) systems);
      };
    }
    else if kind == "colmena" then {
      lib.makeHive = hive: hive // { _tailshiftHive = true; };
    }
    else if kind == "snowfall" then {
      mkFlake = snowfallMkFlake;
      mkLib = _: { mkFlake = snowfallMkFlake; };
    }
    else if kind == "tsnsrv" then {
      # tsnsrv's own module: tailshift declares its options itself.
      nixosModules = { default = { }; tsnsrv = { }; };
      packages = unknown "is tsnsrv's package";
    }
    else if kind == "tailshift" then {
      # tailshift's own flake. Its module's `services.tailshift` is read by tailshift from the
      # merged configuration (the proxy's options, and the moves file that says which services
      # have moved); what the module does to tsnsrv's units is not applied here, so the
      # inventory keeps the services as planned (applying a wave never makes the plan stale).
      nixosModules = { default = { }; tailshift = { }; };
      overlays = { default = _final: _prev: { }; };
      packages = unknown "is tailshift's package";
    }
    else opaque name;

  inputs = b.mapAttrs inputValue kinds // { inherit self; };
  # `"${self}"` is the flake's tree (Nix gives its store copy; the files are the same).
  self = outputs // {
    outPath = toString src;
    inherit inputs outputs;
    _type = "flake";
    sourceInfo = { outPath = toString src; };
  };
  outputs = flake.outputs inputs;
in
{
  inherit outputs;
}
