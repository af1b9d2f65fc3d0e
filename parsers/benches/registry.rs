//! Reads a generated registry of 5,000 services the way the homelab's gateway module does
//! (`lib.mapAttrs` over a registry, `//`, `optionalAttrs`, `elem`, interpolation, module merging
//! with host overrides), through the whole `migrate inventory` pipeline: parse, evaluate, merge,
//! apply flavour defaults, validate. Target: under 200 ms in release (BENCHMARKS.md); read as a
//! flake (`nixosConfigurations.big = nixpkgs.lib.nixosSystem { ... }`), under 300 ms.

use criterion::{Criterion, criterion_group, criterion_main};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use tailshift_parsers::{LoadOptions, load};

/// The allocator `migrate` uses (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Number of services in the generated registry.
const SERVICES: usize = 5_000;

/// Writes registry.nix, gateway.nix and host.nix into `dir` and returns the host file.
pub fn generate(dir: &Path, n: usize) -> PathBuf {
    let mut reg = String::from("{\n  hosts.big = {\n");
    for i in 0..n {
        let _ = writeln!(reg, "    svc{i} = {};", 10_000 + i);
    }
    reg.push_str("  };\n  bypassAuth = [");
    for i in (0..n).step_by(7) {
        let _ = write!(reg, " \"svc{i}\"");
    }
    reg.push_str(" ];\n  funnels = [");
    for i in (0..n).step_by(11) {
        let _ = write!(reg, " \"svc{i}\"");
    }
    reg.push_str(" ];\n}\n");
    std::fs::write(dir.join("registry.nix"), reg).unwrap();
    std::fs::write(
        dir.join("gateway.nix"),
        r#"{ config, lib, ... }:
let
  registry = import ./registry.nix;
  host = config.networking.hostName;
  mine = registry.hosts.${host} or { };
  authDefaults = { authURL = "https://auth.example.ts.net"; authPath = "/api/authz/forward-auth"; };
  mkService = name: port:
    { toURL = "http://127.0.0.1:${toString port}"; funnel = builtins.elem name registry.funnels; }
    // lib.optionalAttrs (!(builtins.elem name registry.bypassAuth)) authDefaults;
in {
  services.tsnsrv = {
    enable = true;
    defaults = { authKeyPath = "/run/secrets/key"; ephemeral = true; tags = [ "tag:service" ]; };
    services = lib.mapAttrs mkService mine;
  };
}
"#,
    )
    .unwrap();
    let host = dir.join("host.nix");
    std::fs::write(
        &host,
        r#"{ lib, ... }: {
  imports = [ ./gateway.nix ];
  networking.hostName = "big";
  services.tsnsrv.separateProcesses = true;
  services.tsnsrv.services = {
    svc1.toURL = lib.mkForce "http://127.0.0.1:1";
    svc2 = lib.mkForce { toURL = "http://localhost"; upstreamUnixAddr = "/run/s.sock"; };
    svc3.prefixes = [ "tailnet:/" "funnel:/share/" ];
  };
}
"#,
    )
    .unwrap();
    host
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let host = generate(dir.path(), SERVICES);
    let inv = load(std::slice::from_ref(&host), &LoadOptions::default()).unwrap();
    assert_eq!(inv.services.len(), SERVICES);
    assert!(!inv.has_errors(), "{:?}", inv.diagnostics);
    let mut g = c.benchmark_group("inventory");
    g.sample_size(10);
    g.bench_function("registry_5000_services", |b| {
        // The returned inventory is dropped outside the timing, as `migrate` exits instead.
        b.iter_with_large_drop(|| {
            load(std::slice::from_ref(&host), &LoadOptions::default()).unwrap()
        })
    });
    // The same registry read as a flake: `nixosConfigurations.big = nixpkgs.lib.nixosSystem`.
    std::fs::write(
        dir.path().join("flake.nix"),
        r#"{
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
  outputs = { self, nixpkgs }: {
    nixosConfigurations.big = nixpkgs.lib.nixosSystem {
      system = "x86_64-linux";
      specialArgs = { inherit self; };
      modules = [ ./host.nix ];
    };
  };
}
"#,
    )
    .unwrap();
    let flake = dir.path().to_path_buf();
    let inv = load(std::slice::from_ref(&flake), &LoadOptions::default()).unwrap();
    assert_eq!(inv.services.len(), SERVICES);
    assert!(!inv.has_errors(), "{:?}", inv.diagnostics);
    g.bench_function("registry_5000_services_as_a_flake", |b| {
        b.iter_with_large_drop(|| {
            load(std::slice::from_ref(&flake), &LoadOptions::default()).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
