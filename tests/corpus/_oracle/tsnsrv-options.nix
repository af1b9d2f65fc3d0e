# The tsnsrv NixOS module's option tree, as documented in ../shared/reference/tsnsrv.md §1
# (upstream boinkor-net/tsnsrv and the arsfeld/tsnsrv fork), for the corpus oracle.
#
#   flavour       "upstream" | "fork"
#   withDefaults  false: options lose their constant defaults (a default that is another
#                 option's value, `defaults.tags` or `toURL` from `urlParts`, is kept), so
#                 what evaluates is what the configuration's own files define.
{ flavour ? "fork", withDefaults ? true }:
{ config, lib, ... }:
let
  inherit (lib) types;
  # Without defaults, an option nothing defines must stay undefined: no `emptyValue` (null,
  # [ ], { }) stands in for it.
  noEmpty = t: t // { emptyValue = { }; substSubModules = m: noEmpty (t.substSubModules m); };
  mkOption = attrs: lib.mkOption (attrs // lib.optionalAttrs (!withDefaults) {
    type = noEmpty attrs.type;
  });
  cfg = config.services.tsnsrv;
  fork = flavour == "fork";
  # A constant default: dropped without defaults.
  d = v: if withDefaults then { default = v; } else { };
  # A default taken from another option: always kept.
  from = v: { default = v; };

  urlPartsDefaults = types.submodule {
    options = {
      # Kept without defaults: it only shows through a `urlParts` the files set.
      protocol = mkOption ({ type = types.str; } // from "http");
      host = mkOption { type = types.str; };
      port = mkOption { type = types.int; };
    };
  };

  commonDefaults = {
    package = mkOption ({ type = types.raw; } // d { type = "derivation"; name = "tsnsrv"; outPath = "/nix/store/00000000000000000000000000000000-tsnsrv"; });
    authKeyPath = mkOption { type = types.path; };
    acmeHost = mkOption ({ type = types.nullOr types.str; } // d null);
    certificateFile = mkOption ({ type = types.nullOr types.path; } // d null);
    certificateKey = mkOption ({ type = types.nullOr types.path; } // d null);
    ephemeral = mkOption ({ type = types.bool; } // d false);
    listenAddr = mkOption ({ type = types.str; } // d ":443");
    loginServerUrl = mkOption ({ type = types.nullOr types.str; } // d null);
    supplementalGroups = mkOption ({ type = types.listOf types.str; } // d [ ]);
    tags = mkOption ({ type = types.listOf (types.strMatching "^tag:.*"); } // d [ ]);
    timeout = mkOption ({ type = types.nullOr types.str; } // d null);
    tsnetVerbose = mkOption ({ type = types.bool; } // d false);
    upstreamAllowInsecureCiphers = mkOption ({ type = types.bool; } // d false);
    urlParts = mkOption ({ type = urlPartsDefaults; } // d { });
  };
  upstreamDefaults = {
    extraArgs = mkOption ({ type = types.listOf types.str; } // d [ ]);
  };
  forkDefaults = {
    authURL = mkOption ({ type = types.nullOr types.str; } // d null);
    authPath = mkOption ({ type = types.str; } // d "/api/authz/forward-auth");
    authTimeout = mkOption ({ type = types.nullOr types.str; } // d "5s");
    authCopyHeaders = mkOption ({ type = types.attrsOf types.str; } // d { });
    authInsecureHTTPS = mkOption ({ type = types.bool; } // d false);
    authBypassForTailnet = mkOption ({ type = types.bool; } // d false);
  };

  serviceModule = { name, config, ... }: {
    options = {
      authKeyPath = mkOption ({ type = types.path; } // from cfg.defaults.authKeyPath);
      ephemeral = mkOption ({ type = types.bool; } // from cfg.defaults.ephemeral);
      funnel = mkOption ({ type = types.bool; } // d false);
      insecureHTTPS = mkOption ({ type = types.bool; } // d false);
      listenAddr = mkOption ({ type = types.str; } // from cfg.defaults.listenAddr);
      loginServerUrl = mkOption ({ type = types.nullOr types.str; } // from cfg.defaults.loginServerUrl);
      package = mkOption ({ type = types.raw; } // from cfg.defaults.package);
      plaintext = mkOption ({ type = types.bool; } // d false);
      certificateFile = mkOption ({ type = types.nullOr types.path; } // from cfg.defaults.certificateFile);
      certificateKey = mkOption ({ type = types.nullOr types.path; } // from cfg.defaults.certificateKey);
      acmeHost = mkOption ({ type = types.nullOr types.str; } // from cfg.defaults.acmeHost);
      upstreamUnixAddr = mkOption ({ type = types.nullOr types.path; } // d null);
      prefixes = mkOption ({ type = types.listOf (types.strMatching "^(/|tailnet:/|funnel:/).*"); } // d [ ]);
      stripPrefix = mkOption ({ type = types.bool; } // d true);
      whoisTimeout = mkOption ({ type = types.nullOr types.str; } // d null);
      suppressWhois = mkOption ({ type = types.bool; } // d false);
      upstreamHeaders = mkOption ({ type = types.attrsOf types.str; } // d { });
      suppressTailnetDialer = mkOption ({ type = types.bool; } // d false);
      readHeaderTimeout = mkOption ({ type = types.nullOr types.str; } // d null);
      urlParts = mkOption ({
        type = types.nullOr (types.submodule {
          options = {
            protocol = mkOption ({ type = types.str; } // from cfg.defaults.urlParts.protocol);
            host = mkOption ({ type = types.str; } // from cfg.defaults.urlParts.host);
            port = mkOption ({ type = types.port; } // from cfg.defaults.urlParts.port);
          };
        });
      } // d null);
      toURL = mkOption {
        type = types.str;
        default =
          if config.urlParts == null then throw "services.tsnsrv.services.${name}: set toURL or urlParts"
          else "${config.urlParts.protocol}://${config.urlParts.host}:${toString config.urlParts.port}";
      };
      supplementalGroups = mkOption ({ type = types.listOf types.str; } // from cfg.defaults.supplementalGroups);
      tags = mkOption ({ type = types.listOf (types.strMatching "^tag:.*"); } // from cfg.defaults.tags);
      timeout = mkOption ({ type = types.nullOr types.str; } // from cfg.defaults.timeout);
      tsnetVerbose = mkOption ({ type = types.bool; } // from cfg.defaults.tsnetVerbose);
      upstreamAllowInsecureCiphers = mkOption ({ type = types.bool; } // from cfg.defaults.upstreamAllowInsecureCiphers);
      extraArgs = mkOption ({ type = types.listOf types.str; } // (if fork then d [ ] else from cfg.defaults.extraArgs));
    } // lib.optionalAttrs fork {
      authURL = mkOption ({ type = types.nullOr types.str; } // from cfg.defaults.authURL);
      authPath = mkOption ({ type = types.str; } // from cfg.defaults.authPath);
      authTimeout = mkOption ({ type = types.nullOr types.str; } // from cfg.defaults.authTimeout);
      authCopyHeaders = mkOption ({ type = types.attrsOf types.str; } // from cfg.defaults.authCopyHeaders);
      authInsecureHTTPS = mkOption ({ type = types.bool; } // from cfg.defaults.authInsecureHTTPS);
      authBypassForTailnet = mkOption ({ type = types.bool; } // from cfg.defaults.authBypassForTailnet);
    };
  };
in
{
  options.services.tsnsrv = {
    enable = mkOption ({ type = types.bool; } // d false);
    defaults = commonDefaults // (if fork then forkDefaults else upstreamDefaults);
    services = mkOption ({ type = types.attrsOf (types.submodule serviceModule); } // d { });
  } // lib.optionalAttrs fork {
    prometheusAddr = mkOption ({ type = types.nullOr types.str; } // d ":9099");
    separateProcesses = mkOption ({ type = types.bool; } // d true);
  };
}
