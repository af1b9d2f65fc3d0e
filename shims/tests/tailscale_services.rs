//! The `tailscale-services` backend against fakes of the Tailscale admin API and tailscaled's
//! LocalAPI that follow `reference/tailscale.md` sections 9 and 11 (including their error cases).

mod fake_http;

use fake_http::{Req, Resp, read_req, write_resp};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tailshift_shims::admin_api::{AdminApi, Credential};
use tailshift_shims::services::TailscaleServicesShim;
use tailshift_shims::{LocalApi, Shim, ShimService, Verification};

const TOKEN: &str = "tskey-api-test";
const SELF_ID: &str = "nSELF";

#[derive(Default)]
struct Tailnet {
    devices: Vec<Value>,
    services: BTreeMap<String, Value>,
    approved: BTreeMap<String, bool>,
    allocated: u32,
    rate_limit_next_put: bool,
    fail_approve: bool,
    log: Vec<String>,
    // tailscaled
    self_tags: Vec<String>,
    version: Option<String>,
    advertise: Vec<String>,
    serve: Value,
    etag: u64,
    conflict_next_post: bool,
}

type Shared = Arc<Mutex<Tailnet>>;

fn device(id: &str, hostname: &str, tags: &[&str], online: bool, external: bool) -> Value {
    json!({"nodeId": id, "id": format!("legacy-{id}"), "name": format!("{hostname}.tail1.ts.net"), "hostname": hostname,
           "tags": tags, "connectedToControl": online, "isExternal": external})
}

fn admin(t: &Shared, r: &Req) -> Resp {
    let mut t = t.lock().unwrap();
    t.log.push(format!("{} {}", r.method, r.target));
    if r.method == "POST" && r.target == "/api/v2/oauth/token" {
        // The client-credentials flow: the secret identifies the client (section 11.1).
        let ok = r.body.contains("grant_type=client_credentials")
            && r.body.contains("client_secret=tskey-client-test");
        return if ok {
            Resp::json(
                200,
                &json!({"access_token": "oauth-access", "token_type": "Bearer", "expires_in": 3600}),
            )
        } else {
            Resp::json(401, &json!({"message": "invalid client"}))
        };
    }
    let bearer = r.header("authorization").unwrap_or_default();
    if bearer != format!("Bearer {TOKEN}") && bearer != "Bearer oauth-access" {
        return Resp::json(401, &json!({"message": "API token invalid"}));
    }
    let path = r.target.split('?').next().unwrap_or("").to_string();
    let segs: Vec<&str> = path.trim_start_matches("/api/v2/").split('/').collect();
    match (r.method.as_str(), segs.as_slice()) {
        ("GET", ["tailnet", "-", "devices"]) => Resp::json(200, &json!({"devices": t.devices})),
        ("DELETE", ["device", id]) => {
            let before = t.devices.len();
            t.devices.retain(|d| d["nodeId"] != *id && d["id"] != *id);
            if t.devices.len() == before {
                Resp::json(404, &json!({"message": "not found"}))
            } else {
                Resp::empty(200)
            }
        }
        ("GET", ["tailnet", "-", "services"]) => {
            Resp::json(200, &json!({"vipServices": t.services.values().collect::<Vec<_>>()}))
        }
        ("GET", ["tailnet", "-", "services", name]) => match t.services.get(*name) {
            Some(s) => Resp::json(200, s),
            None => Resp::json(404, &json!({"message": "not found"})),
        },
        ("PUT", ["tailnet", "-", "services", name]) => {
            if t.rate_limit_next_put {
                t.rate_limit_next_put = false;
                return Resp::json(429, &json!({"message": "rate limited"}))
                    .with("Retry-After", "1");
            }
            let label = name.trim_start_matches("svc:");
            if t.devices.iter().any(|d| d["hostname"] == label) {
                return Resp::json(409, &json!({"message": "name is in use but is not a service"}));
            }
            let mut def: Value = serde_json::from_str(&r.body).unwrap();
            match t.services.get(*name) {
                Some(old) if def.get("addrs").is_none() => {
                    // Auto-allocated addresses: a PUT without them fails (section 11.3).
                    let _ = old;
                    return Resp::json(400, &json!({"message": "addrs required on update"}));
                }
                Some(_) => {}
                None => {
                    t.allocated += 1;
                    if def.get("addrs").is_none() {
                        def["addrs"] = json!([
                            format!("100.100.0.{}", t.allocated),
                            format!("fd7a:115c:a1e0::{}", t.allocated)
                        ]);
                    }
                }
            }
            t.services.insert(name.to_string(), def.clone());
            Resp::json(200, &def)
        }
        ("DELETE", ["tailnet", "-", "services", name]) => {
            t.approved.remove(*name);
            match t.services.remove(*name) {
                Some(_) => Resp::empty(200),
                None => Resp::json(404, &json!({"message": "not found"})),
            }
        }
        ("GET", ["tailnet", "-", "services", name, "devices"]) => {
            let level = if t.approved.get(*name).copied().unwrap_or(false) {
                "approved:manual"
            } else {
                "not-approved"
            };
            let hosts: Vec<Value> = if t.advertise.iter().any(|a| a == name) {
                vec![json!({"stableNodeID": SELF_ID, "approvalLevel": level, "configured": true})]
            } else {
                vec![]
            };
            Resp::json(200, &json!({"hosts": hosts}))
        }
        ("POST", ["tailnet", "-", "services", name, "device", id, "approved"]) => {
            if t.fail_approve {
                return Resp::json(500, &json!({"message": "approval backend down"}));
            }
            if !t.services.contains_key(*name) || *id != SELF_ID {
                return Resp::json(404, &json!({"message": "not found"}));
            }
            t.approved.insert(name.to_string(), true);
            Resp::json(200, &json!({"approved": true, "autoApproved": false}))
        }
        _ => Resp::json(404, &json!({"message": format!("no route {path}")})),
    }
}

fn localapi(t: &Shared, r: &Req) -> Resp {
    let mut t = t.lock().unwrap();
    if r.header("host") != Some("local-tailscaled.sock") || r.header("origin").is_some() {
        return Resp { status: 403, headers: vec![], body: "invalid localapi request".into() };
    }
    let target = r.target.trim_start_matches("/localapi/v0/");
    match (r.method.as_str(), target) {
        ("GET", "status?peers=false") => Resp::json(
            200,
            &json!({
                "Version": t.version.clone().unwrap_or_else(|| "1.102.0-t1234567-gabcdef".into()),
                "Self": {"ID": SELF_ID, "DNSName": "proxyhost.tail1.ts.net.", "Tags": t.self_tags},
                "CurrentTailnet": {"MagicDNSSuffix": "tail1.ts.net"}
            }),
        ),
        ("GET", "prefs") => Resp::json(200, &json!({"AdvertiseServices": t.advertise})),
        ("PATCH", "prefs") => {
            let v: Value = serde_json::from_str(&r.body).unwrap();
            if v["AdvertiseServicesSet"] == true {
                t.advertise = v["AdvertiseServices"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().to_string())
                    .collect();
            }
            Resp::json(200, &json!({"AdvertiseServices": t.advertise}))
        }
        ("GET", "serve-config") => {
            Resp::json(200, &t.serve.clone()).with("Etag", &format!("{:064x}", t.etag))
        }
        ("POST", "serve-config") => {
            let want = r.header("if-match").unwrap_or("").to_string();
            if t.conflict_next_post {
                // Someone else changed the config between our read and our write.
                t.conflict_next_post = false;
                t.etag += 1;
                t.serve["Web"]["other.tail1.ts.net:443"] =
                    json!({"Handlers": {"/": {"Proxy": "http://127.0.0.1:9"}}});
            }
            if !want.is_empty() && want != format!("{:064x}", t.etag) {
                return Resp::json(412, &json!({"error": "etag mismatch"}));
            }
            t.serve = serde_json::from_str(&r.body).unwrap();
            t.etag += 1;
            Resp::empty(200)
        }
        _ => Resp::json(404, &json!({"error": "no such endpoint"})),
    }
}

struct World {
    t: Shared,
    shim: TailscaleServicesShim,
    base: String,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let t: Shared = Arc::new(Mutex::new(Tailnet {
        self_tags: vec!["tag:proxy".into()],
        serve: Value::Null,
        ..Default::default()
    }));
    let dir = tempfile::tempdir().unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let ta = t.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            if let Some(r) = read_req(&mut s) {
                let resp = admin(&ta, &r);
                write_resp(&mut s, &resp);
            }
        }
    });
    let sock = dir.path().join("tailscaled.sock");
    let u = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let tl = t.clone();
    std::thread::spawn(move || {
        for s in u.incoming() {
            let Ok(mut s) = s else { continue };
            if let Some(r) = read_req(&mut s) {
                let resp = localapi(&tl, &r);
                write_resp(&mut s, &resp);
            }
        }
    });
    let shim = TailscaleServicesShim {
        api: AdminApi::new(&base, "-", Credential::Token(TOKEN.into())),
        localapi: LocalApi::new(&sock),
        services_dir: PathBuf::from("/run/tailshift/services"),
        node_socket: PathBuf::from("/run/tailshift/node.sock"),
        legacy_tags: vec!["tag:tsnsrv".into()],
        service_tags: vec!["tag:svc".into()],
        auto_approved: false,
    };
    World { t, shim, base, _dir: dir }
}

fn jellyfin() -> ShimService {
    ShimService {
        service: "storage/jellyfin".into(),
        legacy_name: "jellyfin.tail1.ts.net".into(),
        new_names: vec![],
        proxy_addrs: vec![],
        funnel: false,
    }
}

fn serve_target(t: &Tailnet) -> Option<String> {
    t.serve["Services"]["svc:jellyfin"]["Web"]["jellyfin.tail1.ts.net:443"]["Handlers"]["/"]["Proxy"].as_str().map(str::to_string)
}

#[test]
fn the_old_device_goes_and_the_service_takes_its_name() {
    let w = world();
    {
        let mut t = w.t.lock().unwrap();
        t.devices.push(device("n1", "jellyfin", &["tag:tsnsrv"], false, false));
        t.devices.push(device("n2", "laptop", &[], true, false));
    }
    let s = jellyfin();
    assert!(!w.shim.verify(&s).unwrap().holds());
    w.shim.complete(&s).unwrap();
    {
        let t = w.t.lock().unwrap();
        assert_eq!(t.devices.len(), 1, "only the tsnsrv node was deleted");
        assert_eq!(t.devices[0]["hostname"], "laptop");
        assert_eq!(t.services["svc:jellyfin"]["ports"], json!(["tcp:443"]));
        assert_eq!(t.advertise, vec!["svc:jellyfin"]);
        assert_eq!(serve_target(&t).as_deref(), Some("unix:/run/tailshift/services/jellyfin.sock"));
        assert_eq!(t.serve["Services"]["svc:jellyfin"]["TCP"]["443"]["HTTPS"], true);
    }
    assert!(w.shim.verify(&s).unwrap().holds());
    // Repeating is harmless, and keeps the addresses the Service was given.
    let addrs = w.t.lock().unwrap().services["svc:jellyfin"]["addrs"].clone();
    w.shim.complete(&s).unwrap();
    assert_eq!(w.t.lock().unwrap().services["svc:jellyfin"]["addrs"], addrs);
    assert!(w.shim.verify(&s).unwrap().holds());
    // Undone in reverse: the name is free again.
    w.shim.uncomplete(&s).unwrap();
    w.shim.uncomplete(&s).unwrap();
    let t = w.t.lock().unwrap();
    assert!(t.services.is_empty() && t.advertise.is_empty() && serve_target(&t).is_none());
}

#[test]
fn conflicts_and_rate_limits_are_retried() {
    let w = world();
    {
        let mut t = w.t.lock().unwrap();
        t.conflict_next_post = true;
        t.rate_limit_next_put = true;
    }
    let s = jellyfin();
    let started = std::time::Instant::now();
    w.shim.complete(&s).unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "Retry-After: 1 was honoured");
    let t = w.t.lock().unwrap();
    // Both our Service and the other writer's entry are in the config.
    assert!(serve_target(&t).is_some());
    assert!(t.serve["Web"]["other.tail1.ts.net:443"].is_object());
    let puts = t.log.iter().filter(|l| l.starts_with("PUT")).count();
    assert_eq!(puts, 2, "{:?}", t.log);
}

#[test]
fn devices_that_are_not_the_stopped_tsnsrv_node_are_never_deleted() {
    let s = jellyfin();
    // Online: refused, nothing changed.
    let w = world();
    w.t.lock().unwrap().devices.push(device("n1", "jellyfin", &["tag:tsnsrv"], true, false));
    let e = w.shim.complete(&s).unwrap_err().to_string();
    assert!(e.contains("still online"), "{e}");
    assert_eq!(w.t.lock().unwrap().devices.len(), 1);
    assert!(w.t.lock().unwrap().services.is_empty());
    // Same name, no tsnsrv tags: someone's machine. Refused.
    let w = world();
    w.t.lock().unwrap().devices.push(device("n1", "jellyfin", &[], false, false));
    let e = w.shim.complete(&s).unwrap_err().to_string();
    assert!(e.contains("lacks the tsnsrv tags"), "{e}");
    assert_eq!(w.t.lock().unwrap().devices.len(), 1);
    // A shared-in device holds the name: the control plane answers 409, which is reported.
    let w = world();
    w.t.lock().unwrap().devices.push(device("n1", "jellyfin", &["tag:tsnsrv"], false, true));
    let e = w.shim.complete(&s).unwrap_err().to_string();
    assert!(e.contains("409"), "{e}");
    // Funnel: refused before anything happens.
    let w = world();
    let public = ShimService { funnel: true, ..jellyfin() };
    let e = w.shim.complete(&public).unwrap_err().to_string();
    assert!(e.contains("Funnel"), "{e}");
    assert!(w.t.lock().unwrap().log.is_empty());
}

#[test]
fn a_failure_halfway_leaves_nothing_after_remove() {
    let w = world();
    w.t.lock().unwrap().fail_approve = true;
    let s = jellyfin();
    let e = w.shim.complete(&s).unwrap_err().to_string();
    assert!(e.contains("approval backend down"), "{e}");
    assert!(w.t.lock().unwrap().services.contains_key("svc:jellyfin"), "defined before failing");
    w.shim.uncomplete(&s).unwrap();
    let t = w.t.lock().unwrap();
    assert!(t.services.is_empty() && t.advertise.is_empty() && serve_target(&t).is_none());
}

#[test]
fn verify_checks_tailscaled_and_the_control_plane_not_bookkeeping() {
    let w = world();
    let s = jellyfin();
    w.shim.complete(&s).unwrap();
    assert!(w.shim.verify(&s).unwrap().holds());
    // Someone reset tailscaled's serve config: everything else still says it is there.
    w.t.lock().unwrap().serve = json!({});
    let v = w.shim.verify(&s).unwrap();
    assert!(!v.holds(), "{v:?}");
    // Completing again repairs it.
    w.shim.complete(&s).unwrap();
    assert!(w.shim.verify(&s).unwrap().holds());
    // An untagged host cannot host Services.
    w.t.lock().unwrap().self_tags.clear();
    let e = w.shim.complete(&s).unwrap_err().to_string();
    assert!(e.contains("tagged"), "{e}");
}

#[test]
fn oauth_clients_get_a_token_once_and_credentials_come_from_files() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oauth");
    std::fs::write(&file, "tskey-client-test\n").unwrap();
    let cred = Credential::from_file(&file).unwrap();
    assert!(matches!(cred, Credential::OAuth { .. }));
    assert!(!format!("{cred:?}").contains("tskey-client-test"), "secrets are never printed");
    let base = w.base.clone();
    let api = AdminApi::new(&base, "-", cred);
    assert!(api.devices().unwrap().is_empty());
    assert!(api.devices().unwrap().is_empty());
    let tokens = w.t.lock().unwrap().log.iter().filter(|l| l.contains("oauth/token")).count();
    assert_eq!(tokens, 1, "the token is reused until it nears expiry");
    // A wrong secret is refused with the API's words; garbage in the file is refused early.
    std::fs::write(&file, "tskey-client-wrong").unwrap();
    let e = AdminApi::new(&base, "-", Credential::from_file(&file).unwrap()).devices().unwrap_err();
    assert!(e.to_string().contains("invalid client"), "{e}");
    std::fs::write(&file, "hunter2").unwrap();
    assert!(Credential::from_file(&file).is_err());
    std::fs::write(&file, "tskey-api-abc").unwrap();
    assert!(matches!(Credential::from_file(&file).unwrap(), Credential::Token(_)));
}

#[test]
fn the_node_entry_points_at_the_node_socket_with_funnel_when_asked() {
    let w = world();
    w.shim.ensure_node_entry("proxyhost.tail1.ts.net.", true).unwrap();
    let t = w.t.lock().unwrap();
    assert_eq!(
        t.serve["Web"]["proxyhost.tail1.ts.net:443"]["Handlers"]["/"]["Proxy"],
        "unix:/run/tailshift/node.sock"
    );
    assert_eq!(t.serve["AllowFunnel"]["proxyhost.tail1.ts.net:443"], true);
    assert_eq!(t.serve["TCP"]["443"]["HTTPS"], true);
}

#[test]
fn preflight_refuses_a_tailscaled_older_than_1_102() {
    let w = world();
    assert!(w.shim.preflight().is_ok());
    w.t.lock().unwrap().version = Some("1.100.3-t1-g2".into());
    let e = w.shim.preflight().unwrap_err().to_string();
    assert!(e.contains("is 1.100.3-t1-g2; Tailscale Services need 1.102 or later"), "{e}");
    w.t.lock().unwrap().version = Some("1.110.0".into());
    assert!(w.shim.preflight().is_ok());
}

#[test]
fn a_legacy_node_that_came_back_as_name_1_is_reported_with_the_reclaim_procedure() {
    let w = world();
    w.t.lock().unwrap().devices = vec![device("n1", "jellyfin", &["tag:tsnsrv"], true, false)];
    assert!(w.shim.verify_restored(&jellyfin()).unwrap().holds());
    // The name was still held (by the Service, or a stale device): the node got `-1`.
    w.t.lock().unwrap().devices = vec![
        device("n1", "jellyfin", &["tag:tsnsrv"], false, false),
        device("n2", "jellyfin-1", &["tag:tsnsrv"], true, false),
    ];
    match w.shim.verify_restored(&jellyfin()).unwrap() {
        Verification::Missing(why) => {
            assert!(why.contains("came back as jellyfin-1 while jellyfin is held"), "{why}");
            assert!(why.contains("delete the Service svc:jellyfin"), "{why}");
        }
        Verification::Holds => panic!("a node under another name went unnoticed"),
    }
}
