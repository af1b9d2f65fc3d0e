# An opaque private flake input (a repository tailshift cannot read), for the corpus oracle:
# its module declares a freeform `private` tree and sets the few values the corpus reads.
{
  description = "private input stand-in for the tailshift corpus oracle";
  outputs = { self, ... }: {
    nixosModules.default = { lib, ... }: {
      options.private = lib.mkOption { type = lib.types.lazyAttrsOf lib.types.anything; default = { }; };
      config.private.authKeyFile = "/run/agenix/private-tailscale";
      config.private.domain = "example.org";
    };
    lib.tailnet = "corp-tail.ts.net";
  };
}
