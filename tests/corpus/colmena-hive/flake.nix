{
  description = "Deployed with colmena";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";
    colmena.url = "github:zhaofengli/colmena";
    tsnsrv.url = "github:boinkor-net/tsnsrv";
  };

  outputs = { self, nixpkgs, colmena, tsnsrv, ... }@inputs: {
    colmenaHive = colmena.lib.makeHive self.colmena;

    colmena = {
      meta = {
        nixpkgs = import nixpkgs { system = "x86_64-linux"; };
        specialArgs = { inherit inputs; };
        nodeSpecialArgs.gw = { exposeAdmin = true; };
      };

      defaults = { name, lib, ... }: {
        imports = [ tsnsrv.nixosModules.default ./roles/common.nix ];
        networking.hostName = name;
        deployment.targetHost = "${name}.lan";
        deployment.tags = [ "homelab" ];
      };

      gw = import ./nodes/gw.nix;
      books = { ... }: {
        imports = [ ./nodes/books.nix ];
        deployment.targetHost = "10.0.0.12";
      };
    };
  };
}
