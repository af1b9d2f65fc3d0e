//! `keep-node`: the old node restated on its own (NixOS snippet and systemd unit) from the
//! inventory, and its usage and liveness read from its own metrics.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use tailshift_parsers::{LoadOptions, load};
use tailshift_shims::keep_node::{KeepNodeShim, nix_snippet, unit, usage};
use tailshift_shims::{Shim, ShimService};

fn inventory_service(dir: &std::path::Path) -> tailshift_parsers::Service {
    let host = dir.join("nas.nix");
    std::fs::write(
        &host,
        r#"{ config, ... }: {
  networking.hostName = "nas";
  services.tsnsrv = {
    enable = true;
    defaults.authKeyPath = "/run/keys/tailscale";
    services.jellyfin = {
      toURL = "http://127.0.0.1:8096";
      funnel = true;
      upstreamHeaders = { "X-Origin" = "tsnsrv \"kept\""; };
    };
  };
}
"#,
    )
    .unwrap();
    let inv = load(&[host], &LoadOptions::default()).unwrap();
    inv.services.into_iter().find(|s| s.name == "jellyfin").expect("jellyfin in the inventory")
}

/// tsnsrv's metrics endpoint, answering `count` requests in two status classes.
fn fake_tsnsrv_metrics(count: u64) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            // Read the whole request head before answering (closing with unread bytes resets).
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let body = format!(
                "# TYPE tsnsrv_response_status_classes counter\ntsnsrv_response_status_classes{{status_code_class=\"2xx\"}} {}\ntsnsrv_response_status_classes{{status_code_class=\"4xx\"}} 1\n",
                count - 1
            );
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn the_node_is_restated_with_its_options_and_verified_by_its_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let svc = inventory_service(dir.path());
    let snippet = nix_snippet(&svc, "jellyfin").unwrap();
    assert!(snippet.contains("services.tsnsrv.services.\"jellyfin\" = {"), "{snippet}");
    assert!(snippet.contains("toURL = \"http://127.0.0.1:8096\";"), "{snippet}");
    assert!(snippet.contains("funnel = true;"), "{snippet}");
    assert!(snippet.contains(r#"X-Origin = "tsnsrv \"kept\"";"#), "{snippet}");
    // Real Nix parses it, where Nix is installed (CI installs it).
    let file = dir.path().join("snippet.nix");
    std::fs::write(&file, &snippet).unwrap();
    match std::process::Command::new("nix-instantiate").arg("--parse").arg(&file).output() {
        Ok(o) => assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr)),
        Err(_) => tailshift_util::testing::skip("nix-instantiate is not installed"),
    }
    let u = unit(&svc, "jellyfin", "/run/current-system/sw/bin/tsnsrv").unwrap();
    assert!(
        u.contains("-name=jellyfin")
            && u.contains("-funnel=true")
            && u.contains("http://127.0.0.1:8096"),
        "{u}"
    );

    let out = dir.path().join("out");
    let mut services = BTreeMap::new();
    services.insert("nas/jellyfin".to_string(), svc);
    let mut shim =
        KeepNodeShim { dir: out.clone(), services, tsnsrv: "tsnsrv".into(), metrics_addr: None };
    let s = ShimService {
        service: "nas/jellyfin".into(),
        legacy_name: "jellyfin.tail1.ts.net".into(),
        new_names: vec!["nas.tail1.ts.net".into()],
        proxy_addrs: vec![],
        funnel: true,
    };
    shim.prepare(&s).unwrap();
    let first = std::fs::read(out.join("tsnsrv-keep-jellyfin.nix")).unwrap();
    shim.prepare(&s).unwrap();
    assert_eq!(std::fs::read(out.join("tsnsrv-keep-jellyfin.nix")).unwrap(), first);
    // The files are there, but no node answers: not verified.
    assert!(!shim.verify(&s).unwrap().holds());
    shim.metrics_addr = Some("127.0.0.1:1".into());
    assert!(!shim.verify(&s).unwrap().holds());
    // A node that answers with its metrics: verified, and its usage counted.
    let addr = fake_tsnsrv_metrics(42);
    assert_eq!(usage(&addr).unwrap(), 42);
    shim.metrics_addr = Some(addr);
    assert!(shim.verify(&s).unwrap().holds());
    shim.unprepare(&s).unwrap();
    shim.unprepare(&s).unwrap();
    assert!(!out.join("tsnsrv-keep-jellyfin.nix").exists());
    assert!(!out.join("tsnsrv-keep-jellyfin.service").exists());
}
