# tailshift's NixOS module: `services.tailshift`, the proxy that takes the place of the tsnsrv
# nodes (`migrate proxy`, docs/proxy.md), and the moves that `migrate apply`'s `nix` adapter
# writes (`tailshift.moves/v1`): the tsnsrv units of the services that moved are disabled, the
# keep-node services re-pointed, and the fork's single `tsnsrv-all` process given the YAML of
# what remains. The flake's `nixosModules.default` is this file with `package` defaulting to the
# flake's own build.
#
# Which user: a system user `tailshift` by default, not root. The proxy needs no privilege of its
# own: its trusted sockets are created in its runtime directory and connected to by tailscaled
# (root); LocalAPI whois is open to local users; ports below 1024 (placement B) come from
# CAP_NET_BIND_SERVICE, which the unit grants only then. Two things need more, and both are
# handled here rather than by running as root: certificates from tailscaled
# (`localapi_certificates`) need root, tailscaled's operator or `TS_PERMIT_CERT_UID`, so the
# module sets `TS_PERMIT_CERT_UID` on tailscaled for this user; setting a `unix:` serve target
# (the `tailscale-services` shim) is `migrate apply`'s job, which runs as root (design section 1).
# `user = "root"` stays possible.
#
# Checked when the system is built: /etc/tailshift/proxy.toml is a derivation that runs the
# package's own `migrate proxy --check-config` on the rendered TOML before copying it (no
# import-from-derivation), so a typo in freeform `settings` (`metrics_adr`, a listener's `adr`)
# fails `nixos-rebuild` instead of the proxy's start (`checkConfig = false` skips it). The moves
# file is checked against the host at evaluation: each unit, re-pointed service and shared
# process it names must exist here without it, every field must be one of tailshift.moves/v1.
{ config, lib, pkgs, options, ... }:

let
  inherit (lib) mkOption mkEnableOption mkIf mkMerge mkDefault mkForce types;
  cfg = config.services.tailshift;
  settingsFormat = pkgs.formats.toml { };

  # null means "the proxy's default": such keys are left out of the TOML (which has no null).
  dropNulls = v:
    if builtins.isAttrs v && !(lib.isDerivation v) then
      lib.mapAttrs (_: dropNulls) (lib.filterAttrs (_: x: x != null) v)
    else if builtins.isList v then
      map dropNulls (builtins.filter (x: x != null) v)
    else
      v;

  opt = type: description: mkOption { type = types.nullOr type; default = null; inherit description; };

  listenerType = types.submodule {
    freeformType = settingsFormat.type;
    options = {
      kind = mkOption {
        type = types.enum [ "trusted" "services" "http" "https" ];
        description = "The listener's kind (docs/proxy.md, Listeners).";
      };
      path = opt types.str "`trusted`: the unix socket tailscaled's serve forwards the node's name to.";
      dir = opt types.str "`services`: the directory of the per-Service sockets (`<label>.sock`).";
      mode = opt types.int "`trusted`/`services`: the sockets' mode (proxy default `0o660`).";
      addr = opt types.str "`http`/`https`: the address and port to bind.";
    };
  };

  dnsType = types.submodule {
    freeformType = settingsFormat.type;
    options = {
      listen = mkOption { type = types.str; description = "UDP and TCP address of the responder."; };
      zone = mkOption { type = types.str; description = "The zone it is authoritative for."; };
      records = mkOption {
        type = types.listOf types.str;
        description = "Records files (headscale's JSON format), earliest first.";
      };
      ttl = opt types.int "TTL of the answers, in seconds (proxy default 30).";
    };
  };

  # The moves file (tailshift.moves/v1): every field but `schema` optional on read (absent:
  # empty). A file not written yet (no wave applied) moves nothing, with a warning: in a flake, a
  # file git does not track is invisible too.
  movesSchema = "tailshift.moves/v1";
  movesFile = toString cfg.moves;
  movesAbsent = cfg.moves != null && !builtins.pathExists cfg.moves;
  movesErr = field: what: throw "services.tailshift.moves: ${movesFile}: `${field}` ${what}";
  isStrings = l: builtins.isList l && lib.all builtins.isString l;
  # Types checked here (a wrong one would fail deep in nixpkgs' lib, naming no file).
  checkMoves = m:
    if !builtins.isAttrs m then movesErr "(the whole file)" "must be a JSON object"
    else if m ? schema && !builtins.isString m.schema then movesErr "schema" "must be a string"
    else if m ? disabled_units && !isStrings m.disabled_units then movesErr "disabled_units" "must be a list of unit names (strings)"
    else if m ? repoints && !(builtins.isAttrs m.repoints && lib.all builtins.isString (builtins.attrValues m.repoints)) then movesErr "repoints" "must be an object of service name to toURL (strings)"
    else if m ? shared_processes && !(builtins.isAttrs m.shared_processes && lib.all (p:
      builtins.isAttrs p && builtins.isString (p.config_yaml or "") && isStrings (p.services or [ ]))
      (builtins.attrValues m.shared_processes)) then movesErr "shared_processes" "must be an object of unit name to { config_yaml = string; services = [ strings ]; }"
    else m;
  moves =
    if cfg.moves == null || movesAbsent then { }
    else builtins.addErrorContext "while reading services.tailshift.moves (${movesFile}, the moves file of tailshift's nix adapter)"
      (checkMoves (builtins.fromJSON (builtins.readFile cfg.moves)));
  movesKnown = [ "schema" "disabled_units" "repoints" "shared_processes" ];
  movesUnknown = lib.subtractLists movesKnown (builtins.attrNames moves);
  movedSchema = moves.schema or null;
  movesOk = moves == { } || movedSchema == movesSchema;
  # The adapter writes unit names without `.service`; one written by hand with it means the same.
  unitName = u: lib.removeSuffix ".service" u;
  disabledUnits = if movesOk then map unitName (moves.disabled_units or [ ]) else [ ];
  repoints = if movesOk then moves.repoints or { } else { };
  sharedProcesses = if movesOk then lib.mapAttrs' (u: p: lib.nameValuePair (unitName u) p) (moves.shared_processes or { }) else { };
  # What the rest of the host declares (this module's own definitions left out: a moves entry
  # must name something that exists without it, or it would create it).
  self = __curPos.file;
  othersDefine = opt: lib.unique (lib.concatMap (d: builtins.attrNames d.value)
    (builtins.filter (d: d.file != self && builtins.isAttrs d.value) opt.definitionsWithLocations));
  hostUnits = othersDefine options.systemd.services;
  hostTsnsrv = if haveTsnsrv then othersDefine options.services.tsnsrv.services else [ ];
  unknownUnits = builtins.filter (u: !builtins.elem u hostUnits) disabledUnits;
  unknownRepoints = builtins.filter (n: !builtins.elem n hostTsnsrv) (builtins.attrNames repoints);
  unknownShared = builtins.filter (u: !builtins.elem u hostUnits) (builtins.attrNames sharedProcesses);
  sharedUnknownFields = lib.concatLists (lib.mapAttrsToList
    (u: p: map (f: "${u}.${f}") (lib.subtractLists [ "config_yaml" "services" ] (builtins.attrNames p)))
    sharedProcesses);
  quoted = l: lib.concatMapStringsSep ", " (x: "\"${x}\"") l;
  haveTsnsrv = options ? services && options.services ? tsnsrv;
  tsnsrvCfg = config.services.tsnsrv;
  # The fork's tsnsrv-all takes `package` from its first service (alphabetical).
  sharedPackage = remaining:
    if cfg.tsnsrvPackage != null then cfg.tsnsrvPackage
    else
      let first = builtins.head (lib.sort lib.lessThan remaining);
      in tsnsrvCfg.services.${first}.package or tsnsrvCfg.defaults.package;
  sharedUnit = unit: p:
    if p.services or [ ] == [ ] then { enable = mkForce false; }
    else {
      serviceConfig.ExecStart = mkForce "${sharedPackage p.services}/bin/tsnsrv -config=${pkgs.writeText "${unit}-config.yaml" (p.config_yaml or "")}";
    };

  placementA = cfg.placement == "tailscale-services";
  placementB = cfg.placement == "tailnet-address";
  s = cfg.settings;
  stateDir = s.state_dir;
  lowPorts = lib.any
    (l: l.addr != null && (let p = lib.toInt (lib.last (lib.splitString ":" l.addr)); in p > 0 && p < 1024))
    s.listener
    || (s.dns != null && (let p = lib.toInt (lib.last (lib.splitString ":" s.dns.listen)); in p > 0 && p < 1024));
  bracket = a: if lib.hasInfix ":" a then "[${a}]" else a;
  underAny = dirs: p: p != null && lib.any (d: p == d || lib.hasPrefix "${d}/" p) dirs;
  tailscaleOn = config.services.tailscale.enable or false;
  # The TOML, checked at build time by the package's own parser (`migrate proxy --check-config`:
  # unknown keys such as `metrics_adr` or a listener's `adr`, wrong types, bad listeners): a typo
  # fails `nixos-rebuild`, not the proxy's start. No import-from-derivation: the check is a build
  # step of the file itself. What it checks is the same TOML but for what the build cannot see:
  # `state_dir` points where nothing is (so the host's `routes.json`, readable by the proxy only,
  # is not read, with or without a sandbox), and an `upstream_ca` outside the store (which
  # the proxy wants to exist) is left out. `checkConfig = false` skips it (e.g. when
  # cross-compiling, where the host's `migrate` cannot run on the build machine).
  renderedFile = settingsFormat.generate "tailshift-proxy-unchecked.toml" (dropNulls s);
  checkedFile = settingsFormat.generate "tailshift-proxy-check.toml" (dropNulls (s
    // { state_dir = "/var/empty/tailshift-check"; }
    // lib.optionalAttrs (s.upstream_ca != null && !lib.hasPrefix "${builtins.storeDir}/" s.upstream_ca) { upstream_ca = null; }));
  configFile =
    if !cfg.checkConfig then renderedFile
    else pkgs.runCommand "tailshift-proxy.toml" { unchecked = renderedFile; checked = checkedFile; preferLocalBuild = true; } ''
      ${cfg.package}/bin/migrate proxy --check-config --config "$checked"
      cp "$unchecked" "$out"
    '';
  asRoot = cfg.user == "root";
in
{
  options.services.tailshift = {
    enable = mkEnableOption "the tailshift proxy (`migrate proxy`), which takes the place of the tsnsrv nodes";

    package = mkOption {
      type = types.package;
      default = pkgs.tailshift;
      defaultText = lib.literalExpression "pkgs.tailshift (the flake's nixosModules.default: its own package)";
      description = "The package providing `migrate`.";
    };

    user = mkOption {
      type = types.str;
      default = "tailshift";
      description = "The user the proxy runs as (a system user of that name is created unless it is root).";
    };

    group = mkOption {
      type = types.str;
      default = "tailshift";
      description = "The proxy's group.";
    };

    supplementaryGroups = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Extra groups, e.g. the ACME group that may read `cert_dir`.";
    };

    placement = mkOption {
      type = types.nullOr (types.enum [ "tailscale-services" "tailnet-address" ]);
      default = null;
      description = ''
        Fill `settings` for a placement of design section 1. `tailscale-services` (A, hosted
        Tailscale): trusted sockets under /run/tailshift that tailscaled's serve forwards to, one
        for the node's name and one per Service, and tailscaled's LocalAPI for whois.
        `tailnet-address` (B, headscale or an own domain): HTTPS (and HTTP) on the node's tailnet
        addresses, certificates from `certDir` or from tailscaled. null: write `settings` yourself.
      '';
    };

    tailscaledSocket = mkOption {
      type = types.str;
      default = "/var/run/tailscale/tailscaled.sock";
      description = "tailscaled's LocalAPI socket (`localapi_socket` in both placements).";
    };

    addresses = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "100.64.0.1" "fd7a:115c:a1e0::1" ];
      description = "Placement B: the node's tailnet addresses the proxy binds (with IP_FREEBIND: they need not exist yet at start).";
    };

    httpsPort = mkOption { type = types.port; default = 443; description = "Placement B: the HTTPS port."; };

    httpPort = mkOption {
      type = types.nullOr types.port;
      default = 80;
      description = "Placement B: the plain HTTP port (plaintext routes, redirects); null: none.";
    };

    certDir = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/lib/acme/tailshift";
      description = "Placement B: certificates from files (`<name>.crt`, `<name>.key`); null: from tailscaled (`localapi_certificates`).";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the proxy's TCP ports (and the responder's port) on `firewallInterface`.";
    };

    firewallInterface = mkOption { type = types.str; default = "tailscale0"; description = "The interface `openFirewall` opens ports on."; };

    dns = {
      enable = mkEnableOption "the split-DNS responder for a zone of your own domain (`[dns]`; not for *.ts.net)";
      listen = mkOption {
        type = types.str;
        default = "${bracket (if cfg.addresses != [ ] then builtins.head cfg.addresses else "100.64.0.1")}:53";
        defaultText = lib.literalExpression ''"<first of services.tailshift.addresses>:53" (without addresses: "100.64.0.1:53")'';
        description = "Its UDP and TCP address.";
      };
      zone = mkOption { type = types.str; default = ""; example = "home.example.com"; description = "The zone it answers for."; };
      records = mkOption {
        type = types.listOf types.str;
        default = [ "${stateDir}/records.json" ];
        defaultText = lib.literalExpression ''[ "''${settings.state_dir}/records.json" ]'';
        description = "Records files, earliest first (the `split-dns` shim writes the first).";
      };
      ttl = mkOption { type = types.int; default = 30; description = "TTL of its answers."; };
    };

    limitNOFILE = mkOption {
      type = types.int;
      default = 65536;
      description = "The unit's LimitNOFILE: two descriptors per proxied connection; four listeners at `max_connections` (4096) fit.";
    };

    settings = mkOption {
      default = { };
      description = "The proxy's TOML (docs/proxy.md); every key is reachable, the known ones are typed. null: the proxy's default.";
      type = types.submodule {
        freeformType = settingsFormat.type;
        options = {
          state_dir = mkOption {
            type = types.str;
            default = "/var/lib/tailshift";
            description = "routes.json, the admin socket, the development CA (the unit's StateDirectory: keep it under /var/lib).";
          };
          admin_socket = opt types.str "The admin socket (default `<state_dir>/admin.sock`, mode 0600).";
          metrics_addr = opt types.str "A TCP address serving /metrics.";
          localapi_socket = opt types.str "tailscaled's LocalAPI.";
          tailnet_ranges = opt (types.listOf types.str) "Peers looked up by whois on the HTTP(S) listeners.";
          localapi_certificates = opt types.bool "HTTPS certificates from tailscaled.";
          cert_dir = opt types.str "Certificates from PEM files.";
          fallback_server_name = opt types.str "The certificate for clients that send no SNI.";
          header_read_timeout_ms = opt types.ints.unsigned "Request-head deadline.";
          max_connections = opt types.ints.unsigned "Connections per listener.";
          body_read_timeout_ms = opt types.ints.unsigned "Request-body inactivity limit.";
          min_send_rate = opt types.ints.unsigned "Bytes per second a client must take.";
          send_rate_window_ms = opt types.ints.unsigned "The window of min_send_rate.";
          drain_ms = opt types.ints.unsigned "How long requests in flight may finish after SIGTERM.";
          access_log = opt types.bool "tsnsrv's `served` line per request.";
          health_interval_s = opt types.ints.unsigned "Seconds between upstream health checks (0: off).";
          upstream_connect_timeout_ms = opt types.ints.unsigned "Connect timeout toward upstreams.";
          upstream_idle_timeout_ms = opt types.ints.unsigned "How long idle pooled connections are kept.";
          upstream_max_idle_per_host = opt types.ints.unsigned "Idle connections pooled per upstream.";
          upstream_ca = opt types.str "Extra CA certificates toward HTTPS upstreams.";
          upstream_dns = opt types.str "A DNS server (`ip:port`) for upstream names.";
          listener = mkOption {
            type = types.listOf listenerType;
            default = [ ];
            description = "`[[listener]]` tables.";
          };
          dns = mkOption {
            type = types.nullOr dnsType;
            default = null;
            description = "The split-DNS responder (`[dns]`).";
          };
        };
      };
    };

    moves = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = lib.literalExpression "./tailshift-moves.json";
      description = ''
        The moves file `migrate apply`'s `nix` adapter writes (`tailshift.moves/v1`; keep it
        tracked by git so the flake sees it). Its units are disabled, its keep-node services
        re-pointed, its shared processes given the YAML of what remains. Applied whether or not
        the proxy is enabled here.
      '';
    };

    checkConfig = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Check the rendered TOML at build time with the package's own `migrate proxy
        --check-config` (a typo in freeform `settings`, e.g. `metrics_adr`, fails the build instead
        of the proxy's start). Turn off only when the package cannot run on the build machine
        (cross-compiling).
      '';
    };

    tsnsrvPackage = mkOption {
      type = types.nullOr types.package;
      default = null;
      description = "The tsnsrv the re-configured shared process runs (default: its first remaining service's `package`, as the fork does).";
    };
  };

  config = mkMerge [
    {
      warnings = lib.optional movesAbsent
        "services.tailshift.moves = ${movesFile}: no such file, so nothing is moved (as before the first `migrate apply`). In a flake, a file git does not track is invisible: `git add` it.";
      assertions = [
        {
          assertion = moves ? schema || moves == { };
          message = "services.tailshift.moves: ${movesFile} has no `schema`; a moves file says \"schema\": \"${movesSchema}\" (tailshift's nix adapter writes it)";
        }
        {
          assertion = !(moves ? schema) || movesOk;
          message = "services.tailshift.moves: ${movesFile} has schema \"${toString movedSchema}\"; this module reads ${movesSchema} (upgrade tailshift's flake input with the tailshift that wrote it)";
        }
        {
          assertion = movesUnknown == [ ] && sharedUnknownFields == [ ];
          message = "services.tailshift.moves: ${movesFile}: unknown field(s) ${quoted (movesUnknown ++ map (f: "shared_processes.${f}") sharedUnknownFields)}; this module reads ${movesSchema} (${lib.concatStringsSep ", " movesKnown}): a newer tailshift wrote it, upgrade tailshift's flake input";
        }
        {
          assertion = unknownUnits == [ ];
          message = "services.tailshift.moves: ${movesFile}: disabled_units ${quoted unknownUnits}: no such unit on this host (the nix adapter writes `tsnsrv-<name>` of a service in services.tsnsrv.services); was the file written for another host?";
        }
        {
          assertion = unknownRepoints == [ ];
          message = "services.tailshift.moves: ${movesFile}: repoints ${quoted unknownRepoints}: no such service in services.tsnsrv.services on this host (re-pointing it would create a new tsnsrv node); was the file written for another host?";
        }
        {
          assertion = unknownShared == [ ];
          message = "services.tailshift.moves: ${movesFile}: shared_processes ${quoted unknownShared}: no such unit on this host (the fork's `tsnsrv-all` exists only with services.tsnsrv.separateProcesses = false); was the file written for another host?";
        }
      ];
    }

    # The moves.
    {
      systemd.services = mkMerge [
        (lib.genAttrs disabledUnits (_: { enable = mkForce false; }))
        (lib.mapAttrs sharedUnit sharedProcesses)
      ];
    }
    (lib.optionalAttrs haveTsnsrv {
      services.tsnsrv.services = lib.mapAttrs (_: url: { toURL = mkForce url; }) repoints;
    })

    (mkIf cfg.enable (mkMerge [
      (mkIf placementA {
        services.tailshift.settings = {
          localapi_socket = mkDefault cfg.tailscaledSocket;
          listener = [
            { kind = "trusted"; path = "/run/tailshift/node.sock"; }
            { kind = "services"; dir = "/run/tailshift/services"; }
          ];
        };
      })
      (mkIf placementB {
        services.tailshift.settings = {
          localapi_socket = mkDefault cfg.tailscaledSocket;
          cert_dir = mkDefault cfg.certDir;
          # Either source given (certDir or settings.cert_dir) means files, not tailscaled.
          localapi_certificates = mkDefault (cfg.certDir == null && s.cert_dir == null);
          listener =
            map (a: { kind = "https"; addr = "${bracket a}:${toString cfg.httpsPort}"; }) cfg.addresses
            ++ lib.optionals (cfg.httpPort != null)
              (map (a: { kind = "http"; addr = "${bracket a}:${toString cfg.httpPort}"; }) cfg.addresses);
        };
      })
      (mkIf cfg.dns.enable {
        services.tailshift.settings.dns = { inherit (cfg.dns) listen zone records ttl; };
      })

      {
        assertions = [
          {
            assertion = !placementA || (config.services.tailscale.enable or false);
            message = "services.tailshift.placement = \"tailscale-services\" serves through tailscaled's trusted sockets: enable services.tailscale (tailscaled) on this host";
          }
          {
            assertion = !placementB || cfg.addresses != [ ];
            message = "services.tailshift.placement = \"tailnet-address\" binds the node's tailnet addresses: set services.tailshift.addresses (e.g. [ \"100.64.0.1\" ])";
          }
          {
            assertion = cfg.placement != null || s.listener != [ ] || s.dns != null;
            message = "services.tailshift: the proxy has nothing to serve: set services.tailshift.placement, settings.listener or dns.enable";
          }
          {
            assertion = lib.hasPrefix "/var/lib/" stateDir && !(lib.hasInfix "/../" "${stateDir}/");
            message = "services.tailshift.settings.state_dir = ${stateDir}: the unit can write only its StateDirectory under /var/lib (ProtectSystem=strict)";
          }
          {
            assertion = !(placementB && s.localapi_certificates == true) || tailscaleOn;
            message = "services.tailshift.placement = \"tailnet-address\" takes its certificates from tailscaled (no certDir): enable services.tailscale on this host, or set services.tailshift.certDir";
          }
          {
            assertion = !(underAny [ "/home" "/root" "/run/user" ] s.cert_dir);
            message = "services.tailshift.settings.cert_dir = ${toString s.cert_dir}: the unit cannot read it (ProtectHome=yes); keep certificates under /var/lib (e.g. /var/lib/acme/...)";
          }
          {
            assertion = !(underAny [ "/nix/store" ] s.cert_dir);
            message = "services.tailshift.settings.cert_dir = ${toString s.cert_dir}: private keys in the Nix store are readable by every local user; point it at a directory an ACME client writes";
          }
          {
            # Only for a directory the unit could read at all (the two above say why not).
            assertion = s.cert_dir == null || asRoot || cfg.supplementaryGroups != [ ] || underAny [ stateDir "/home" "/root" "/run/user" "/nix/store" ] s.cert_dir;
            message = "services.tailshift.settings.cert_dir = ${toString s.cert_dir}: the proxy runs as ${cfg.user}, which cannot read another user's private keys: add the directory's group to services.tailshift.supplementaryGroups (security.acme: its `group`)";
          }
          {
            assertion = !(s.localapi_certificates == true && s.cert_dir != null);
            message = "services.tailshift.settings: cert_dir and localapi_certificates both choose where certificates come from; keep one";
          }
          {
            assertion = !(s.localapi_certificates == true) || s.localapi_socket != null;
            message = "services.tailshift.settings.localapi_certificates needs localapi_socket (tailscaled's LocalAPI)";
          }
          {
            assertion = s.dns == null || s.dns.zone != "";
            message = "services.tailshift.dns.enable: set services.tailshift.dns.zone, the zone of your own domain the responder answers for (e.g. \"home.example.com\")";
          }
          {
            assertion = s.dns == null || !(lib.hasSuffix ".ts.net" s.dns.zone || s.dns.zone == "ts.net");
            message = "services.tailshift.dns.zone = \"${if s.dns == null then "" else s.dns.zone}\": the responder is for a zone of your own domain; MagicDNS answers *.ts.net first";
          }
        ];

        environment.etc."tailshift/proxy.toml".source = configFile;

        users.users = mkIf (!asRoot) {
          ${cfg.user} = { isSystemUser = true; group = cfg.group; description = "tailshift proxy"; };
        };
        users.groups = mkIf (!asRoot) { ${cfg.group} = { }; };

        # Certificates from tailscaled for a proxy that is not root (see the top of this file).
        # Only on a host that runs tailscaled: the unit is not defined here otherwise.
        systemd.services.tailscaled = mkIf (s.localapi_certificates == true && !asRoot && tailscaleOn) {
          environment.TS_PERMIT_CERT_UID = cfg.user;
        };

        networking.firewall = mkIf cfg.openFirewall {
          interfaces.${cfg.firewallInterface} = {
            allowedTCPPorts = lib.unique (
              map (l: lib.toInt (lib.last (lib.splitString ":" l.addr))) (builtins.filter (l: l.addr != null) s.listener)
              ++ lib.optional (s.dns != null) (lib.toInt (lib.last (lib.splitString ":" s.dns.listen))));
            allowedUDPPorts = lib.optional (s.dns != null) (lib.toInt (lib.last (lib.splitString ":" s.dns.listen)));
          };
        };

        systemd.services.tailshift-proxy = {
          description = "tailshift proxy (takes the place of the tsnsrv nodes)";
          wantedBy = [ "multi-user.target" ];
          # tailscaled first: its LocalAPI (whois, certificates) and, in placement A, its serve
          # config pointing at our sockets. Placement B does not wait for tailscale0's address:
          # the listeners bind with IP_FREEBIND.
          after = [ "network-online.target" "tailscaled.service" ];
          wants = [ "network-online.target" "tailscaled.service" ];
          restartTriggers = [ configFile ];
          serviceConfig = {
            Type = "notify"; # READY=1 once every listener is bound and routes.json read
            NotifyAccess = "main";
            ExecStart = "${cfg.package}/bin/migrate proxy --config /etc/tailshift/proxy.toml";
            ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID"; # re-reads routes.json
            KillSignal = "SIGTERM"; # drains requests in flight (drain_ms)
            TimeoutStopSec = 30;
            Restart = "on-failure";
            RestartSec = 2;
            User = cfg.user;
            Group = cfg.group;
            SupplementaryGroups = cfg.supplementaryGroups;
            StateDirectory = lib.removePrefix "/var/lib/" stateDir; # routes.json, admin.sock (0600)
            StateDirectoryMode = "0750";
            RuntimeDirectory = "tailshift"; # /run/tailshift: the trusted sockets
            RuntimeDirectoryMode = "0755";
            # Kept across restarts: tailscaled's serve config points at the sockets in it.
            RuntimeDirectoryPreserve = "yes";
            LimitNOFILE = cfg.limitNOFILE;
            UMask = "0077";

            # Hardening (`systemd-analyze security` puts this unit in the "OK" band or better).
            # Left off, and why:
            # - PrivateNetwork, IPAddressDeny: the proxy dials upstreams anywhere and binds the
            #   tailnet addresses;
            # - PrivateUsers: it would take CAP_NET_BIND_SERVICE's effect away for ports below
            #   1024 (placement B); it is set when no such port is bound;
            # - RestrictAddressFamilies keeps AF_UNIX/AF_INET/AF_INET6 (sockets, TCP, UDP DNS);
            # - SystemCallFilter does not deny @resources: the proxy raises its soft
            #   RLIMIT_NOFILE to the hard limit at start.
            # PrivateMounts is on: the proxy mounts nothing, and its sockets are files in the
            # runtime directory (not mounts), which tailscaled sees all the same.
            NoNewPrivileges = true;
            PrivateMounts = true;
            CapabilityBoundingSet = if lowPorts then [ "CAP_NET_BIND_SERVICE" ] else [ "" ];
            AmbientCapabilities = if lowPorts then [ "CAP_NET_BIND_SERVICE" ] else [ "" ];
            PrivateUsers = !lowPorts && !asRoot;
            ProtectSystem = "strict";
            ProtectHome = true;
            PrivateTmp = true;
            PrivateDevices = true;
            DevicePolicy = "closed";
            ProtectKernelTunables = true;
            ProtectKernelModules = true;
            ProtectKernelLogs = true;
            ProtectControlGroups = true;
            ProtectClock = true;
            ProtectHostname = true;
            ProtectProc = "invisible";
            ProcSubset = "pid";
            RestrictNamespaces = true;
            RestrictRealtime = true;
            RestrictSUIDSGID = true;
            RemoveIPC = true;
            LockPersonality = true;
            MemoryDenyWriteExecute = true;
            SystemCallArchitectures = "native";
            SystemCallFilter = [ "@system-service" "~@privileged" ];
            SystemCallErrorNumber = "EPERM";
            RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
          };
        };
      }
    ]))
  ];
}
