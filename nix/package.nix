# The `migrate` binary, built from Cargo.lock with nixpkgs' Rust builder, with its shell
# completions and man pages (generated from the clap definitions by the binary itself).
{ lib, rustPlatform, installShellFiles }:

let
  manifest = builtins.fromTOML (builtins.readFile ../Cargo.toml);
  skip = [ "target" "result" ".git" ".direnv" ];
in
rustPlatform.buildRustPackage {
  pname = "tailshift";
  inherit (manifest.workspace.package) version;

  src = lib.cleanSourceWith {
    name = "tailshift-source";
    src = ../.;
    filter = path: type: !(builtins.elem (baseNameOf path) skip) && !(lib.hasSuffix ".pyc" path);
  };
  cargoLock.lockFile = ../Cargo.lock;

  cargoBuildFlags = [ "--bin" "migrate" ];
  nativeBuildInputs = [ installShellFiles ];

  # The check phase runs the tests that need neither network nor Nix nor a browser: every
  # crate's unit tests (loopback only). The integration suite (tests/) wants curl, Nix 2.8,
  # ../shared and Chromium; CI runs it (.ci/run).
  cargoTestFlags = [ "--workspace" "--lib" "--bins" ];

  postInstall = ''
    installShellCompletion --cmd migrate \
      --bash <($out/bin/migrate completions bash) \
      --zsh <($out/bin/migrate completions zsh) \
      --fish <($out/bin/migrate completions fish)
    $out/bin/migrate man --out-dir man
    installManPage man/*.1
  '';

  meta = {
    description = manifest.package.description;
    license = with lib.licenses; [ mit asl20 ];
    mainProgram = "migrate";
    platforms = lib.platforms.linux;
  };
}
