//! The split-DNS responder and the records-file backends (`split-dns`, `headscale`), queried
//! with a real DNS client (hickory's resolver) on loopback.

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use tailshift_proxy::dns::Responder;
use tailshift_shims::dns::Answer;
use tailshift_shims::headscale::HeadscaleShim;
use tailshift_shims::records::RecordsFile;
use tailshift_shims::split_dns::SplitDnsShim;
use tailshift_shims::{Shim, ShimService};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A runtime running a responder over `files`; returns its address.
fn responder(
    rt: &tokio::runtime::Runtime,
    zone: &str,
    files: Vec<std::path::PathBuf>,
) -> SocketAddr {
    let r = Arc::new(Responder::new(zone, files, 5));
    rt.block_on(r.serve("127.0.0.1:0".parse().unwrap())).unwrap()
}

fn resolver(addr: SocketAddr) -> TokioResolver {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let ns = NameServerConfig::new(addr.ip(), true, vec![udp]);
    let mut b = TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
    );
    // No caching between the test's steps: each answer must come from the responder.
    b.options_mut().cache_size = 0;
    b.build().unwrap()
}

/// The addresses hickory's resolver gets, or the error text.
fn ask(rt: &tokio::runtime::Runtime, r: &TokioResolver, name: &str) -> Result<Vec<IpAddr>, String> {
    rt.block_on(r.lookup_ip(format!("{name}.")))
        .map(|l| {
            let mut v: Vec<IpAddr> = l.iter().collect();
            v.sort();
            v
        })
        .map_err(|e| e.to_string())
}

fn svc(name: &str, addrs: &[&str]) -> ShimService {
    ShimService {
        service: format!("nas/{}", name.split('.').next().unwrap()),
        legacy_name: name.into(),
        new_names: vec![],
        proxy_addrs: addrs.iter().map(|a| ip(a)).collect(),
        funnel: false,
    }
}

#[test]
fn moved_names_answer_the_proxy_legacy_names_their_nodes_others_nxdomain() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (moved, legacy) = (dir.path().join("records.json"), dir.path().join("legacy.json"));
    RecordsFile::new(&legacy).set("jellyfin.tailnet.test", &[ip("127.0.10.1")]).unwrap();
    RecordsFile::new(&legacy).set("grafana.tailnet.test", &[ip("127.0.10.2")]).unwrap();
    let addr = responder(&rt, "tailnet.test", vec![moved.clone(), legacy.clone()]);
    let r = resolver(addr);
    assert_eq!(ask(&rt, &r, "jellyfin.tailnet.test"), Ok(vec![ip("127.0.10.1")]));
    assert!(ask(&rt, &r, "nothing.tailnet.test").is_err());
    // The response code itself: NXDOMAIN for the zone's unknown names, REFUSED outside it.
    let t = std::time::Duration::from_secs(2);
    assert_eq!(
        tailshift_shims::dns::query(addr, "nothing.tailnet.test", t).unwrap(),
        Answer::NoSuchName
    );
    assert!(
        matches!(tailshift_shims::dns::query(addr, "example.com", t).unwrap(), Answer::Error(e) if e.contains("Refused"))
    );
    // Outside the zone: refused, never answered.
    assert!(ask(&rt, &r, "example.com").is_err());
    // The split-dns shim moves jellyfin: the responder answers the proxy without a restart.
    let shim = SplitDnsShim { records: RecordsFile::new(&moved), responder: addr };
    let s = svc("jellyfin.tailnet.test", &["127.0.20.1", "fd00::1"]);
    assert!(!shim.verify(&s).unwrap().holds());
    shim.prepare(&s).unwrap();
    assert_eq!(ask(&rt, &r, "jellyfin.tailnet.test"), Ok(vec![ip("127.0.20.1"), ip("fd00::1")]));
    assert_eq!(ask(&rt, &r, "grafana.tailnet.test"), Ok(vec![ip("127.0.10.2")]));
    assert!(shim.verify(&s).unwrap().holds());
    // Undone: the legacy answer is back.
    shim.unprepare(&s).unwrap();
    assert_eq!(ask(&rt, &r, "jellyfin.tailnet.test"), Ok(vec![ip("127.0.10.1")]));
    assert!(!shim.verify(&s).unwrap().holds());
}

#[test]
fn split_dns_verify_fails_when_the_responder_does_not_serve_the_record() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The responder serves another file than the one the shim writes: the bookkeeping is there,
    // the effect is not.
    let addr = responder(&rt, "tailnet.test", vec![dir.path().join("served.json")]);
    let shim = SplitDnsShim {
        records: RecordsFile::new(dir.path().join("written.json")),
        responder: addr,
    };
    let s = svc("app.tailnet.test", &["127.0.20.1"]);
    shim.prepare(&s).unwrap();
    assert_eq!(shim.records.lookup("app.tailnet.test").unwrap(), vec![ip("127.0.20.1")]);
    let v = shim.verify(&s).unwrap();
    assert!(!v.holds(), "{v:?}");
}

/// A stand-in for headscale's CLI following its documented commands (`nodes list --output
/// json`, `nodes delete --identifier N --force`), over a file of `id name online` lines.
fn fake_headscale(dir: &Path, nodes: &str) -> Vec<String> {
    std::fs::write(dir.join("nodes.txt"), nodes).unwrap();
    let script = dir.join("headscale");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
STATE={}
case "$1 $2" in
  "nodes list")
    sep=""; printf '['
    while read -r id name online; do
      printf '%s{{"id":%s,"name":"%s","given_name":"%s","online":%s}}' "$sep" "$id" "$name" "$name" "$online"; sep=","
    done < "$STATE"
    printf ']\n' ;;
  "nodes delete")
    grep -v "^$4 " "$STATE" > "$STATE.new"; mv "$STATE.new" "$STATE"; echo "Node deleted" ;;
  *) echo "unknown command" >&2; exit 1 ;;
esac
"#,
            dir.join("nodes.txt").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    vec![script.display().to_string()]
}

#[test]
fn headscale_records_and_old_node_removal() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("extra-records.json");
    // Someone else's record stays.
    std::fs::write(&extra, r#"[{"name":"nas.ts.example.com","type":"A","value":"100.64.0.9"}]"#)
        .unwrap();
    // The responder stands for MagicDNS answering from headscale's extra records.
    let magic = responder(&rt, "ts.example.com", vec![extra.clone()]);
    let command = fake_headscale(dir.path(), "1 jellyfin true\n2 laptop true\n");
    let shim = HeadscaleShim { records: RecordsFile::new(&extra), command, resolver: magic };
    let s = svc("jellyfin.ts.example.com", &["100.64.0.1"]);
    shim.prepare(&s).unwrap();
    assert!(shim.verify(&s).unwrap().holds());
    let text = std::fs::read_to_string(&extra).unwrap();
    assert!(
        text.contains("nas.ts.example.com") && text.contains("jellyfin.ts.example.com"),
        "{text}"
    );
    // The legacy node is still online: not removed.
    let e = shim.complete(&s).unwrap_err().to_string();
    assert!(e.contains("still online"), "{e}");
    // Once offline it goes; the other node stays.
    std::fs::write(dir.path().join("nodes.txt"), "1 jellyfin false\n2 laptop true\n").unwrap();
    shim.complete(&s).unwrap();
    shim.complete(&s).unwrap();
    let nodes = std::fs::read_to_string(dir.path().join("nodes.txt")).unwrap();
    assert!(!nodes.contains("jellyfin") && nodes.contains("laptop"), "{nodes}");
    // verify asks DNS: with the record gone from what the resolver serves, it fails even if a
    // stale copy of the file says otherwise.
    let stale = HeadscaleShim {
        records: RecordsFile::new(dir.path().join("copy.json")),
        command: vec!["true".into()],
        resolver: responder(&rt, "ts.example.com", vec![dir.path().join("empty.json")]),
    };
    stale.prepare(&s).unwrap();
    assert!(!stale.verify(&s).unwrap().holds());
    shim.unprepare(&s).unwrap();
    assert_eq!(
        std::fs::read_to_string(&extra).unwrap(),
        "[\n  {\"name\":\"nas.ts.example.com\",\"type\":\"A\",\"value\":\"100.64.0.9\"}\n]\n"
    );
}
