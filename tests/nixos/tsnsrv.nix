# tsnsrv's module as far as the moves touch it (the options of
# ../shared/reference/tsnsrv.md section 1, the units of 1.3 and 1.5): one `tsnsrv-<name>` unit per
# service, or the fork's single `tsnsrv-all` running `tsnsrv -config=<YAML>`.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.services.tsnsrv;
  names = lib.sort lib.lessThan (builtins.attrNames cfg.services);
  # The fork's YAML (reference section 1.6): `upstream` is the toURL, each node's state under
  # the unit's StateDirectory.
  yaml = pkgs.writeText "tsnsrv-config.yaml" ("services:\n" + lib.concatMapStrings (n: "- name: ${n}\n  upstream: ${cfg.services.${n}.toURL}\n  stateDir: /var/lib/tsnsrv-all/${n}\n") names);
in
{
  options.services.tsnsrv = {
    enable = mkOption { type = types.bool; default = false; };
    separateProcesses = mkOption { type = types.bool; default = true; };
    defaults.package = mkOption { type = types.package; default = pkgs.tsnsrv; };
    defaults.authKeyPath = mkOption { type = types.nullOr types.str; default = null; };
    services = mkOption {
      default = { };
      type = types.attrsOf (types.submodule {
        freeformType = types.attrsOf types.anything;
        options.toURL = mkOption { type = types.str; };
        options.package = mkOption { type = types.package; default = cfg.defaults.package; };
      });
    };
  };
  config = lib.mkIf cfg.enable {
    systemd.services =
      if cfg.separateProcesses then
        lib.listToAttrs (map (n: lib.nameValuePair "tsnsrv-${n}" {
          wantedBy = [ "multi-user.target" ];
          serviceConfig.ExecStart = "${cfg.services.${n}.package}/bin/tsnsrv -name ${n} ${cfg.services.${n}.toURL}";
        }) names)
      else {
        tsnsrv-all = {
          wantedBy = [ "multi-user.target" ];
          serviceConfig.ExecStart = "${cfg.services.${builtins.head names}.package}/bin/tsnsrv -config=${yaml}";
        };
      };
  };
}
