//! `migrate proxy` over real sockets: an upstream that echoes what it received, requests with
//! curl through the plain HTTP listener and the trusted unix socket, tables over the admin socket.

use crate::util::{stderr, stdout};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Answers every request on one connection with a JSON echo of its method, path and headers.
fn echo_conn<S: Read + Write>(s: S) {
    let mut r = BufReader::new(s);
    while let Some((line, head)) = read_head(&mut r) {
        let mut parts = line.split_whitespace();
        let (method, path) =
            (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let len: usize =
            head_value(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let headers: serde_json::Map<String, Value> =
            head.into_iter().map(|(k, v)| (k, json!(v))).collect();
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let out = json!({"method": method, "path": path, "headers": headers}).to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{out}",
            out.len()
        );
        if r.get_mut().write_all(resp.as_bytes()).is_err() || r.get_mut().flush().is_err() {
            return;
        }
    }
}

/// A loopback port that refuses connections for the rest of the test run: bound, never
/// listening, and kept (a port merely freed could be taken by a parallel test's listener).
fn dead_port() -> u16 {
    // SAFETY: plain socket calls on a socket this function owns; the fd is kept open on purpose.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len), 0);
        let mut len = len;
        assert_eq!(libc::getsockname(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len), 0);
        u16::from_be(addr.sin_port)
    }
}

/// An upstream that answers every request with a JSON echo of its method, path and headers.
fn echo_upstream() -> u16 {
    threaded_upstream(echo_conn)
}

/// A loopback TCP server that serves each connection on a thread of its own; its port.
fn threaded_upstream(serve: impl Fn(std::net::TcpStream) + Send + Sync + 'static) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let serve = std::sync::Arc::new(serve);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let serve = serve.clone();
            std::thread::spawn(move || serve(s));
        }
    });
    port
}

/// The echo upstream over TLS with the certificate `<dir>/<name>.crt`/`.key`; counts the
/// connections it accepted.
fn tls_echo_upstream(
    dir: &std::path::Path,
    name: &str,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let cfg = crate::util::tls_server_config(dir, name);
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
            std::thread::spawn(move || echo_conn(rustls::StreamOwned::new(conn, s)));
        }
    });
    (port, accepted)
}

struct Proxy {
    child: Child,
    dir: tempfile::TempDir,
    http: String,
    https: String,
    /// The DNS responder's address, when configured.
    dns: Option<String>,
}

impl Proxy {
    fn start() -> Proxy {
        Proxy::start_with("")
    }

    fn start_with(extra: &str) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let extra = extra.replace("{dir}", &dir.path().display().to_string());
        // Top-level keys go first; extra listener tables after the standard ones.
        let table_at =
            if extra.starts_with('[') { Some(0) } else { extra.find("\n[").map(|i| i + 1) };
        let (extra, tables) = match table_at {
            Some(i) => (extra[..i].to_string(), extra[i..].to_string()),
            None => (extra, String::new()),
        };
        let cfg = format!(
            "state_dir = \"{0}/state\"\n[[listener]]\nkind = \"trusted\"\npath = \"{0}/node.sock\"\n[[listener]]\nkind = \"http\"\naddr = \"127.0.0.1:0\"\n[[listener]]\nkind = \"https\"\naddr = \"127.0.0.1:0\"\n",
            dir.path().display()
        );
        let cfg = format!("{extra}\n{cfg}\n{tables}");
        std::fs::write(dir.path().join("proxy.toml"), cfg).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_migrate"))
            .args(["proxy", "--workers", "1", "--config"])
            .arg(dir.path().join("proxy.toml"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let line = serving_line(&mut child);
        let (http, https, dns) = (
            served_addr(&line, "http ").unwrap(),
            served_addr(&line, "https ").unwrap(),
            served_addr(&line, "dns "),
        );
        Proxy { child, dir, http, https, dns }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn put_routes(&self, routes: &Value) -> (u16, String) {
        put_routes_in(self.dir.path(), routes)
    }

    /// curl through the plain HTTP listener.
    fn get(&self, host: &str, path: &str, extra: &[&str]) -> (u16, String, String) {
        let mut c = Command::new("curl");
        c.args(["-s", "-m", "30", "-D", "-", "-w", "\n%{http_code}", "-H"])
            .arg(format!("Host: {host}"));
        for h in extra {
            c.args(["-H", h]);
        }
        c.arg(format!("http://{}{path}", self.http));
        split(c.output().unwrap().stdout)
    }

    /// curl through the trusted socket, as tailscaled's serve sends requests.
    fn via_serve(&self, name: &str, path: &str, extra: &[&str]) -> (u16, String, String) {
        let mut c = Command::new("curl");
        c.args(["-s", "-D", "-", "-w", "\n%{http_code}", "--unix-socket"])
            .arg(self.path("node.sock"));
        c.args(["-H", "Host: localhost", "-H", "X-Forwarded-For: 100.64.0.7", "-H"])
            .arg(format!("X-Forwarded-Host: {name}"));
        for h in extra {
            c.args(["-H", h]);
        }
        c.arg(format!("http://localhost{path}"));
        split(c.output().unwrap().stdout)
    }
}

/// Reads a starting proxy's standard error up to its "serving" line, which it returns, then
/// keeps draining it (the access log) so the proxy never blocks on it. Panics with what the
/// proxy printed if it exits before serving.
fn serving_line(child: &mut Child) -> String {
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut printed = String::new();
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap_or(0) > 0,
            "proxy exited before serving: {printed}"
        );
        if line.contains("tailshift proxy serving") {
            std::thread::spawn(move || for _ in err.lines() {});
            return line;
        }
        printed.push_str(&line);
    }
}

/// The address a "serving" line gives for one kind of listener (`"http "`, `"dns "`).
fn served_addr(line: &str, kind: &str) -> Option<String> {
    let after = line.split(kind).nth(1)?;
    Some(after.split([';', ',', ' ']).next()?.trim().to_string())
}

/// `migrate proxy --check-config --config FILE`.
fn check_config(file: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["proxy", "--check-config", "--config"])
        .arg(file)
        .output()
        .unwrap()
}

/// (status, headers, body) from curl -D - -w.
fn split(out: Vec<u8>) -> (u16, String, String) {
    let text = String::from_utf8_lossy(&out).to_string();
    let (rest, code) = text.rsplit_once('\n').unwrap();
    let (head, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    (code.trim().parse().unwrap_or(0), head.to_string(), body.to_string())
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn route(service: &str, name: &str, upstream: u16, extra: Value) -> Value {
    let mut r = json!({
        "service": service,
        "hosts": [{"name": name, "mount": "/"}],
        "listen": {"kind": "plaintext", "port": 80},
        "upstream": {"url": format!("http://127.0.0.1:{upstream}")},
        "strip_prefix": true,
        "host_header": "keep",
        "proxy_headers": true,
        "funnel": false,
        "tailnet": true,
        "whois": {"enabled": true, "timeout_ms": 1000}
    });
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

/// Reads one request head: the request line (trimmed) and the headers, names lower-cased, in
/// order. `None` at the end of the stream.
fn read_head(r: &mut impl BufRead) -> Option<(String, Vec<(String, String)>)> {
    let mut first = String::new();
    if r.read_line(&mut first).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Some((first.trim().to_string(), headers))
}

/// A header of a head read by [`read_head`].
fn head_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn echoed(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not an echo: {body:?}"))
}

#[test]
fn routes_by_host_with_tsnsrv_headers_per_flavour() {
    let up = echo_upstream();
    let p = Proxy::start();
    let table = json!([
        route("box/keep", "keep.tailnet.test", up, json!({"upstream_headers": {"X-Extra": "1"}})),
        route(
            "box/own",
            "own.tailnet.test",
            up,
            json!({"host_header": "upstream", "proxy_headers": false, "strip_prefix": false})
        ),
        route(
            "box/pfx",
            "pfx.tailnet.test",
            up,
            json!({"prefixes": ["/api"], "upstream": {"url": format!("http://127.0.0.1:{up}/base")}})
        ),
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    // Host kept (tsnsrv CLI default): the app sees its own name and the recommended headers.
    let (code, _, body) = p.get(
        "keep.tailnet.test:8080",
        "/x?q=1",
        &["X-Forwarded-For: 6.6.6.6", "Forwarded: for=6.6.6.6"],
    );
    assert_eq!(code, 200);
    let e = echoed(&body);
    assert_eq!(e["path"], "/x?q=1");
    let h = &e["headers"];
    assert_eq!(h["host"], "keep.tailnet.test:8080");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "the client's chain is dropped, not appended");
    assert!(h.get("forwarded").is_none());
    assert_eq!(h["x-forwarded-host"], "keep.tailnet.test:8080");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-scheme"], "http");
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert_eq!(h["x-forwarded-server"], "keep.tailnet.test");
    assert_eq!(h["x-forwarded-port"], "8080");
    assert_eq!(h["x-extra"], "1");
    assert!(h.get("x-tailscale-user").is_none());
    // A route cannot set identity at all: such a table is refused (tsnsrv deleted them).
    let forging = json!([route(
        "box/keep",
        "keep.tailnet.test",
        up,
        json!({"upstream_headers": {"X-Tailscale-User": "forged-by-config"}})
    )]);
    assert_eq!(p.put_routes(&forging).0, 400);
    // tsnsrv-all's YAML mode: the upstream sees its own Host, no recommended headers.
    let e = echoed(&p.get("own.tailnet.test", "/y", &[]).2);
    assert_eq!(e["headers"]["host"], format!("127.0.0.1:{up}"));
    assert!(e["headers"].get("x-scheme").is_none() && e["headers"].get("x-real-ip").is_none());
    assert_eq!(e["headers"]["x-forwarded-host"], "own.tailnet.test");
    // Prefix allowlist, stripped and joined onto the destination path; a miss is tsnsrv's 404.
    assert_eq!(echoed(&p.get("pfx.tailnet.test", "/api/v1", &[]).2)["path"], "/base/v1");
    assert_eq!(echoed(&p.get("pfx.tailnet.test", "/api", &[]).2)["path"], "/base");
    let (code, _, body) = p.get("pfx.tailnet.test", "/admin", &[]);
    assert_eq!((code, body.as_str()), (404, "404 page not found\n"));
    // Unknown names are 404 too.
    assert_eq!(p.get("nobody.tailnet.test", "/", &[]).0, 404);
}

#[test]
fn identity_is_believed_only_from_tailscaled() {
    let up = echo_upstream();
    let p = Proxy::start();
    let table = json!([
        route("box/app", "app.tailnet.test", up, json!({})),
        route(
            "box/share",
            "share.tailnet.test",
            up,
            json!({"funnel": true, "prefixes": ["tailnet:/", "funnel:/share/"]})
        ),
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    let forged = [
        "X-Tailscale-User: userid:1",
        "X-Tailscale-User-LoginName: admin@evil",
        "Tailscale-User-Login: admin@evil",
        "Tailscale-Funnel-Request: ?1",
    ];
    // On the plain listener, nothing a client says about identity or Funnel is believed.
    let (code, _, body) = p.get("app.tailnet.test", "/", &forged);
    assert_eq!(code, 200, "a forged funnel marker does not make a tailnet request public");
    let h = echoed(&body)["headers"].clone();
    for k in [
        "x-tailscale-user",
        "x-tailscale-user-loginname",
        "tailscale-user-login",
        "tailscale-funnel-request",
    ] {
        assert!(h.get(k).is_none(), "{k} leaked: {h}");
    }
    // Through tailscaled's serve: routed by X-Forwarded-Host (short names too), identity mapped
    // onto tsnsrv's names, the Host rebuilt from the legacy name.
    let (code, _, body) = p.via_serve(
        "app",
        "/",
        &[
            "Tailscale-User-Login: alice@example.com",
            "Tailscale-User-Name: Alice",
            "X-Tailscale-User: userid:forged",
        ],
    );
    assert_eq!(code, 200);
    let h = echoed(&body)["headers"].clone();
    assert_eq!(h["host"], "app.tailnet.test");
    assert_eq!(h["x-forwarded-for"], "100.64.0.7");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-tailscale-user-loginname"], "alice@example.com");
    assert_eq!(h["x-tailscale-user-loginname-localpart"], "alice");
    assert_eq!(h["x-tailscale-user-loginname-domain"], "example.com");
    assert_eq!(h["x-tailscale-user-displayname"], "Alice");
    assert!(h.get("x-tailscale-user").is_none() && h.get("tailscale-user-login").is_none());
    // Funnel isolation: a public request reaches only public routes, and only their funnel:/bare prefixes.
    let funnel = ["Tailscale-Funnel-Request: ?1"];
    assert_eq!(p.via_serve("app.tailnet.test", "/", &funnel).0, 403);
    assert_eq!(p.via_serve("share.tailnet.test", "/admin", &funnel).0, 404);
    let (code, _, body) = p.via_serve("share.tailnet.test", "/share/doc", &funnel);
    assert_eq!(code, 200);
    assert!(
        echoed(&body)["headers"].get("x-tailscale-user-loginname").is_none(),
        "no identity on Funnel"
    );
    assert_eq!(
        p.via_serve("share.tailnet.test", "/admin", &[]).0,
        200,
        "tailnet: / allows the tailnet"
    );
}

#[test]
fn admin_socket_swaps_whole_tables_and_refuses_bad_ones() {
    let up = echo_upstream();
    let p = Proxy::start();
    let admin = p.path("state/admin.sock");
    assert_eq!(std::fs::metadata(&admin).unwrap().permissions().mode() & 0o777, 0o600);
    let good = json!([route("box/a", "a.tailnet.test", up, json!({}))]);
    assert_eq!(p.put_routes(&good).0, 200);
    assert_eq!(p.get("a.tailnet.test", "/", &[]).0, 200);
    // Two routes claiming one name: rejected with the reason; the old table stays.
    let bad = json!([
        route("box/a", "a.tailnet.test", up, json!({})),
        route("box/b", "a.tailnet.test", up, json!({}))
    ]);
    let (code, body) = p.put_routes(&bad);
    assert_eq!(code, 400);
    assert!(body.contains("both claim a.tailnet.test"), "{body}");
    assert_eq!(p.get("a.tailnet.test", "/", &[]).0, 200);
    // The file the proxy owns holds the good table.
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(p.path("state/routes.json")).unwrap())
            .unwrap();
    assert_eq!(saved[0]["service"], "box/a");
}

#[test]
fn upstream_down_is_502_with_an_empty_body_and_https_routes_redirect() {
    let dead = dead_port();
    let p = Proxy::start();
    let table = json!([
        route("box/down", "down.tailnet.test", dead, json!({})),
        route(
            "box/tls",
            "tls.tailnet.test",
            dead,
            json!({"listen": {"kind": "https", "port": 443}})
        ),
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    let (code, _, body) = p.get("down.tailnet.test", "/", &[]);
    assert_eq!((code, body.as_str()), (502, ""));
    let (code, head, _) = p.get("tls.tailnet.test", "/p?q=1", &[]);
    assert_eq!(code, 308);
    assert!(
        head.to_ascii_lowercase().contains("location: https://tls.tailnet.test/p?q=1"),
        "{head}"
    );
}

#[test]
fn routes_are_read_back_on_sighup() {
    let up = echo_upstream();
    let p = Proxy::start();
    assert_eq!(p.put_routes(&json!([route("box/a", "a.tailnet.test", up, json!({}))])).0, 200);
    let saved = std::fs::read_to_string(p.path("state/routes.json")).unwrap();
    // A second proxy starts empty; its table file is replaced and SIGHUP reads it back.
    let p2 = Proxy::start();
    assert_eq!(p2.get("a.tailnet.test", "/", &[]).0, 404);
    std::fs::write(p2.path("state/routes.json"), saved).unwrap();
    let _ = Command::new("kill").args(["-HUP", &p2.child.id().to_string()]).status();
    let mut code = 0;
    for _ in 0..50 {
        code = p2.get("a.tailnet.test", "/", &[]).0;
        if code == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(code, 200);
}

/// A forward-auth service: `Cookie: s=ok` is granted (with Remote-User), `s=login` is sent to a
/// login page (302), anything else is refused (401 with a body). It echoes the URI it was asked
/// about, so the test sees what the proxy sent.
fn auth_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let Some((first, head)) = read_head(&mut r) else { continue };
            let cookie = head_value(&head, "cookie").unwrap_or_default().to_ascii_lowercase();
            let uri = head_value(&head, "x-forwarded-uri").unwrap_or_default().to_string();
            let method =
                head_value(&head, "x-forwarded-method").unwrap_or_default().to_ascii_lowercase();
            let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
            let resp = match cookie.as_str() {
                "s=ok" => "HTTP/1.1 200 OK\r\nRemote-User: alice\r\nContent-Length: 0\r\n\r\n".to_string(),
                "s=login" => "HTTP/1.1 302 Found\r\nLocation: https://login.example/?rd=x\r\nContent-Length: 0\r\n\r\n".to_string(),
                _ => {
                    let body = format!("denied {method} {uri} via {path}");
                    format!("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"t\"\r\nSet-Cookie: tried=1\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                }
            };
            let _ = s.write_all(resp.as_bytes());
        }
    });
    port
}

#[test]
fn forward_auth_passes_answers_back_and_never_follows_redirects() {
    let up = echo_upstream();
    let auth = auth_server();
    let p = Proxy::start();
    let a = json!({"auth": {"url": format!("http://127.0.0.1:{auth}/ignored"), "path": "/api/authz/forward-auth", "timeout_ms": 2000, "copy_headers": ["Remote-User"]}});
    let table = json!([route("box/app", "app.tailnet.test", up, a)]);
    assert_eq!(p.put_routes(&table).0, 200);
    // 2xx: the upstream gets the auth service's Remote-User, never the client's.
    let (code, _, body) =
        p.get("app.tailnet.test", "/x", &["Cookie: s=ok", "Remote-User: mallory"]);
    assert_eq!(code, 200);
    assert_eq!(echoed(&body)["headers"]["remote-user"], "alice");
    // 401: status, headers and body passed back; the auth service saw the original request.
    let (code, head, body) = p.get("app.tailnet.test", "/doc?p=1", &["Cookie: s=no"]);
    assert_eq!(code, 401);
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("www-authenticate: basic realm=\"t\"")
            && head.contains("set-cookie: tried=1"),
        "{head}"
    );
    assert_eq!(body, "denied get /doc?p=1 via /api/authz/forward-auth?p=1");
    // 302: passed back, not followed.
    let (code, head, _) = p.get("app.tailnet.test", "/", &["Cookie: s=login"]);
    assert_eq!(code, 302);
    assert!(head.to_ascii_lowercase().contains("location: https://login.example/?rd=x"), "{head}");
    // Auth down: 502 and the fork's words.
    let dead = dead_port();
    let a = json!({"auth": {"url": format!("http://127.0.0.1:{dead}"), "path": "/a", "timeout_ms": 2000}});
    assert_eq!(p.put_routes(&json!([route("box/app", "app.tailnet.test", up, a)])).0, 200);
    let (code, _, body) = p.get("app.tailnet.test", "/", &["Cookie: s=ok"]);
    assert_eq!((code, body.as_str()), (502, "Authorization service unavailable"));
}

#[test]
fn auth_bypass_applies_to_identified_tailnet_users_only() {
    let up = echo_upstream();
    let auth = auth_server();
    let p = Proxy::start();
    let a = json!({"funnel": true, "auth": {"url": format!("http://127.0.0.1:{auth}"), "path": "/a", "timeout_ms": 2000, "bypass_for_tailnet": true}});
    assert_eq!(p.put_routes(&json!([route("box/app", "app.tailnet.test", up, a)])).0, 200);
    // A tailnet user (identity from tailscaled) skips auth.
    assert_eq!(p.via_serve("app", "/", &["Tailscale-User-Login: alice@example.com"]).0, 200);
    // A tagged device does not, and neither does Funnel, and neither does a forged identity.
    assert_eq!(p.via_serve("app", "/", &["Tailscale-User-Login: tagged-devices"]).0, 401);
    assert_eq!(
        p.via_serve(
            "app",
            "/",
            &["Tailscale-User-Login: alice@example.com", "Tailscale-Funnel-Request: ?1"]
        )
        .0,
        401
    );
    assert_eq!(p.get("app.tailnet.test", "/", &["Tailscale-User-Login: alice@example.com"]).0, 401);
}

#[test]
fn metrics_keep_tsnsrv_names_and_parse_as_prometheus_text() {
    let up = echo_upstream();
    let dead = dead_port();
    let p = Proxy::start();
    let table = json!([
        route("box/app", "app.tailnet.test", up, json!({})),
        route("box/down", "down.tailnet.test", dead, json!({}))
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    for host in ["app.tailnet.test", "APP.tailnet.test", "app.tailnet.test.:80"] {
        assert_eq!(p.get(host, "/", &[]).0, 200);
    }
    assert_eq!(p.via_serve("app", "/", &[]).0, 200);
    assert_eq!(p.get("down.tailnet.test", "/", &[]).0, 502);
    let o = Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(p.path("state/admin.sock"))
        .arg("http://admin/metrics")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid exposition");
    let find = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .and_then(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v)
                | prometheus_parse::Value::Gauge(v) => Some(*v),
                prometheus_parse::Value::Summary(q) => q.first().map(|x| x.count),
                _ => None,
            })
    };
    assert_eq!(
        find(
            "tsnsrv_response_status_classes",
            &[("service_name", "box/app"), ("status_code_class", "2xx")]
        ),
        Some(4.0)
    );
    assert_eq!(find("tsnsrv_proxy_errors", &[("service_name", "box/down")]), Some(1.0));
    assert!(text.contains("# TYPE tsnsrv_request_duration_ns summary"), "{text}");
    assert!(
        text.contains("# TYPE tsnsrv_proxy_errors counter")
            && !text.contains("tsnsrv_proxy_errors_total")
    );
    // Requests by the route's own name that matched (the short name is its full name): a
    // client cannot add series by spelling a name differently.
    assert_eq!(
        find(
            "tailshift_requests_total",
            &[("service_name", "box/app"), ("host", "app.tailnet.test")]
        ),
        Some(4.0)
    );
    assert_eq!(
        find("tailshift_requests_total", &[("service_name", "box/app"), ("host", "app")]),
        None
    );
}

/// A WebSocket upstream that echoes every message (tungstenite, a real implementation).
fn ws_echo_upstream() -> u16 {
    threaded_upstream(|s| {
        let mut ws = tungstenite::accept(s).unwrap();
        while let Ok(msg) = ws.read() {
            if msg.is_text() || msg.is_binary() {
                ws.send(msg).unwrap();
            }
        }
    })
}

#[test]
fn websockets_are_spliced_through() {
    let up = ws_echo_upstream();
    let p = Proxy::start();
    assert_eq!(p.put_routes(&json!([route("box/ws", "ws.tailnet.test", up, json!({}))])).0, 200);
    let stream = std::net::TcpStream::connect(&p.http).unwrap();
    let (mut ws, resp) = tungstenite::client::client("ws://ws.tailnet.test/socket", stream)
        .expect("upgrade through the proxy");
    assert_eq!(resp.status(), 101);
    for text in ["hello", "through", "one node"] {
        ws.send(tungstenite::Message::text(text)).unwrap();
        assert_eq!(ws.read().unwrap().into_text().unwrap().as_str(), text);
    }
    ws.send(tungstenite::Message::binary(vec![0u8, 1, 2, 255])).unwrap();
    assert_eq!(ws.read().unwrap().into_data().to_vec(), vec![0u8, 1, 2, 255]);
    let _ = ws.close(None);
}

/// A minimal keep-alive HTTP/1.1 client over one TCP connection (status codes only).
struct KeepAlive {
    r: BufReader<std::net::TcpStream>,
    w: std::net::TcpStream,
}

impl KeepAlive {
    fn connect(addr: &str) -> KeepAlive {
        let s = std::net::TcpStream::connect(addr).unwrap();
        KeepAlive { r: BufReader::new(s.try_clone().unwrap()), w: s }
    }

    fn get(&mut self, host: &str, path: &str) -> u16 {
        write!(self.w, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
        let mut status = String::new();
        self.r.read_line(&mut status).unwrap();
        let code = status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            self.r.read_line(&mut h).unwrap();
            if h == "\r\n" || h.is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        self.r.read_exact(&mut body).unwrap();
        code
    }
}

/// PUT /routes over the admin socket without spawning a process.
fn put_raw(sock: &std::path::Path, table: &str) -> u16 {
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    write!(s, "PUT /routes HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{table}", table.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn a_thousand_table_swaps_under_load_lose_no_request() {
    let up = echo_upstream();
    let p = Proxy::start();
    let table = |n: usize| {
        json!([route(
            "box/a",
            "a.tailnet.test",
            up,
            json!({"upstream_headers": {"X-Gen": n.to_string()}})
        )])
        .to_string()
    };
    assert_eq!(put_raw(&p.path("state/admin.sock"), &table(0)), 200);
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let served = std::sync::Arc::new(AtomicU64::new(0));
    let mut loaders = Vec::new();
    for _ in 0..3 {
        let (addr, stop, served) = (p.http.clone(), stop.clone(), served.clone());
        loaders.push(std::thread::spawn(move || {
            let mut c = KeepAlive::connect(&addr);
            let (mut ok, mut bad) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                if c.get("a.tailnet.test", "/") == 200 {
                    ok += 1;
                    served.fetch_add(1, Ordering::Relaxed);
                } else {
                    bad += 1
                }
            }
            (ok, bad)
        }));
    }
    while served.load(Ordering::Relaxed) < 30 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let sock = p.path("state/admin.sock");
    let before = served.load(Ordering::Relaxed);
    for n in 1..=1000 {
        assert_eq!(put_raw(&sock, &table(n)), 200);
    }
    let during = served.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut bad) = (0, 0);
    for l in loaders {
        let (o, b) = l.join().unwrap();
        ok += o;
        bad += b;
    }
    assert_eq!(bad, 0, "{bad} requests failed during the swaps ({ok} served)");
    assert!(during > 0, "no request was served while the tables were swapped ({ok} in all)");
}

#[test]
fn stopping_drains_a_slow_request_first() {
    // An upstream that answers after 800 ms.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = read_head(&mut BufReader::new(s.try_clone().unwrap()));
            std::thread::sleep(std::time::Duration::from_millis(800));
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow");
        }
    });
    // With a `services` listener too (placement A): its sockets follow the route tables and
    // once kept the shutdown handle, so no request was waited for.
    for extra in ["", "[[listener]]\nkind = \"services\"\ndir = \"{dir}/svc\""] {
        let mut p = if extra.is_empty() { Proxy::start() } else { Proxy::start_with(extra) };
        assert_eq!(
            p.put_routes(&json!([route("box/slow", "slow.tailnet.test", up, json!({}))])).0,
            200
        );
        let addr = p.http.clone();
        let client =
            std::thread::spawn(move || KeepAlive::connect(&addr).get("slow.tailnet.test", "/"));
        std::thread::sleep(std::time::Duration::from_millis(200));
        let _ = Command::new("kill").args(["-TERM", &p.child.id().to_string()]).status();
        assert_eq!(client.join().unwrap(), 200, "the request in flight finished ({extra})");
        let status = p.child.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }
}

#[test]
fn a_gibibyte_streams_through_in_little_memory() {
    // An upstream that counts the body it receives and answers the count.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let Some((_, head)) = read_head(&mut r) else { continue };
            let len: u64 =
                head_value(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            let got = std::io::copy(&mut r.by_ref().take(len), &mut std::io::sink()).unwrap();
            let body = got.to_string();
            let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        }
    });
    let p = Proxy::start();
    assert_eq!(p.put_routes(&json!([route("box/big", "big.tailnet.test", up, json!({}))])).0, 200);
    let file = p.path("gib.bin");
    std::fs::File::create(&file).unwrap().set_len(1 << 30).unwrap(); // sparse: reads as zeros
    let o = Command::new("curl")
        .args(["-s", "-H", "Host: big.tailnet.test", "-T"])
        .arg(&file)
        .arg(format!("http://{}/upload", p.http))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), (1u64 << 30).to_string());
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.child.id())).unwrap();
    let hwm_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(hwm_kb < 64 * 1024, "peak RSS {hwm_kb} kB while streaming 1 GiB");
}

#[test]
fn access_rules_and_http2_and_config_check() {
    let up = echo_upstream();
    let p = Proxy::start();
    let rules = json!({"access": [{"kind": "user", "value": "alice@example.com"}]});
    assert_eq!(
        p.put_routes(&json!([
            route("box/private", "private.tailnet.test", up, rules),
            route("box/open", "open.tailnet.test", up, json!({}))
        ]))
        .0,
        200
    );
    assert_eq!(p.via_serve("private", "/", &["Tailscale-User-Login: alice@example.com"]).0, 200);
    assert_eq!(p.via_serve("private", "/", &["Tailscale-User-Login: bob@example.com"]).0, 403);
    assert_eq!(
        p.get("private.tailnet.test", "/", &["Tailscale-User-Login: alice@example.com"]).0,
        403,
        "identity is never taken from a client"
    );
    // HTTP/2 (prior knowledge on the plain listener) is served as well as HTTP/1.1.
    let o = Command::new("curl")
        .args([
            "-s",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            "-H",
            "Host: open.tailnet.test",
        ])
        .arg(format!("http://{}/", p.http))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "2 200");
    // --check-config validates the file and the saved table.
    let o = check_config(&p.path("proxy.toml"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("2 routes"));
    std::fs::write(p.path("bad.toml"), "state_dir = \"/tmp/x\"\n[[listener]]\nkind = \"htp\"\n")
        .unwrap();
    let o = check_config(&p.path("bad.toml"));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad.toml:"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn https_with_sni_certificates_from_the_development_ca() {
    let up = echo_upstream();
    let p = Proxy::start();
    let tls = json!({"listen": {"kind": "https", "port": 443}});
    assert_eq!(p.put_routes(&json!([route("box/app", "app.tailnet.test", up, tls)])).0, 200);
    let port = p.https.rsplit_once(':').unwrap().1.to_string();
    let ca = p.path("state/dev-ca.crt");
    let curl = |name: &str, extra: &[&str]| {
        let mut c = Command::new("curl");
        c.args(["-s", "-w", "\n%{http_code} %{http_version}", "--cacert"]).arg(&ca);
        c.args(["--resolve", &format!("{name}:{port}:127.0.0.1")]);
        c.args(extra);
        c.arg(format!("https://{name}:{port}/x"));
        let out = String::from_utf8_lossy(&c.output().unwrap().stdout).to_string();
        let (body, tail) = out.rsplit_once('\n').unwrap_or(("", &out));
        (body.to_string(), tail.to_string())
    };
    // A certificate for the route's name, verified against the development CA; ALPN gives h2.
    let (body, tail) = curl("app.tailnet.test", &[]);
    assert_eq!(tail, "200 2", "{body}");
    let h = echoed(&body)["headers"].clone();
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-scheme"], "https");
    assert_eq!(h["host"], format!("app.tailnet.test:{port}"));
    let (_, tail) = curl("app.tailnet.test", &["--http1.1"]);
    assert_eq!(tail, "200 1.1");
    // A name the proxy does not serve gets no certificate at all.
    let (_, tail) = curl("other.tailnet.test", &[]);
    assert!(tail.starts_with("000"), "{tail}");
    // The CA key is private.
    assert_eq!(
        std::fs::metadata(p.path("state/dev-ca.key")).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// tailscaled's LocalAPI whois, as reference/tailscale.md section 9 documents it: 403 on a
/// wrong Host, 404 for addresses that are not tailnet peers.
fn fake_whois(socket: &std::path::Path) {
    fake_localapi(socket, HashMap::new());
}

/// A LocalAPI on a unix socket following `reference/tailscale.md` section 9: 403 on a wrong
/// Host; `whois` for 100.64.0.7 (with a Service's capability when `svc_name` is given), 404
/// for anyone else; `cert/<name>?type=pair` from `certs` (key PEM, then chain), where a name
/// listed as `None` is rate limited once (429, `Retry-After: 1`). Returns the request lines.
fn fake_localapi(
    socket: &std::path::Path,
    certs: HashMap<String, Option<(String, String)>>,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let l = std::os::unix::net::UnixListener::bind(socket).unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = log.clone();
    let mut certs = certs;
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let Some((first, head)) = read_head(&mut r) else { continue };
            seen.lock().unwrap().push(first.clone());
            let host_ok = head_value(&head, "host") == Some("local-tailscaled.sock");
            let target = first.split_whitespace().nth(1).unwrap_or_default().to_string();
            let ok = |ctype: &str, body: &str| {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            };
            let resp = if !host_ok {
                "HTTP/1.1 403 Forbidden\r\nContent-Length: 24\r\n\r\ninvalid localapi request"
                    .to_string()
            } else if let Some(q) = target
                .strip_prefix("/localapi/v0/whois?addr=100.64.0.7")
                .or_else(|| target.strip_prefix("/localapi/v0/whois?addr=127.0.0.1"))
            {
                let caps = if q.contains("svc_name=svc%3Aapp") {
                    json!({"example.com/cap/app-admin": []})
                } else {
                    json!({"example.com/cap/admin": []})
                };
                let body = json!({
                    "Node": {"ID": 123, "ComputedName": "laptop", "Name": "laptop.tailnet.test.", "Tags": [], "CapMap": {}},
                    "UserProfile": {"ID": 456, "LoginName": "alice@example.com", "DisplayName": "Alice", "ProfilePicURL": "https://pic/a", "Groups": ["group:ops"]},
                    "CapMap": caps
                })
                .to_string();
                ok("application/json", &body)
            } else if target.starts_with("/localapi/v0/whois?addr=100.64.0.8") {
                // A tagged node: a pseudo user, the node's tags.
                let body = json!({
                    "Node": {"ID": 124, "ComputedName": "ci", "Name": "ci.tailnet.test.", "Tags": ["tag:admin"], "CapMap": {}},
                    "UserProfile": {"ID": 457, "LoginName": "tagged-devices", "DisplayName": "tagged devices"},
                    "CapMap": {}
                })
                .to_string();
                ok("application/json", &body)
            } else if let Some(rest) = target.strip_prefix("/localapi/v0/cert/") {
                let (name, query) = rest.split_once('?').unwrap_or((rest, ""));
                match certs.get_mut(name) {
                    Some(slot @ None) if query.contains("type=pair") => {
                        // Rate limited once; the next call gets the test CA's certificate.
                        *slot = Some(leaf_pem(name));
                        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n".to_string()
                    }
                    Some(Some((key, chain))) if query.contains("type=pair") => {
                        ok("text/plain", &format!("{key}{chain}"))
                    }
                    _ => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 19\r\n\r\nnot a cert domain\r\n".to_string(),
                }
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 22\r\n\r\nno match for IP:port\r\n"
                    .to_string()
            };
            let _ = s.write_all(resp.as_bytes());
        }
    });
    log
}

/// The test CA that stands for Let's Encrypt behind the fake LocalAPI.
fn test_ca() -> &'static (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    static CA: std::sync::OnceLock<(String, rcgen::Issuer<'static, rcgen::KeyPair>)> =
        std::sync::OnceLock::new();
    CA.get_or_init(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, "fake ACME CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), rcgen::Issuer::new(params, key))
    })
}

/// A key PEM and a chain PEM for `name` from the test CA.
fn leaf_pem(name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&key, &test_ca().1)
        .unwrap();
    (key.serialize_pem(), format!("{}{}", leaf.pem(), test_ca().0))
}

#[test]
fn whois_through_the_localapi_gives_tsnsrv_identity_headers() {
    let up = echo_upstream();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tailscaled.sock");
    fake_whois(&sock);
    let p = Proxy::start_with(&format!("localapi_socket = \"{}\"", sock.display()));
    assert_eq!(p.put_routes(&json!([route("box/app", "app.tailnet.test", up, json!({}))])).0, 200);
    let (code, _, body) = p.via_serve("app", "/", &["Tailscale-User-Login: someone@else"]);
    assert_eq!(code, 200);
    let h = echoed(&body)["headers"].clone();
    assert_eq!(h["x-tailscale-user"], "userid:1c8");
    assert_eq!(h["x-tailscale-user-loginname"], "alice@example.com");
    assert_eq!(h["x-tailscale-user-profilepicurl"], "https://pic/a");
    assert_eq!(h["x-tailscale-node"], "nodeid:7b");
    assert_eq!(h["x-tailscale-node-name"], "laptop");
    assert_eq!(h["x-tailscale-caps"], "example.com/cap/admin");
    // A route with whois off sends no identity at all.
    let off = json!({"whois": {"enabled": false, "timeout_ms": 1000}});
    assert_eq!(p.put_routes(&json!([route("box/app", "app.tailnet.test", up, off)])).0, 200);
    let h = echoed(&p.via_serve("app", "/", &[]).2)["headers"].clone();
    assert!(h.as_object().unwrap().keys().all(|k| !k.starts_with("x-tailscale-")), "{h}");
}

#[test]
fn slow_headers_are_cut_off() {
    let p = Proxy::start_with("header_read_timeout_ms = 300");
    let mut s = std::net::TcpStream::connect(&p.http).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.tailnet.test\r\n").unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(3),
        "the half-sent request held the connection for {waited:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
}

/// A CA and a leaf for `name`, written as `<dir>/<name>.crt` (leaf + CA) and `.key`; returns
/// the CA's PEM for clients.
fn issue_files(dir: &std::path::Path, name: &str, cn: &str) -> String {
    issue_files_for(dir, name, &[name], cn)
}

/// As [`issue_files`], the leaf's subject names being `sans` (a wildcard, several names).
fn issue_files_for(dir: &std::path::Path, name: &str, sans: &[&str], cn: &str) -> String {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
    std::fs::write(dir.join(format!("{name}.crt")), format!("{}{}", leaf.pem(), ca.pem())).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    ca.pem()
}

#[test]
fn certificates_from_pem_files_are_reloaded_when_they_change() {
    let up = echo_upstream();
    let certs = tempfile::tempdir().unwrap();
    let ca1 = issue_files(certs.path(), "app.tailnet.test", "first CA");
    let p = Proxy::start_with(&format!("cert_dir = \"{}\"", certs.path().display()));
    let tls = json!({"listen": {"kind": "https", "port": 443}});
    assert_eq!(p.put_routes(&json!([route("box/app", "app.tailnet.test", up, tls)])).0, 200);
    let port = p.https.rsplit_once(':').unwrap().1.to_string();
    let curl = |ca_pem: &str| {
        let ca = p.path("client-ca.pem");
        std::fs::write(&ca, ca_pem).unwrap();
        let o = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&ca)
            .args(["--resolve", &format!("app.tailnet.test:{port}:127.0.0.1")])
            .arg(format!("https://app.tailnet.test:{port}/"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert_eq!(curl(&ca1), "200");
    // Renewed files (another CA here) are picked up at the next handshake, without a restart.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let ca2 = issue_files(certs.path(), "app.tailnet.test", "second CA");
    assert_eq!(curl(&ca2), "200");
    assert_ne!(curl(&ca1), "200", "the old certificate is gone");
    // No development CA when files are configured.
    assert!(!p.path("state/dev-ca.key").exists());
}

#[test]
fn upstream_tcp_addr_is_dialed_while_the_url_names_the_host() {
    let up = echo_upstream();
    let p = Proxy::start();
    // The URL's host does not resolve; tsnsrv's upstreamTCPAddr says where to dial.
    let r = json!({"host_header": "upstream", "proxy_headers": false, "upstream": {"url": "http://app.internal:8080/base", "tcp_addr": format!("127.0.0.1:{up}")}});
    assert_eq!(p.put_routes(&json!([route("box/app", "app.tailnet.test", up, r)])).0, 200);
    let (code, _, body) = p.get("app.tailnet.test", "/x", &[]);
    assert_eq!(code, 200);
    let e = echoed(&body);
    assert_eq!(e["path"], "/base/x");
    assert_eq!(e["headers"]["host"], "app.internal:8080");
}

#[test]
fn unix_socket_upstreams_get_an_origin_form_request() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("gui.sock");
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let Some((first, head)) = read_head(&mut r) else { continue };
            let host = head_value(&head, "host").unwrap_or_default().to_string();
            let body = format!("{} {host}", first.trim());
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let p = Proxy::start();
    let r = json!({"upstream": {"url": "http://localhost", "unix": sock.display().to_string()}});
    assert_eq!(
        p.put_routes(&json!([route("box/syncthing", "syncthing.tailnet.test", 1, r)])).0,
        200
    );
    let (code, _, body) = p.get("syncthing.tailnet.test", "/rest/system?x=1", &[]);
    assert_eq!(code, 200);
    // Syncthing checks the Host: it is kept (the CLI default), and the target is origin-form.
    assert_eq!(body, "GET /rest/system?x=1 HTTP/1.1 syncthing.tailnet.test");
}

#[test]
fn https_upstreams_and_auth_are_verified_with_the_extra_ca_and_pooled() {
    let certs = tempfile::tempdir().unwrap();
    let ca = issue_files(certs.path(), "localhost", "upstream CA");
    std::fs::write(certs.path().join("ca.pem"), &ca).unwrap();
    let (up, accepted) = tls_echo_upstream(certs.path(), "localhost");
    let https_up = json!({"upstream": {"url": format!("https://localhost:{up}/base")}});
    let auth = json!({"upstream": {"url": format!("https://localhost:{up}/base")},
        "auth": {"url": format!("https://localhost:{up}"), "path": "/authz", "timeout_ms": 3000}});
    let table = json!([
        route("box/app", "app.tailnet.test", 0, https_up),
        route("box/guarded", "guarded.tailnet.test", 0, auth),
    ]);
    let p = Proxy::start_with(&format!("upstream_ca = \"{}/ca.pem\"", certs.path().display()));
    assert_eq!(p.put_routes(&table).0, 200);
    let (code, _, body) = p.get("app.tailnet.test", "/x?q=1", &[]);
    assert_eq!(code, 200, "{body}");
    let e = echoed(&body);
    assert_eq!(
        (e["path"].as_str(), e["headers"]["host"].as_str()),
        (Some("/base/x?q=1"), Some("app.tailnet.test"))
    );
    // Keep-alive toward the upstream: more requests, no more connections.
    for _ in 0..5 {
        assert_eq!(p.get("app.tailnet.test", "/", &[]).0, 200);
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1, "pooled");
    // The auth service over HTTPS too (it answers 200: allowed).
    let (code, _, body) = p.get("guarded.tailnet.test", "/y", &[]);
    assert_eq!(code, 200, "{body}");

    // Without the CA the same upstream and auth service are refused...
    let strict = Proxy::start();
    assert_eq!(strict.put_routes(&table).0, 200);
    assert_eq!(strict.get("app.tailnet.test", "/x", &[]).0, 502);
    let (code, _, body) = strict.get("guarded.tailnet.test", "/y", &[]);
    assert_eq!((code, body.as_str()), (502, "Authorization service unavailable"));
    // ...unless the route says insecureHTTPS, as tsnsrv's option did.
    let lax =
        json!({"insecure_https": true, "upstream": {"url": format!("https://localhost:{up}/")}});
    assert_eq!(strict.put_routes(&json!([route("box/app", "app.tailnet.test", 0, lax)])).0, 200);
    assert_eq!(strict.get("app.tailnet.test", "/x", &[]).0, 200);
}

#[test]
fn connect_and_response_timeouts_give_502() {
    // An upstream that accepts and never answers.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            held.push(s);
        }
    });
    let p = Proxy::start();
    let r = json!({"timeouts": {"response_header_ms": 300}});
    assert_eq!(p.put_routes(&json!([route("box/slow", "slow.tailnet.test", port, r)])).0, 200);
    let t = std::time::Instant::now();
    let (code, _, body) = p.get("slow.tailnet.test", "/", &[]);
    assert_eq!((code, body.as_str()), (502, ""));
    let waited = t.elapsed();
    assert!(waited >= std::time::Duration::from_millis(250), "{waited:?}: not the timeout");
    assert!(waited < std::time::Duration::from_secs(5), "{waited:?}");
    // A connect that cannot complete (a listener whose backlog is full drops SYNs) ends at
    // the connect timeout.
    let full = full_backlog_listener();
    let r =
        json!({"timeouts": {"connect_ms": 300}, "upstream": {"url": format!("http://{full}/")}});
    assert_eq!(p.put_routes(&json!([route("box/far", "far.tailnet.test", 0, r)])).0, 200);
    let t = std::time::Instant::now();
    assert_eq!(p.get("far.tailnet.test", "/", &[]).0, 502);
    let waited = t.elapsed();
    assert!(waited >= std::time::Duration::from_millis(250), "{waited:?}: not the timeout");
    assert!(waited < std::time::Duration::from_secs(5), "{waited:?}");
}

/// A loopback listener that never accepts, its backlog filled: further connects hang.
fn full_backlog_listener() -> std::net::SocketAddr {
    use std::os::fd::FromRawFd;
    let l = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([127, 0, 0, 1]) },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len), 0);
        assert_eq!(libc::listen(fd, 0), 0);
        TcpListener::from_raw_fd(fd)
    };
    let addr = l.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..4 {
        if let Ok(s) =
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
        {
            held.push(s);
        }
    }
    // Both stay open for the rest of the test process.
    std::mem::forget(held);
    std::mem::forget(l);
    addr
}

#[test]
fn certificates_from_the_localapi_are_fetched_ahead_and_429_is_honoured() {
    let up = echo_upstream();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tailscaled.sock");
    let mut certs = HashMap::new();
    certs.insert("app.tailnet.test".to_string(), Some(leaf_pem("app.tailnet.test")));
    certs.insert("limited.tailnet.test".to_string(), None);
    let log = fake_localapi(&sock, certs);
    let p = Proxy::start_with(&format!(
        "localapi_socket = \"{}\"\nlocalapi_certificates = true",
        sock.display()
    ));
    let tls = json!({"listen": {"kind": "https", "port": 443}});
    let table = json!([
        route("box/app", "app.tailnet.test", up, tls.clone()),
        route("box/limited", "limited.tailnet.test", up, tls),
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    let ca = p.path("acme-ca.pem");
    std::fs::write(&ca, &test_ca().0).unwrap();
    let port = p.https.rsplit_once(':').unwrap().1.to_string();
    let curl = |name: &str| {
        let o = Command::new("curl")
            .args(["-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&ca)
            .args(["--resolve", &format!("{name}:{port}:127.0.0.1")])
            .arg(format!("https://{name}:{port}/"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let until_ok = |name: &str| {
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_secs(10) {
            if curl(name) == "200" {
                return t.elapsed();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("{name}: no certificate after 10 s; LocalAPI saw {:?}", log.lock().unwrap());
    };
    until_ok("app.tailnet.test");
    until_ok("limited.tailnet.test");
    let lines = log.lock().unwrap().clone();
    let asks: Vec<&String> =
        lines.iter().filter(|l| l.contains("cert/limited.tailnet.test")).collect();
    // Asked with the pair type and a minimum validity; after the 429, asked again once.
    assert_eq!(asks.len(), 2, "{lines:?}");
    assert!(asks[0].contains("type=pair") && asks[0].contains("min_validity=720h"), "{asks:?}");
    // The names are fetched ahead of use, once each, not per handshake.
    for _ in 0..3 {
        assert_eq!(curl("app.tailnet.test"), "200");
    }
    let app_asks =
        log.lock().unwrap().iter().filter(|l| l.contains("cert/app.tailnet.test")).count();
    assert_eq!(app_asks, 1);
}

#[test]
fn each_tailscale_service_has_its_own_trusted_socket() {
    let up = echo_upstream();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tailscaled.sock");
    fake_localapi(&sock, HashMap::new());
    let p = Proxy::start_with(&format!(
        "localapi_socket = \"{}\"\n[[listener]]\nkind = \"services\"\ndir = \"{{dir}}/svc\"",
        sock.display()
    ));
    let table = json!([
        route("box/app", "app.tailnet.test", up, json!({"upstream_headers": {"X-Which": "app"}})),
        route(
            "box/grafana",
            "grafana.tailnet.test",
            up,
            json!({"upstream_headers": {"X-Which": "grafana"}})
        ),
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    for name in ["app", "grafana"] {
        let meta = std::fs::metadata(p.path(&format!("svc/{name}.sock"))).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660, "{name}");
    }
    let via = |label: &str, forwarded_host: &str, extra: &[&str]| {
        let mut c = Command::new("curl");
        c.args(["-s", "-m", "10", "-w", "\n%{http_code}", "--unix-socket"])
            .arg(p.path(&format!("svc/{label}.sock")))
            .args(["-H", "X-Forwarded-For: 100.64.0.7", "-H"])
            .arg(format!("X-Forwarded-Host: {forwarded_host}"));
        for h in extra {
            c.args(["-H", h]);
        }
        let out = String::from_utf8_lossy(&c.arg("http://localhost/x").output().unwrap().stdout)
            .to_string();
        let (body, code) = out.rsplit_once('\n').unwrap();
        (code.parse::<u16>().unwrap(), body.to_string())
    };
    // The socket names the route, whatever name the client typed.
    let (code, body) = via("grafana", "app.tailnet.test", &[]);
    assert_eq!(code, 200, "{body}");
    let e = echoed(&body);
    assert_eq!(e["headers"]["x-which"], "grafana");
    // whois is asked with svc_name: the capabilities are the grants toward that Service.
    let (_, body) = via("app", "app.tailnet.test:443", &[]);
    let e = echoed(&body);
    assert_eq!(e["headers"]["x-which"], "app");
    assert_eq!(e["headers"]["x-tailscale-caps"], "example.com/cap/app-admin");
    assert_eq!(e["headers"]["host"], "app.tailnet.test");
    // tailscaled's Funnel marker is believed here, and the route is not public.
    assert_eq!(via("app", "app.tailnet.test", &["Tailscale-Funnel-Request: ?1"]).0, 403);
    // A route that goes away takes its socket with it.
    assert_eq!(p.put_routes(&json!([table[0].clone()])).0, 200);
    assert!(!p.path("svc/grafana.sock").exists());
    assert!(p.path("svc/app.sock").exists());
}

#[test]
fn upstream_health_is_checked_on_one_timer_and_on_demand() {
    let up = echo_upstream();
    let dead = dead_port();
    let p = Proxy::start_with("health_interval_s = 1");
    let table = json!([
        route("box/alive", "alive.tailnet.test", up, json!({})),
        route("box/dead", "dead.tailnet.test", dead, json!({})),
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    let admin = |path: &str| {
        let o = Command::new("curl")
            .args(["-s", "-m", "10", "--unix-socket"])
            .arg(p.path("state/admin.sock"))
            .arg(format!("http://admin{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    // The timer's rounds show in the metrics (nothing asked on demand yet).
    let t = std::time::Instant::now();
    loop {
        let m = admin("/metrics");
        if m.contains("tailshift_upstream_up{service_name=\"box/dead\"} 0")
            && m.contains("tailshift_upstream_up{service_name=\"box/alive\"} 1")
        {
            break;
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(10), "{m}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // On demand: checked now, with the reason.
    let health: Value = serde_json::from_str(&admin("/upstreams")).unwrap();
    let by: HashMap<&str, &Value> =
        health.as_array().unwrap().iter().map(|h| (h["service"].as_str().unwrap(), h)).collect();
    assert_eq!(by["box/alive"]["healthy"], true);
    assert_eq!(by["box/dead"]["healthy"], false);
    assert!(by["box/dead"]["error"].as_str().unwrap().contains(&format!("127.0.0.1:{dead}")));
}

#[test]
fn clients_that_hang_up_mid_response_do_not_stop_the_proxy() {
    // An upstream that streams 64 MiB to whoever asks.
    let up = threaded_upstream(|mut s| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        if read_head(&mut r).is_none() {
            return;
        }
        let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 64 << 20);
        let chunk = vec![b'x'; 1 << 16];
        for _ in 0..1024 {
            if s.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let mut p = Proxy::start();
    let plain = route("box/big", "big.tailnet.test", up, json!({}));
    let tls = route(
        "box/bigtls",
        "bigtls.tailnet.test",
        up,
        json!({"listen": {"kind": "https", "port": 443}}),
    );
    assert_eq!(p.put_routes(&json!([plain, tls])).0, 200);
    for _ in 0..5 {
        // Plain: read a little, then close with unread data (the kernel answers with a reset).
        let mut s = std::net::TcpStream::connect(&p.http).unwrap();
        write!(s, "GET / HTTP/1.1\r\nHost: big.tailnet.test\r\n\r\n").unwrap();
        let mut buf = [0u8; 4096];
        s.read_exact(&mut buf).unwrap();
        drop(s);
    }
    // TLS with many pipelined requests on connections that close without reading: the
    // proxy's writes (vectored, so without MSG_NOSIGNAL) meet a reset socket.
    let port: u16 = p.https.rsplit_once(':').unwrap().1.parse().unwrap();
    let ca = std::fs::read(p.path("state/dev-ca.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(c.unwrap()).unwrap();
    }
    use rustls_pki_types::pem::PemObject;
    let cfg = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let echo_up = echo_upstream();
    let small = route(
        "box/small",
        "small.tailnet.test",
        echo_up,
        json!({"listen": {"kind": "https", "port": 443}}),
    );
    let plain = route("box/big", "big.tailnet.test", up, json!({}));
    assert_eq!(p.put_routes(&json!([plain, small])).0, 200);
    for _ in 0..3 {
        let mut open = Vec::new();
        for _ in 0..32 {
            let name = rustls_pki_types::ServerName::try_from("small.tailnet.test").unwrap();
            let conn = rustls::ClientConnection::new(cfg.clone(), name).unwrap();
            let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let reqs = "GET / HTTP/1.1\r\nHost: small.tailnet.test\r\n\r\n".repeat(50);
            let _ = tls.write_all(reqs.as_bytes());
            let mut first = [0u8; 1];
            let _ = tls.read(&mut first);
            open.push(tls);
        }
        drop(open);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(p.child.try_wait().unwrap().is_none(), "the proxy died");
    let echo = route("box/echo", "echo.tailnet.test", echo_upstream(), json!({}));
    assert_eq!(p.put_routes(&json!([echo])).0, 200);
    assert_eq!(p.get("echo.tailnet.test", "/", &[]).0, 200);
}

#[test]
fn the_proxy_hosts_the_split_dns_responder() {
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
    let p = Proxy::start_with(
        "[dns]\nlisten = \"127.0.0.1:0\"\nzone = \"tailnet.test\"\nrecords = [\"{dir}/records.json\", \"{dir}/legacy.json\"]\n",
    );
    std::fs::write(
        p.path("legacy.json"),
        r#"[{"name":"app.tailnet.test","type":"A","value":"127.0.10.1"}]"#,
    )
    .unwrap();
    let addr: std::net::SocketAddr =
        p.dns.clone().expect("dns address in the log").parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut b = hickory_resolver::TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![NameServerConfig::new(addr.ip(), true, vec![udp])]),
        hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
    );
    b.options_mut().cache_size = 0;
    let r = b.build().unwrap();
    let ask = |name: &str| -> Vec<String> {
        rt.block_on(r.lookup_ip(format!("{name}.")))
            .map(|l| l.iter().map(|i| i.to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(ask("app.tailnet.test"), vec!["127.0.10.1"]);
    assert!(ask("other.tailnet.test").is_empty());
    // The moved name's record wins over the legacy one, without a restart.
    std::fs::write(
        p.path("records.json"),
        r#"[{"name":"app.tailnet.test","type":"A","value":"127.0.20.1"}]"#,
    )
    .unwrap();
    assert_eq!(ask("app.tailnet.test"), vec!["127.0.20.1"]);
}

/// An upstream answering each path with a different HTTP/1.1 framing, on keep-alive
/// connections; counts the connections it accepted.
fn framing_upstream() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let conns = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = conns.clone();
    let port = threaded_upstream(move |s| {
        counter.fetch_add(1, Ordering::SeqCst);
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        while let Some((line, head)) = read_head(&mut r) {
            let mut parts = line.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            // The request body, as it came: by length, or chunked.
            let mut body = Vec::new();
            let framing = if head_value(&head, "transfer-encoding") == Some("chunked") {
                loop {
                    let mut size = String::new();
                    r.read_line(&mut size).unwrap();
                    let n = usize::from_str_radix(size.trim(), 16).unwrap();
                    let mut chunk = vec![0; n + 2];
                    r.read_exact(&mut chunk).unwrap();
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
                "chunked"
            } else {
                let n: usize =
                    head_value(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                body.resize(n, 0);
                r.read_exact(&mut body).unwrap();
                "length"
            };
            let ok = match (method, path) {
                (_, "/chunked") => {
                    w.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhel")
                        .and_then(|_| w.flush())
                        .is_ok()
                        && {
                            std::thread::sleep(std::time::Duration::from_millis(30));
                            w.write_all(b"lo\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n").is_ok()
                        }
                }
                (_, "/length") => w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc").is_ok(),
                (_, "/empty") => w.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").is_ok(),
                ("HEAD", "/head") => {
                    w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").is_ok()
                }
                (_, "/continue") => w
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .is_ok(),
                (_, "/upload") => {
                    let text = format!("{framing}:{}", body.len());
                    write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}", text.len()).is_ok()
                }
                (_, "/close") => {
                    let _ = w.write_all(b"HTTP/1.1 200 OK\r\n\r\nuntil-close");
                    return;
                }
                _ => w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").is_ok(),
            };
            if !ok {
                return;
            }
        }
    });
    (port, conns)
}

#[test]
fn every_upstream_framing_is_read_and_connections_are_reused_only_when_clean() {
    use std::sync::atomic::Ordering;
    let (up, conns) = framing_upstream();
    let p = Proxy::start();
    assert_eq!(p.put_routes(&json!([route("box/f", "f.tailnet.test", up, json!({}))])).0, 200);
    let curl = |args: &[&str]| -> (String, String) {
        let o = Command::new("curl")
            .args(["-s", "-S", "-H", "Host: f.tailnet.test", "-w", "\n%{http_code}"])
            .args(args)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = out.rsplit_once('\n').unwrap();
        (code.to_string(), body.to_string())
    };
    let url = |path: &str| format!("http://{}{path}", p.http);
    assert_eq!(curl(&[&url("/chunked")]), ("200".into(), "hello world".into()));
    assert_eq!(curl(&[&url("/length")]), ("200".into(), "abc".into()));
    assert_eq!(curl(&[&url("/empty")]), ("204".into(), String::new()));
    assert_eq!(curl(&["-I", &url("/head")]).0, "200");
    assert_eq!(curl(&[&url("/continue")]), ("200".into(), "ok".into()), "1xx are skipped");
    // A client's chunked body goes chunked; a sized one keeps its length.
    assert_eq!(
        curl(&["-H", "Transfer-Encoding: chunked", "--data-binary", "0123456789", &url("/upload")]),
        ("200".into(), "chunked:10".into())
    );
    assert_eq!(
        curl(&["--data-binary", "01234", &url("/upload")]),
        ("200".into(), "length:5".into())
    );
    assert_eq!(conns.load(Ordering::SeqCst), 1, "one upstream connection for all of them");
    // A body that ends with the connection: read to the end, and the connection not reused.
    assert_eq!(curl(&[&url("/close")]), ("200".into(), "until-close".into()));
    assert_eq!(curl(&[&url("/length")]), ("200".into(), "abc".into()));
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[test]
fn a_connection_the_upstream_closed_while_idle_is_not_reused() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Answers one request per connection as if keep-alive, then closes it (an idle timeout).
    let conns = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = conns.clone();
    let up = threaded_upstream(move |mut s| {
        counter.fetch_add(1, Ordering::SeqCst);
        let mut r = BufReader::new(s.try_clone().unwrap());
        if read_head(&mut r).is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let p = Proxy::start();
    assert_eq!(p.put_routes(&json!([route("box/i", "i.tailnet.test", up, json!({}))])).0, 200);
    for i in 0..5 {
        let (code, _, body) = p.get("i.tailnet.test", "/", &[]);
        assert_eq!((code, body.as_str()), (200, "ok"), "request {i}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(conns.load(Ordering::SeqCst), 5);
}

#[test]
fn the_head_deadline_spares_slow_responses_and_websockets_and_closes_idle_connections() {
    // An upstream whose body takes a second, in pieces.
    let slow = threaded_upstream(|mut s| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        while read_head(&mut r).is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
            for b in b"slow!" {
                std::thread::sleep(std::time::Duration::from_millis(200));
                let _ = s.write_all(&[*b]);
            }
        }
    });
    let ws_up = ws_echo_upstream();
    let p = Proxy::start_with("header_read_timeout_ms = 300");
    let table = json!([
        route("box/slow", "slow.tailnet.test", slow, json!({})),
        route("box/ws", "ws.tailnet.test", ws_up, json!({}))
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    // A response that outlasts the deadline arrives whole.
    let mut c = KeepAlive::connect(&p.http);
    assert_eq!(c.get("slow.tailnet.test", "/"), 200);
    // Then the idle keep-alive connection is closed after the deadline.
    let started = std::time::Instant::now();
    c.r.get_ref().set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    let _ = c.r.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(250)
            && waited < std::time::Duration::from_secs(3),
        "idle connection closed after {waited:?}"
    );
    // A WebSocket is no longer HTTP: silence longer than the deadline does not end it.
    let stream = std::net::TcpStream::connect(&p.http).unwrap();
    let (mut ws, _) = tungstenite::client::client("ws://ws.tailnet.test/", stream).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(900));
    ws.send(tungstenite::Message::text("still here")).unwrap();
    assert_eq!(ws.read().unwrap().into_text().unwrap().as_str(), "still here");
}

/// A keep-alive upstream that reports each connection the proxy closes after using it (a
/// health check's connection, which carries no request, is not reported).
fn reporting_upstream() -> (u16, std::sync::mpsc::Receiver<()>) {
    let (closed_tx, closed) = std::sync::mpsc::channel::<()>();
    let up = threaded_upstream(move |mut s| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut served = 0;
        while read_head(&mut r).is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            served += 1;
        }
        if served > 0 {
            let _ = closed_tx.send(());
        }
    });
    (up, closed)
}

#[test]
fn idle_connections_to_an_upstream_no_route_dials_are_closed() {
    let (up, closed) = reporting_upstream();
    let other = echo_upstream();
    let p = Proxy::start();
    let table = |port| json!([route("box/a", "a.tailnet.test", port, json!({}))]);
    assert_eq!(p.put_routes(&table(up)).0, 200);
    assert_eq!(p.get("a.tailnet.test", "/", &[]).0, 200);
    // Still routed: the idle connection stays open across a swap of the same table.
    assert_eq!(p.put_routes(&table(up)).0, 200);
    let wait = std::time::Duration::from_millis(500);
    assert!(closed.recv_timeout(wait).is_err(), "closed while still routed");
    assert_eq!(p.get("a.tailnet.test", "/", &[]).0, 200);
    // The route moves to another upstream: the old one's idle connection is closed.
    assert_eq!(p.put_routes(&table(other)).0, 200);
    assert!(
        closed.recv_timeout(std::time::Duration::from_secs(5)).is_ok(),
        "an idle connection to an upstream no route dials stayed open"
    );
    assert_eq!(p.get("a.tailnet.test", "/", &[]).0, 200);
}

#[test]
fn idle_connections_past_their_time_are_closed_on_the_health_round() {
    let (up, closed) = reporting_upstream();
    let p = Proxy::start_with("health_interval_s = 1\nupstream_idle_timeout_ms = 300");
    assert_eq!(p.put_routes(&json!([route("box/a", "a.tailnet.test", up, json!({}))])).0, 200);
    assert_eq!(p.get("a.tailnet.test", "/", &[]).0, 200);
    // No further request: the next health round (within about a second) drops the connection.
    assert!(
        closed.recv_timeout(std::time::Duration::from_secs(5)).is_ok(),
        "the idle pooled connection stayed open past its idle timeout"
    );
}

/// Raw curl through the trusted socket or the plain listener, the path sent as written.
fn raw_get(
    p: &Proxy,
    trusted: bool,
    host: &str,
    path: &str,
    extra: &[&str],
    h2: bool,
) -> (u16, String, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-m", "30", "--path-as-is", "-D", "-", "-w", "\n%{http_code}"]);
    if h2 {
        c.arg("--http2-prior-knowledge");
    }
    if trusted {
        c.arg("--unix-socket").arg(p.path("node.sock"));
        c.args(["-H", "X-Forwarded-For: 100.64.0.7", "-H"])
            .arg(format!("X-Forwarded-Host: {host}"));
    } else {
        c.arg("-H").arg(format!("Host: {host}"));
    }
    for h in extra {
        c.args(["-H", h]);
    }
    let base = if trusted { "http://localhost".to_string() } else { format!("http://{}", p.http) };
    c.arg(format!("{base}{path}"));
    split(c.output().unwrap().stdout)
}

/// F1: a Funnel request never reaches a path outside its route's Funnel prefixes, however the
/// path is spelled: dot-segments (plain or encoded) and repeated slashes are redirected to the
/// clean path before any routing decision, encoded separators are refused on Funnel, and clean
/// paths are forwarded byte for byte.
#[test]
fn dot_segments_never_escape_a_funnel_prefix() {
    let up = echo_upstream();
    let p = Proxy::start();
    let table = json!([
        route(
            "box/share",
            "share.tailnet.test",
            up,
            json!({"funnel": true, "prefixes": ["funnel:/pub/", "tailnet:/"], "strip_prefix": false})
        ),
        route(
            "box/based",
            "based.tailnet.test",
            up,
            json!({"funnel": true, "prefixes": ["funnel:/api/"],
                   "upstream": {"url": format!("http://127.0.0.1:{up}/base")}})
        ),
        route(
            "box/unslashed",
            "unslashed.tailnet.test",
            up,
            json!({"funnel": true, "prefixes": ["funnel:/pub"], "strip_prefix": true,
                   "upstream": {"url": format!("http://127.0.0.1:{up}/base")}})
        ),
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    let funnel = ["Tailscale-Funnel-Request: ?1"];
    for h2 in [false, true] {
        for (path, clean) in [
            ("/pub/../secret/s.txt", "/secret/s.txt"),
            ("/pub/%2e%2e/secret/s.txt", "/secret/s.txt"),
            ("/pub/%2E%2e/secret/s.txt", "/secret/s.txt"),
            ("/pub/./../secret", "/secret"),
            ("/pub//../secret", "/secret"),
            ("/pub//secret", "/pub/secret"),
            ("//secret", "/secret"),
            ("/pub/a/../../secret?x=1", "/secret?x=1"),
        ] {
            let (code, head, body) = raw_get(&p, true, "share.tailnet.test", path, &funnel, h2);
            assert_eq!(code, 301, "{path} (h2 {h2}): {body}");
            let location = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("location: ").map(str::to_string))
                .unwrap_or_default();
            assert_eq!(location.trim(), clean.to_ascii_lowercase(), "{path}");
            // The clean path, asked through Funnel, is outside the Funnel prefix: 404.
            if !clean.starts_with("/pub/") {
                let (code, _, _) = raw_get(&p, true, "share.tailnet.test", clean, &funnel, h2);
                assert_eq!(code, 404, "{clean}");
            }
        }
        for path in [
            "/pub/..%2Fsecret/s.txt",
            "/pub/%2F../secret",
            "/pub/..%5Csecret",
            "/pub/%252e%252e/secret",
            // Escapes nested in malformed ones (`%%32e` is `%2e` decoded once, `.` twice):
            // found by the request_path fuzz target.
            "/pub/%%32e%%32e/secret",
            "/pub/.%2%65/secret",
        ] {
            let (code, _, body) = raw_get(&p, true, "share.tailnet.test", path, &funnel, h2);
            assert_eq!(code, 400, "{path}: {body}");
        }
        // With an upstream base path: `/api/../other` never reaches `/base/../other`.
        let (code, _, _) = raw_get(&p, true, "based.tailnet.test", "/api/../other", &funnel, h2);
        assert_eq!(code, 301);
        // A prefix without a trailing slash, cut: `/pub..` would leave `..` for the upstream
        // to resolve out of its base path (`/base/..`; found by the request_path fuzz target).
        for path in ["/pub..", "/pub../secret", "/pub%2e%2e/secret"] {
            let (code, _, body) = raw_get(&p, true, "unslashed.tailnet.test", path, &funnel, h2);
            assert_eq!(code, 400, "{path}: {body}");
        }
        let (code, _, body) = raw_get(&p, true, "unslashed.tailnet.test", "/pub/x", &funnel, h2);
        assert_eq!((code, echoed(&body)["path"].as_str()), (200, Some("/base/x")), "{body}");
        // Clean paths pass byte for byte (no re-encoding: signed URLs keep working).
        let (code, _, body) =
            raw_get(&p, true, "share.tailnet.test", "/pub/a%20b/%41?sig=x%2By", &funnel, h2);
        assert_eq!(code, 200);
        assert_eq!(echoed(&body)["path"], "/pub/a%20b/%41?sig=x%2By");
        // The plain listener (the tailnet) cleans too.
        let (code, _, _) = raw_get(&p, false, "share.tailnet.test", "/pub/../secret", &[], h2);
        assert_eq!(code, 301);
    }
}

/// F6: mounts match on segment boundaries.
#[test]
fn mounts_match_whole_segments() {
    let up = echo_upstream();
    let other = echo_upstream();
    let p = Proxy::start();
    let mut app =
        route("box/app", "node.tailnet.test", up, json!({"upstream_headers": {"X-Which": "app"}}));
    app["hosts"] = json!([{"name": "node.tailnet.test", "mount": "/app"}]);
    let mut root = route(
        "box/root",
        "root.tailnet.test",
        other,
        json!({"upstream_headers": {"X-Which": "root"}}),
    );
    root["hosts"] = json!([{"name": "node.tailnet.test", "mount": "/"}]);
    let (code, body) = p.put_routes(&json!([app, root]));
    assert_eq!(code, 200, "{body}");
    let which = |path: &str| {
        let (code, _, body) = p.get("node.tailnet.test", path, &[]);
        assert_eq!(code, 200, "{path}");
        echoed(&body)["headers"]["x-which"].as_str().unwrap().to_string()
    };
    assert_eq!(which("/app"), "app");
    assert_eq!(which("/app/x"), "app");
    assert_eq!(which("/application"), "root", "not /app's");
    assert_eq!(which("/apple.png"), "root", "not /app's");
}

/// CPU ticks (user + system) a process has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// F2: out of file descriptors, the proxy pauses accepting instead of spinning, keeps serving,
/// counts the pauses, and serves again once descriptors are free.
#[test]
fn running_out_of_descriptors_pauses_accepting_without_spinning() {
    let up = echo_upstream();
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "state_dir = \"{0}/state\"\nheader_read_timeout_ms = 60000\n[[listener]]\nkind = \"http\"\naddr = \"127.0.0.1:0\"\n",
        dir.path().display()
    );
    std::fs::write(dir.path().join("proxy.toml"), cfg).unwrap();
    // A hard limit of 64 descriptors: raising the soft limit cannot help here.
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -n 64 && exec \"$0\" proxy --workers 1 --config \"$1\""])
        .arg(env!("CARGO_BIN_EXE_migrate"))
        .arg(dir.path().join("proxy.toml"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = served_addr(&serving_line(&mut child), "http ").unwrap();
    let table = json!([route("box/app", "app.tailnet.test", up, json!({}))]);
    let f = dir.path().join("routes.json");
    std::fs::write(&f, table.to_string()).unwrap();
    let o = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--unix-socket"])
        .arg(dir.path().join("state/admin.sock"))
        .arg("--data-binary")
        .arg(format!("@{}", f.display()))
        .arg("http://admin/routes")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "200");
    // Idle clients that never send a head hold the proxy's descriptors.
    let idle: Vec<std::net::TcpStream> =
        (0..90).filter_map(|_| std::net::TcpStream::connect(&http).ok()).collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pid = child.id();
    let before = cpu_ticks(pid);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    assert!(used < 40, "the accept loop spins: {used} ticks in 2 s with descriptors exhausted");
    drop(idle);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let get = |path: &str| {
        let o = Command::new("curl")
            .args(["-s", "-m", "10", "-H", "Host: app.tailnet.test"])
            .arg(format!("http://{http}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert!(get("/").contains("\"path\":\"/\""), "served again once descriptors are free");
    let metrics = Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(dir.path().join("state/admin.sock"))
        .arg("http://admin/metrics")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.stdout).to_string();
    let pauses: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tailshift_accept_backoffs_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(pauses > 0, "{text}");
    let _ = child.kill();
    let _ = child.wait();
}

/// F11: an upstream answer with both Content-Length and chunked Transfer-Encoding reaches the
/// client whole (the chunked framing wins, and the stale length is not passed on).
#[test]
fn chunked_framing_wins_over_a_content_length_beside_it() {
    let up = threaded_upstream(|s| {
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        while read_head(&mut r).is_some() {
            let ok = w
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n0\r\n\r\n")
                .and_then(|_| w.flush())
                .is_ok();
            if !ok {
                return;
            }
        }
    });
    let p = Proxy::start();
    assert_eq!(p.put_routes(&json!([route("box/app", "app.tailnet.test", up, json!({}))])).0, 200);
    let (code, head, body) = p.get("app.tailnet.test", "/", &[]);
    assert_eq!(code, 200);
    assert_eq!(body, "abcdef", "{head}");
    assert!(!head.to_ascii_lowercase().contains("content-length: 3"), "{head}");
}

/// F5, F7: the table refuses names that are not DNS names (a `/` would reach the file system
/// where a Service's name becomes its socket) and two routes for one name and mount on
/// different listeners or ports, or spelled with and without the trailing dot.
#[test]
fn route_names_are_dns_names_and_unique_per_mount() {
    let up = echo_upstream();
    let p = Proxy::start();
    for bad in ["/some/dir/tailscaled.x", "App.tailnet.test", "a..b", "a b", "-a.test", ""] {
        let (code, body) = p.put_routes(&json!([route("box/x", bad, up, json!({}))]));
        assert_eq!(code, 400, "{bad:?} accepted: {body}");
    }
    let https = json!({"listen": {"kind": "https", "port": 443}});
    let (code, body) = p.put_routes(&json!([
        route("box/a", "x.tailnet.test", up, json!({})),
        route("box/b", "x.tailnet.test", up, https),
    ]));
    assert_eq!(code, 400, "one name on two listeners: {body}");
    let (code, body) = p.put_routes(&json!([
        route("box/a", "x.tailnet.test", up, json!({"listen": {"kind": "https", "port": 443}})),
        route("box/b", "x.tailnet.test", up, json!({"listen": {"kind": "https", "port": 8443}})),
    ]));
    assert_eq!(code, 400, "one name on two ports: {body}");
    let (code, body) = p.put_routes(&json!([
        route("box/a", "x.tailnet.test", up, json!({})),
        route("box/b", "x.tailnet.test.", up, json!({})),
    ]));
    assert_eq!(code, 400, "x and x.: {body}");
    assert_eq!(p.put_routes(&json!([route("box/a", "x.tailnet.test", up, json!({}))])).0, 200);
}

/// F4: `group` and `tag` access rules match what the LocalAPI says of the peer (serve's
/// headers carry neither).
#[test]
fn group_and_tag_rules_match_the_localapis_answer() {
    let up = echo_upstream();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tailscaled.sock");
    fake_whois(&sock);
    let p = Proxy::start_with(&format!("localapi_socket = \"{}\"", sock.display()));
    let tag = json!({"access": [{"kind": "tag", "value": "tag:admin"}]});
    let group = json!({"access": [{"kind": "group", "value": "group:ops"}]});
    let (code, body) = p.put_routes(&json!([
        route("box/tagged", "tagged.tailnet.test", up, tag),
        route("box/ops", "ops.tailnet.test", up, group),
    ]));
    assert_eq!(code, 200, "{body}");
    let from = |peer: &str, name: &str, login: &str| -> u16 {
        let mut c = Command::new("curl");
        c.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket"])
            .arg(p.path("node.sock"))
            .args([
                "-H",
                &format!("X-Forwarded-For: {peer}"),
                "-H",
                &format!("X-Forwarded-Host: {name}"),
            ]);
        if !login.is_empty() {
            c.args(["-H", &format!("Tailscale-User-Login: {login}")]);
        }
        c.arg("http://localhost/");
        String::from_utf8_lossy(&c.output().unwrap().stdout).parse().unwrap()
    };
    // The tagged node (100.64.0.8) passes the tag rule; alice's laptop does not.
    assert_eq!(from("100.64.0.8", "tagged", ""), 200);
    assert_eq!(from("100.64.0.7", "tagged", "alice@example.com"), 403);
    // Alice holds group:ops by whois; the tagged node does not.
    assert_eq!(from("100.64.0.7", "ops", "alice@example.com"), 200);
    assert_eq!(from("100.64.0.8", "ops", ""), 403);
}

/// F12: the metrics listener cuts off a client that never completes its request head.
#[test]
fn the_metrics_listener_has_a_head_deadline() {
    let metrics = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let p =
        Proxy::start_with(&format!("header_read_timeout_ms = 300\nmetrics_addr = \"{metrics}\""));
    let _ = &p;
    let mut s = std::net::TcpStream::connect(metrics).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: m\r\n").unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "held for {:?}",
        started.elapsed()
    );
}

/// Secrets at rest: routes.json (upstream header values may be credentials) is 0600.
#[test]
fn routes_json_is_readable_by_its_owner_only() {
    let up = echo_upstream();
    let p = Proxy::start();
    let r = route(
        "box/app",
        "app.tailnet.test",
        up,
        json!({"upstream_headers": {"Authorization": "Bearer s3cret"}}),
    );
    assert_eq!(p.put_routes(&json!([r])).0, 200);
    let mode = std::fs::metadata(p.path("state/routes.json")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// F10: the series of removed routes go with them.
#[test]
fn metrics_of_removed_routes_are_forgotten() {
    let up = echo_upstream();
    let p = Proxy::start();
    let many: Vec<Value> = (0..20)
        .map(|i| route(&format!("box/s{i}"), &format!("s{i}.tailnet.test"), up, json!({})))
        .collect();
    assert_eq!(p.put_routes(&Value::Array(many)).0, 200);
    for i in 0..20 {
        assert_eq!(p.get(&format!("s{i}.tailnet.test"), "/", &[]).0, 200);
    }
    assert_eq!(p.put_routes(&json!([route("box/s0", "s0.tailnet.test", up, json!({}))])).0, 200);
    let o = Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(p.path("state/admin.sock"))
        .arg("http://admin/metrics")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains("service_name=\"box/s0\""), "{text}");
    for i in 1..20 {
        assert!(!text.contains(&format!("service_name=\"box/s{i}\"")), "box/s{i} stayed:\n{text}");
    }
}

/// Sends raw bytes to the plain listener and returns the status line.
fn raw_status(p: &Proxy, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(&p.http).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line.trim().to_string()
}

/// The decided questionable items (docs/proxy.md): two Host headers, CONNECT, `OPTIONS *`,
/// absolute-form targets, `Upgrade: h2c`, underscore names of the proxy's own headers.
#[test]
fn unusual_requests_are_answered_as_documented() {
    let up = echo_upstream();
    let p = Proxy::start();
    assert_eq!(
        p.put_routes(&json!([
            route("box/a", "a.tailnet.test", up, json!({})),
            route("box/b", "b.tailnet.test", up, json!({"upstream_headers": {"X-Which": "b"}}))
        ]))
        .0,
        200
    );
    let two_hosts = "GET / HTTP/1.1\r\nHost: a.tailnet.test\r\nHost: b.tailnet.test\r\nConnection: close\r\n\r\n";
    assert!(raw_status(&p, two_hosts).contains(" 400"), "two Host headers");
    let connect = "CONNECT a.tailnet.test:443 HTTP/1.1\r\nHost: a.tailnet.test:443\r\n\r\n";
    assert!(raw_status(&p, connect).contains(" 405"));
    let options = "OPTIONS * HTTP/1.1\r\nHost: a.tailnet.test\r\nConnection: close\r\n\r\n";
    assert!(raw_status(&p, options).contains(" 204"));
    // An absolute-form target is routed by its authority, not by Host.
    let mut s = std::net::TcpStream::connect(&p.http).unwrap();
    s.write_all(b"GET http://b.tailnet.test/x HTTP/1.1\r\nHost: a.tailnet.test\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(echoed(body)["headers"]["x-which"], "b", "{text}");
    // h2c is never offered to the upstream; underscore spellings of the proxy's headers go.
    let (code, _, body) = p.get(
        "a.tailnet.test",
        "/",
        &[
            "Connection: Upgrade",
            "Upgrade: h2c",
            "X_Tailscale_User: admin",
            "X_Forwarded_For: 1.2.3.4",
            "X_Custom: kept",
        ],
    );
    assert_eq!(code, 200);
    let h = echoed(&body)["headers"].clone();
    assert!(h.get("upgrade").is_none(), "{h}");
    assert!(h.get("x_tailscale_user").is_none() && h.get("x_forwarded_for").is_none(), "{h}");
    assert_eq!(h["x_custom"], "kept");
}

/// F3: on the HTTP and HTTPS listeners (placement B), a peer inside the tailnet's ranges is
/// identified by whois, for identity headers and access rules; a peer outside gets nothing.
/// Loopback stands in for the tailnet here.
#[test]
fn tcp_peers_in_the_tailnet_ranges_are_identified() {
    let up = echo_upstream();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tailscaled.sock");
    fake_whois(&sock);
    let rules = json!({"access": [{"kind": "user", "value": "alice@example.com"}]});
    let table = json!([
        route("box/private", "private.tailnet.test", up, rules),
        route("box/open", "open.tailnet.test", up, json!({})),
    ]);
    let inside = Proxy::start_with(&format!(
        "localapi_socket = \"{}\"\ntailnet_ranges = [\"127.0.0.0/8\"]",
        sock.display()
    ));
    assert_eq!(inside.put_routes(&table).0, 200);
    assert_eq!(inside.get("private.tailnet.test", "/", &[]).0, 200);
    let (code, _, body) =
        inside.get("open.tailnet.test", "/", &["X-Tailscale-User-LoginName: forged"]);
    assert_eq!(code, 200);
    let h = echoed(&body)["headers"].clone();
    assert_eq!(h["x-tailscale-user-loginname"], "alice@example.com");
    // The default ranges (CGNAT, Tailscale's IPv6): loopback is outside, so no identity.
    let outside = Proxy::start_with(&format!("localapi_socket = \"{}\"", sock.display()));
    assert_eq!(outside.put_routes(&table).0, 200);
    assert_eq!(outside.get("private.tailnet.test", "/", &[]).0, 403);
    let (_, _, body) =
        outside.get("open.tailnet.test", "/", &["X-Tailscale-User-LoginName: forged"]);
    let h = echoed(&body)["headers"].clone();
    assert!(h.get("x-tailscale-user-loginname").is_none(), "{h}");
    // A range that is not one is a configuration error naming the key.
    std::fs::write(
        dir.path().join("bad.toml"),
        "state_dir = \"/tmp/x\"\ntailnet_ranges = [\"100.64.0.0/99\"]\n[[listener]]\nkind = \"http\"\naddr = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let o = check_config(&dir.path().join("bad.toml"));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("tailnet_ranges"));
}

/// A name mounted only under a sub-path gets its certificate too; and the F1 path rules hold on
/// the HTTPS listener.
#[test]
fn a_name_with_only_sub_path_mounts_gets_its_certificate() {
    let up = echo_upstream();
    let p = Proxy::start();
    let mut r = route(
        "box/app",
        "node.tailnet.test",
        up,
        json!({"listen": {"kind": "https", "port": 443}}),
    );
    r["hosts"] = json!([{"name": "node.tailnet.test", "mount": "/app/"}]);
    assert_eq!(p.put_routes(&json!([r])).0, 200);
    let port = p.https.rsplit_once(':').unwrap().1.to_string();
    let get = |path: &str| {
        let o = Command::new("curl")
            .args(["-s", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(p.path("state/dev-ca.crt"))
            .args(["--resolve", &format!("node.tailnet.test:{port}:127.0.0.1")])
            .arg(format!("https://node.tailnet.test:{port}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert_eq!(get("/app/x"), "200");
    assert_eq!(get("/app/../etc"), "301");
}

/// Server-sent events reach the client as the upstream writes them, not at the end.
#[test]
fn server_sent_events_stream_through_as_written() {
    let up = threaded_upstream(|s| {
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        if read_head(&mut r).is_none() {
            return;
        }
        let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
        for i in 0..5 {
            let event = format!("data: {i}\n\n");
            let _ = w.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes());
            let _ = w.flush();
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let _ = w.write_all(b"0\r\n\r\n");
    });
    let p = Proxy::start();
    assert_eq!(p.put_routes(&json!([route("box/sse", "sse.tailnet.test", up, json!({}))])).0, 200);
    let mut s = std::net::TcpStream::connect(&p.http).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let started = std::time::Instant::now();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: sse.tailnet.test\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n").unwrap();
    let mut arrivals = Vec::new();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while arrivals.len() < 5 {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        while arrivals.len() < 5 && seen.contains(&format!("data: {}", arrivals.len())) {
            arrivals.push(started.elapsed());
        }
    }
    assert_eq!(arrivals.len(), 5, "{seen}");
    // Each event within 400 ms of when the upstream wrote it (every 200 ms from the start; a
    // proxy that held the body would deliver all five after about 1 s), spread as written.
    for (i, at) in arrivals.iter().enumerate() {
        let written = std::time::Duration::from_millis(200 * i as u64);
        assert!(
            *at < written + std::time::Duration::from_millis(400),
            "event {i} arrived at {at:?}"
        );
    }
    assert!(arrivals[4] - arrivals[0] >= std::time::Duration::from_millis(500), "{arrivals:?}");
}

/// Group and tag rules without the LocalAPI could admit no one: such a table is refused.
#[test]
fn group_and_tag_rules_need_the_localapi() {
    let up = echo_upstream();
    let p = Proxy::start();
    let tag = json!({"access": [{"kind": "tag", "value": "tag:admin"}]});
    let (code, body) = p.put_routes(&json!([route("box/t", "t.tailnet.test", up, tag)]));
    assert_eq!(code, 400);
    assert!(body.contains("localapi_socket"), "{body}");
    let user = json!({"access": [{"kind": "user", "value": "alice@example.com"}]});
    assert_eq!(p.put_routes(&json!([route("box/u", "u.tailnet.test", up, user)])).0, 200);
}

/// F9: the laptop configuration of MIGRATION.md section 3C starts on a fresh state directory
/// (its `upstream_ca` is the development CA the proxy creates), and a missing `upstream_ca`
/// elsewhere is an error naming the key, from `--check-config` too.
#[test]
fn the_laptop_configuration_starts_on_a_fresh_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = format!(
        "state_dir = \"{0}\"\nupstream_ca = \"{0}/dev-ca.crt\"\n[[listener]]\nkind = \"https\"\naddr = \"127.0.0.1:0\"\n",
        state.display()
    );
    std::fs::write(dir.path().join("proxy.toml"), &cfg).unwrap();
    let check = |file: &str| check_config(&dir.path().join(file));
    assert!(check("proxy.toml").status.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["proxy", "--workers", "1", "--config"])
        .arg(dir.path().join("proxy.toml"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Panics with the proxy's output if it exits instead (then nothing is left running).
    serving_line(&mut child);
    let _ = child.kill();
    let _ = child.wait();
    std::fs::write(
        dir.path().join("bad.toml"),
        cfg.replace(&format!("{}/dev-ca.crt", state.display()), "/nonexistent/ca.pem"),
    )
    .unwrap();
    let o = check("bad.toml");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("upstream_ca"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// RFC 2047-encoded `Tailscale-User-Name` (tailscaled's form for non-ASCII names) is decoded.
#[test]
fn encoded_display_names_are_decoded() {
    let up = echo_upstream();
    let p = Proxy::start();
    assert_eq!(p.put_routes(&json!([route("box/app", "app.tailnet.test", up, json!({}))])).0, 200);
    let (code, _, body) = p.via_serve(
        "app",
        "/",
        &["Tailscale-User-Login: j@example.com", "Tailscale-User-Name: =?utf-8?q?J=C3=BCrgen?="],
    );
    assert_eq!(code, 200);
    assert_eq!(echoed(&body)["headers"]["x-tailscale-user-displayname"], "Jürgen");
}

/// Starts `migrate proxy` on `config`, which must refuse to start; its standard error.
fn refused_start(config: &std::path::Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["proxy", "--workers", "1", "--config"])
        .arg(config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the proxy started on {}", config.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// F7: under a `services` listener, two routes whose first names share their first label
/// (`app.a.test`, `app.b.test`) would both be `svc:app` on `app.sock`, and one of them would
/// get no socket: such a table is refused at `PUT /routes` (naming both routes), in
/// `routes.json` at start and on SIGHUP, and by `--check-config`; a proxy without that listener
/// serves it. And no name makes a Service socket outside the services directory.
#[test]
fn first_label_collisions_are_refused_under_a_services_listener() {
    let up = echo_upstream();
    let p = Proxy::start_with("[[listener]]\nkind = \"services\"\ndir = \"{dir}/svc\"");
    let clash = json!([
        route("box/a", "app.a.test", up, json!({"upstream_headers": {"X-Which": "a"}})),
        route("box/b", "app.b.test", up, json!({})),
    ]);
    let (code, body) = p.put_routes(&clash);
    assert_eq!(code, 400, "{body}");
    for part in ["box/a (app.a.test)", "box/b (app.b.test)", "`app`", "`services` listener"] {
        assert!(body.contains(part), "{part:?} missing: {body}");
    }
    // Only a route's first name is its Service: a later name may share the label.
    let mut c = route("box/c", "c.b.test", up, json!({}));
    c["hosts"] = json!([{"name": "c.b.test", "mount": "/"}, {"name": "app.b.test", "mount": "/"}]);
    let fine = json!([clash[0].clone(), c]);
    let (code, body) = p.put_routes(&fine);
    assert_eq!(code, 200, "{body}");
    let mut socks: Vec<String> = std::fs::read_dir(p.path("svc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    socks.sort();
    assert_eq!(socks, ["app.sock", "c.sock"]);
    // Names that are no DNS names never reach the file system, inside the directory or out.
    let escape = p.path("evil/tailscaled.x").display().to_string();
    for bad in [escape.as_str(), "../x.test", "..", ".x.test", "a/b.test"] {
        let (code, body) = p.put_routes(&json!([route("box/x", bad, up, json!({}))]));
        assert_eq!(code, 400, "{bad:?} accepted: {body}");
    }
    assert!(!p.path("evil").exists());
    assert_eq!(std::fs::read_dir(p.path("svc")).unwrap().count(), 2, "the old table's sockets");
    // A table saved behind the proxy's back is refused on SIGHUP: the old one keeps serving.
    std::fs::write(p.path("state/routes.json"), clash.to_string()).unwrap();
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(p.child.id() as i32, libc::SIGHUP) }, 0);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(p.get("c.b.test", "/", &[]).0, 200, "the old table was replaced");
    // At start, and with --check-config, the same table is refused, naming the file.
    let services = p.path("services.toml");
    std::fs::write(
        &services,
        format!(
            "state_dir = \"{0}/state\"\n[[listener]]\nkind = \"services\"\ndir = \"{0}/svc2\"\n",
            p.dir.path().display()
        ),
    )
    .unwrap();
    let err = refused_start(&services);
    assert!(err.contains("routes.json") && err.contains("box/b (app.b.test)"), "{err}");
    let o = check_config(&services);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("routes.json") && err.contains("box/a (app.a.test)"), "{err}");
    // Without a services listener the labels do not matter.
    let plain = p.path("plain.toml");
    std::fs::write(
        &plain,
        format!(
            "state_dir = \"{0}/state\"\n[[listener]]\nkind = \"http\"\naddr = \"127.0.0.1:0\"\n",
            p.dir.path().display()
        ),
    )
    .unwrap();
    let o = check_config(&plain);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("2 routes"));
}

/// Group and tag rules need `localapi_socket`: `--check-config` refuses a saved table that
/// has them without it, as `PUT /routes` does, and accepts it once the socket is configured.
#[test]
fn check_config_refuses_group_and_tag_rules_without_the_localapi() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let group = json!({"access": [{"kind": "group", "value": "group:ops"}]});
    let table = json!([
        route("box/open", "open.tailnet.test", 1, json!({})),
        route("box/ops", "ops.tailnet.test", 1, group),
    ]);
    std::fs::write(dir.path().join("state/routes.json"), table.to_string()).unwrap();
    let cfg = format!(
        "state_dir = \"{0}/state\"\n[[listener]]\nkind = \"http\"\naddr = \"127.0.0.1:0\"\n",
        dir.path().display()
    );
    std::fs::write(dir.path().join("proxy.toml"), &cfg).unwrap();
    let o = check_config(&dir.path().join("proxy.toml"));
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{err}");
    for part in ["routes.json", "box/ops", "localapi_socket"] {
        assert!(err.contains(part), "{part:?} missing: {err}");
    }
    // The proxy itself refuses to start on it.
    assert!(refused_start(&dir.path().join("proxy.toml")).contains("localapi_socket"));
    let with = format!("localapi_socket = \"{}/tailscaled.sock\"\n{cfg}", dir.path().display());
    std::fs::write(dir.path().join("proxy.toml"), with).unwrap();
    let o = check_config(&dir.path().join("proxy.toml"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// curl over the HTTPS listener: TLS for `sni` (SNI and the certificate checked against
/// `ca`), the request naming `host` (HTTP/2's `:authority`: curl sends a custom Host there),
/// over HTTP/1.1 or HTTP/2. The status, the negotiated version and the body.
fn https_as(
    p: &Proxy,
    ca: &std::path::Path,
    sni: &str,
    host: &str,
    h2: bool,
) -> (u16, String, String) {
    let port = p.https.rsplit_once(':').unwrap().1;
    let o = Command::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code} %{http_version}", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{sni}:{port}:127.0.0.1")])
        .arg(if h2 { "--http2" } else { "--http1.1" })
        .args(["-H", &format!("Host: {host}")])
        .arg(format!("https://{sni}:{port}/x"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let (body, tail) = out.rsplit_once('\n').unwrap_or(("", &out));
    let (code, version) = tail.split_once(' ').unwrap_or((tail, ""));
    (code.parse().unwrap_or(0), version.to_string(), body.to_string())
}

/// SNI differing from Host (decided item): 421 only when the certificate the connection
/// presented does not cover the Host. With the development CA (a certificate per name) another
/// name is 421, the same name in another spelling is served; with a wildcard certificate every
/// name it covers is served on the connection (HTTP/2 reuse across names keeps working), others
/// are 421. Over HTTP/1.1 and HTTP/2.
#[test]
fn a_host_the_connections_certificate_does_not_cover_is_misdirected() {
    let up = echo_upstream();
    let tls = |which: &str| json!({"listen": {"kind": "https", "port": 443}, "upstream_headers": {"X-Which": which}});
    let p = Proxy::start();
    let table = json!([
        route("box/a", "a.tailnet.test", up, tls("a")),
        route("box/b", "b.tailnet.test", up, tls("b")),
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    let ca = p.path("state/dev-ca.crt");
    let port = p.https.rsplit_once(':').unwrap().1.to_string();
    for h2 in [false, true] {
        let version = if h2 { "2" } else { "1.1" };
        let (code, v, body) = https_as(&p, &ca, "a.tailnet.test", "a.tailnet.test", h2);
        assert_eq!((code, v.as_str()), (200, version), "{body}");
        assert_eq!(echoed(&body)["headers"]["x-which"], "a");
        let (code, v, body) = https_as(&p, &ca, "a.tailnet.test", "b.tailnet.test", h2);
        assert_eq!((code, v.as_str()), (421, version), "{body}");
        let (code, _, _) =
            https_as(&p, &ca, "a.tailnet.test", &format!("b.tailnet.test:{port}"), h2);
        assert_eq!(code, 421);
        // The connection's own name in another case, with a port or a trailing dot.
        for host in [format!("A.Tailnet.Test:{port}"), "a.tailnet.test.".to_string()] {
            let (code, _, body) = https_as(&p, &ca, "a.tailnet.test", &host, h2);
            assert_eq!(code, 200, "{host}: {body}");
            assert_eq!(echoed(&body)["headers"]["x-which"], "a");
        }
    }
    // A wildcard certificate (from files) covers its names.
    let certs = tempfile::tempdir().unwrap();
    let ca_pem = issue_files_for(certs.path(), "a.example.test", &["*.example.test"], "wild CA");
    let p = Proxy::start_with(&format!("cert_dir = \"{}\"", certs.path().display()));
    let table = json!([
        route("box/a", "a.example.test", up, tls("a")),
        route("box/b", "b.example.test", up, tls("b")),
        route("box/c", "c.other.test", up, tls("c")),
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    let ca = p.path("client-ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    for h2 in [false, true] {
        let (code, _, body) = https_as(&p, &ca, "a.example.test", "b.example.test", h2);
        assert_eq!(code, 200, "h2 {h2}: {body}");
        assert_eq!(echoed(&body)["headers"]["x-which"], "b");
        let (code, _, body) = https_as(&p, &ca, "a.example.test", "c.other.test", h2);
        assert_eq!(code, 421, "h2 {h2}: {body}");
    }
}

/// One HTTP/2 request with prior knowledge (h2c) to `addr`: `:authority` from `uri`, and
/// `headers` sent as they are (a `host` among them is a field of its own, which curl would
/// fold into `:authority`; repeated names go as separate fields). The status.
fn h2c_status(addr: &str, uri: &str, headers: &[(&str, &str)]) -> u16 {
    h2c_get(addr, uri, headers, false).0
}

/// [`h2c_status`]'s request: the status, and the body when `read_body`.
fn h2c_get(addr: &str, uri: &str, headers: &[(&str, &str)], read_body: bool) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use http_body_util::BodyExt;
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let mut req = http::Request::get(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
        let resp = tokio::time::timeout(std::time::Duration::from_secs(10), send.send_request(req))
            .await
            .expect("no answer in 10 s")
            .unwrap();
        let status = resp.status().as_u16();
        if !read_body {
            return (status, String::new());
        }
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).to_string())
    })
}

/// HTTP/2 `host` differing from `:authority` (decided item): 400 (RFC 9113 8.3.1), never
/// routed by either; the same name in both (any case) is served.
#[test]
fn an_http2_host_unlike_the_authority_is_refused() {
    let up = echo_upstream();
    let p = Proxy::start();
    let table = json!([
        route("box/a", "a.tailnet.test", up, json!({})),
        route("box/b", "b.tailnet.test", up, json!({})),
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    assert_eq!(h2c_status(&p.http, "http://a.tailnet.test/", &[]), 200);
    assert_eq!(h2c_status(&p.http, "http://a.tailnet.test/", &[("host", "A.tailnet.test")]), 200);
    assert_eq!(h2c_status(&p.http, "http://a.tailnet.test/", &[("host", "b.tailnet.test")]), 400);
    assert_eq!(h2c_status(&p.http, "http://nobody.test/", &[("host", "a.tailnet.test")]), 400);
}

/// F1, the whole matrix: through the trusted socket (as Funnel) and the HTTPS listener (the
/// tailnet), over HTTP/1.1 and HTTP/2, on routes with and without `strip_prefix`, with and
/// without an upstream base path, every spelling of a traversal (`..`, `%2e%2e`, `..%2F`,
/// `%2F..`, `//`, `/./`): dot-segments and repeated slashes are answered 301 to the clean path
/// before any routing decision, and the clean path is judged by the prefix rules like any
/// other; encoded separators are refused on Funnel and, on the tailnet, forwarded byte for byte
/// (never decoded or resolved by the proxy).
#[test]
fn every_traversal_spelling_on_every_listener_and_route_shape() {
    let up = echo_upstream();
    let p = Proxy::start();
    // (name, strip_prefix, base path)
    let shapes = [
        ("keep.tailnet.test", false, ""),
        ("strip.tailnet.test", true, ""),
        ("based.tailnet.test", true, "/base"),
        ("keepbased.tailnet.test", false, "/base"),
    ];
    let table: Vec<Value> = shapes
        .iter()
        .map(|(name, strip, base)| {
            route(
                &format!("box/{name}"),
                name,
                up,
                json!({"funnel": true, "prefixes": ["/pub/"], "strip_prefix": strip,
                       "listen": {"kind": "https", "port": 443},
                       "upstream": {"url": format!("http://127.0.0.1:{up}{base}")}}),
            )
        })
        .collect();
    let (code, body) = p.put_routes(&Value::Array(table));
    assert_eq!(code, 200, "{body}");
    let ca = p.path("state/dev-ca.crt");
    let port = p.https.rsplit_once(':').unwrap().1.to_string();
    // (status, Location, body) through the trusted socket as Funnel, or the HTTPS listener.
    let ask = |trusted: bool, name: &str, path: &str, h2: bool| -> (u16, String, String) {
        let (code, head, body) = if trusted {
            raw_get(&p, true, name, path, &["Tailscale-Funnel-Request: ?1"], h2)
        } else {
            let mut c = Command::new("curl");
            c.args(["-s", "-m", "10", "--path-as-is", "-D", "-", "-w", "\n%{http_code}"])
                .arg(if h2 { "--http2" } else { "--http1.1" })
                .arg("--cacert")
                .arg(&ca)
                .args(["--resolve", &format!("{name}:{port}:127.0.0.1")])
                .arg(format!("https://{name}:{port}{path}"));
            split(c.output().unwrap().stdout)
        };
        let location = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("location").then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        (code, location, body)
    };
    // What the upstream is asked for a clean path under /pub/ (Go's SetURL, as tsnsrv).
    let upstream = |strip: bool, base: &str, path: &str| -> String {
        let rest = if strip { path.strip_prefix("/pub/").unwrap() } else { path };
        match (base, rest.starts_with('/')) {
            ("", true) => rest.to_string(),
            ("", false) => format!("/{rest}"),
            (b, true) => format!("{b}{rest}"),
            (b, false) => format!("{b}/{rest}"),
        }
    };
    // The HTTPS listener negotiates each version asked for (the trusted socket's h2c needs
    // prior knowledge, which fails outright if not spoken).
    for (h2, version) in [(false, "1.1"), (true, "2")] {
        let (_, v, _) = https_as(&p, &ca, "keep.tailnet.test", "keep.tailnet.test", h2);
        assert_eq!(v, version);
    }
    for trusted in [true, false] {
        for h2 in [false, true] {
            for (name, strip, base) in shapes {
                let at = format!("{name} trusted={trusted} h2={h2}");
                // Dot-segments and repeated slashes: 301 to the clean path, whatever the
                // spelling; the clean path is then judged like any other.
                for (path, clean) in [
                    ("/pub/../secret/s.txt", "/secret/s.txt"),
                    ("/pub/%2e%2e/secret/s.txt", "/secret/s.txt"),
                    ("/pub/%2E%2E/secret/s.txt", "/secret/s.txt"),
                    ("/pub/./../secret/s.txt", "/secret/s.txt"),
                    ("//secret/s.txt", "/secret/s.txt"),
                    ("/pub//../../secret/s.txt", "/secret/s.txt"),
                    ("/pub/a/%2e%2e/x", "/pub/x"),
                    ("/pub//x", "/pub/x"),
                    ("/pub/./x", "/pub/x"),
                ] {
                    let (code, location, body) = ask(trusted, name, path, h2);
                    assert_eq!((code, location.as_str()), (301, clean), "{at} {path}: {body}");
                    let (code, _, body) = ask(trusted, name, clean, h2);
                    if clean.starts_with("/pub/") {
                        assert_eq!(code, 200, "{at} {clean}: {body}");
                        assert_eq!(echoed(&body)["path"], upstream(strip, base, clean), "{at}");
                    } else {
                        assert_eq!(code, 404, "{at} {clean} is outside the prefix: {body}");
                    }
                }
                // Encoded separators: refused on Funnel; on the tailnet forwarded as written.
                for path in ["/pub/..%2Fsecret/s.txt", "/pub/%2F../secret/s.txt"] {
                    let (code, _, body) = ask(trusted, name, path, h2);
                    if trusted {
                        assert_eq!(code, 400, "{at} {path}: {body}");
                    } else {
                        assert_eq!(code, 200, "{at} {path}: {body}");
                        assert_eq!(echoed(&body)["path"], upstream(strip, base, path), "{at}");
                    }
                }
            }
        }
    }
}

/// F3 on the HTTPS listener, and the auth bypass: a peer inside `tailnet_ranges`, identified
/// by whois, gets the identity headers and skips forward auth (`authBypassForTailnet`) as on
/// the trusted sockets; the same peer outside the ranges (the defaults: loopback is outside)
/// is sent to the auth service. Loopback stands in for the tailnet.
#[test]
fn tcp_tailnet_peers_get_identity_and_the_auth_bypass_over_https() {
    let up = echo_upstream();
    let auth = auth_server();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tailscaled.sock");
    fake_whois(&sock);
    let a = json!({"listen": {"kind": "https", "port": 443},
                   "auth": {"url": format!("http://127.0.0.1:{auth}"), "path": "/a", "timeout_ms": 2000, "bypass_for_tailnet": true}});
    let table = json!([route("box/app", "app.tailnet.test", up, a)]);
    let inside = Proxy::start_with(&format!(
        "localapi_socket = \"{}\"\ntailnet_ranges = [\"127.0.0.0/8\"]",
        sock.display()
    ));
    assert_eq!(inside.put_routes(&table).0, 200);
    let ca = inside.path("state/dev-ca.crt");
    for h2 in [false, true] {
        let (code, _, body) = https_as(&inside, &ca, "app.tailnet.test", "app.tailnet.test", h2);
        assert_eq!(code, 200, "{body}");
        assert_eq!(echoed(&body)["headers"]["x-tailscale-user-loginname"], "alice@example.com");
    }
    let outside = Proxy::start_with(&format!("localapi_socket = \"{}\"", sock.display()));
    assert_eq!(outside.put_routes(&table).0, 200);
    let ca = outside.path("state/dev-ca.crt");
    let (code, _, body) = https_as(&outside, &ca, "app.tailnet.test", "app.tailnet.test", false);
    assert_eq!(code, 401, "{body}");
}

/// A counter from the proxy's metrics over its admin socket: the value of the series whose
/// line starts with `series` (`tailshift_accept_backoffs_total`, or with its labels).
fn admin_metric(admin: &std::path::Path, series: &str) -> u64 {
    let mut s = std::os::unix::net::UnixStream::connect(admin).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in the metrics:\n{text}"))
}

/// An upstream for the slow-client tests: `GET /bytes/N` answers N bytes (`x`), written as
/// fast as the proxy takes them; `POST` reads the body to its Content-Length and answers
/// `got N`; `GET /events/N/MS` sends N server-sent events MS milliseconds apart; anything else
/// is a short `ok`.
fn slow_clients_upstream() -> u16 {
    threaded_upstream(|s| {
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        while let Some((line, head)) = read_head(&mut r) {
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let ok = if line.starts_with("POST") {
                let len: usize =
                    head_value(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                let mut body = vec![0; len];
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                let got = format!("got {len}");
                write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{got}", got.len()).is_ok()
            } else if let Some(n) = path.strip_prefix("/bytes/") {
                let n: usize = n.parse().unwrap();
                let chunk = vec![b'x'; 64 * 1024];
                let mut ok = write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").is_ok();
                let mut left = n;
                while ok && left > 0 {
                    let k = left.min(chunk.len());
                    ok = w.write_all(&chunk[..k]).is_ok();
                    left -= k;
                }
                ok
            } else if let Some(spec) = path.strip_prefix("/events/") {
                let (n, ms) = spec.split_once('/').unwrap();
                let (n, ms): (usize, u64) = (n.parse().unwrap(), ms.parse().unwrap());
                let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
                for i in 0..n {
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                    let event = format!("data: {i}\n\n");
                    let _ = w.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes());
                }
                w.write_all(b"0\r\n\r\n").is_ok()
            } else {
                w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").is_ok()
            };
            if !ok || w.flush().is_err() {
                return;
            }
        }
    })
}

/// Issue 15's connection cap: at `max_connections` a new connection closes the one idle
/// longest (not the oldest, not the newcomer); when none is idle, the newcomer waits in the
/// kernel's queue until one is, and is then served.
#[test]
fn the_connection_cap_closes_the_connection_idle_longest_first() {
    let up = slow_clients_upstream();
    let p = Proxy::start_with("max_connections = 3\nheader_read_timeout_ms = 60000");
    let table = json!([route("box/app", "app.tailnet.test", up, json!({}))]);
    assert_eq!(p.put_routes(&table).0, 200);
    let pause = || std::thread::sleep(std::time::Duration::from_millis(400));
    // a, b, c are used in that order, then a again: b has been idle longest, a is the oldest.
    let mut a = KeepAlive::connect(&p.http);
    assert_eq!(a.get("app.tailnet.test", "/"), 200);
    pause();
    let mut b = KeepAlive::connect(&p.http);
    assert_eq!(b.get("app.tailnet.test", "/"), 200);
    pause();
    let mut c = KeepAlive::connect(&p.http);
    assert_eq!(c.get("app.tailnet.test", "/"), 200);
    pause();
    assert_eq!(a.get("app.tailnet.test", "/"), 200);
    pause();
    let mut d = KeepAlive::connect(&p.http);
    assert_eq!(d.get("app.tailnet.test", "/"), 200, "the fourth connection is served");
    // b was closed for d: its next read is the end of the stream.
    b.r.get_ref().set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    assert_eq!(b.r.read_to_end(&mut rest).unwrap_or(0), 0, "b was not closed");
    for (name, conn) in [("a", &mut a), ("c", &mut c), ("d", &mut d)] {
        assert_eq!(conn.get("app.tailnet.test", "/"), 200, "{name} was closed instead");
    }
    assert_eq!(
        admin_metric(
            &p.path("state/admin.sock"),
            "tailshift_connections_cut_total{reason=\"evicted_idle\"}"
        ),
        1
    );
    // Every slot busy (three event streams in flight): a fifth connection is not accepted
    // (and none closed) until a stream ends and frees its connection for it.
    for conn in [&mut a, &mut c, &mut d] {
        write!(conn.w, "GET /events/2/700 HTTP/1.1\r\nHost: app.tailnet.test\r\n\r\n").unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    let mut e = KeepAlive::connect(&p.http);
    e.r.get_ref().set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    assert_eq!(e.get("app.tailnet.test", "/"), 200, "the waiting connection is served");
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(900),
        "served after {waited:?}, while every slot was busy with a 1.4 s stream"
    );
    // The streams themselves were never cut.
    for conn in [&mut a, &mut c, &mut d] {
        let mut status = String::new();
        conn.r.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut seen = String::new();
        while !seen.ends_with("0\r\n\r\n") {
            let mut l = String::new();
            if conn.r.read_line(&mut l).unwrap_or(0) == 0 {
                break;
            }
            seen.push_str(&l);
        }
        assert!(seen.contains("data: 1"), "{seen}");
    }
}

/// Issue 15's body-read timeout: a request body that stops arriving is failed (connection
/// closed) after `body_read_timeout_ms` of silence, while an upload that keeps sending, more
/// slowly than that in total, passes whole.
#[test]
fn a_stalled_request_body_is_cut_but_a_slow_steady_upload_passes() {
    let up = slow_clients_upstream();
    let p = Proxy::start_with("body_read_timeout_ms = 1000");
    let table = json!([route("box/app", "app.tailnet.test", up, json!({}))]);
    assert_eq!(p.put_routes(&table).0, 200);
    // 1 KiB of a promised 100 KiB, then nothing.
    let mut stalled = std::net::TcpStream::connect(&p.http).unwrap();
    stalled.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    write!(
        stalled,
        "POST /up HTTP/1.1\r\nHost: app.tailnet.test\r\nContent-Length: 102400\r\n\r\n"
    )
    .unwrap();
    stalled.write_all(&[b'x'; 1024]).unwrap();
    let started = std::time::Instant::now();
    // Meanwhile an upload of 16 KiB, 1 KiB every 250 ms (4 s in all, none of its gaps 1 s).
    let steady = {
        let addr = p.http.clone();
        std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
            write!(s, "POST /up HTTP/1.1\r\nHost: app.tailnet.test\r\nContent-Length: 16384\r\nConnection: close\r\n\r\n").unwrap();
            for _ in 0..16 {
                std::thread::sleep(std::time::Duration::from_millis(250));
                s.write_all(&[b'y'; 1024]).unwrap();
            }
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
    };
    let mut answer = Vec::new();
    let _ = stalled.read_to_end(&mut answer);
    let waited = started.elapsed();
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert!(
        waited >= std::time::Duration::from_millis(900)
            && waited < std::time::Duration::from_secs(4),
        "the stalled body was cut after {waited:?}"
    );
    let out = steady.join().unwrap();
    assert!(out.starts_with("HTTP/1.1 200") && out.ends_with("got 16384"), "{out}");
    assert_eq!(
        admin_metric(
            &p.path("state/admin.sock"),
            "tailshift_connections_cut_total{reason=\"body_timeout\"}"
        ),
        1
    );
}

/// Issue 15's minimum rate for slow readers: a client that stops reading while the proxy has
/// bytes for it is cut off after the window; one that reads steadily, and server-sent events
/// with pauses longer than the window (nothing unsent between events), are not.
#[test]
fn a_stalled_reader_is_cut_while_server_sent_events_with_pauses_survive() {
    let up = slow_clients_upstream();
    // The head deadline short too: the tail of a response still going out is no idle time.
    let p = Proxy::start_with(
        "min_send_rate = 65536\nsend_rate_window_ms = 500\nheader_read_timeout_ms = 500",
    );
    let table = json!([route("box/app", "app.tailnet.test", up, json!({}))]);
    assert_eq!(p.put_routes(&table).0, 200);
    const BIG: usize = 32 << 20;
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(&p.http).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: app.tailnet.test\r\nConnection: close\r\n\r\n")
            .unwrap();
        s
    };
    let mut stalled = get(&format!("/bytes/{BIG}"));
    let sse = {
        let mut s = get("/events/3/1200");
        std::thread::spawn(move || {
            let mut seen = String::new();
            let _ = s.read_to_string(&mut seen);
            seen
        })
    };
    // 4 MiB taken at about 2 MiB/s, in 64 KiB reads.
    let steady = {
        let mut s = get(&format!("/bytes/{}", 4 << 20));
        std::thread::spawn(move || {
            let mut total = 0;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
            total
        })
    };
    // The stalled client takes nothing for 4 s, then reads what it can.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let mut got = Vec::new();
    let _ = stalled.read_to_end(&mut got);
    assert!(got.len() < BIG, "the stalled reader was never cut: {} bytes", got.len());
    let total = steady.join().unwrap();
    assert!(total > 4 << 20, "the steady reader got {total} bytes");
    let seen = sse.join().unwrap();
    for i in 0..3 {
        assert!(seen.contains(&format!("data: {i}\n\n")), "event {i} missing: {seen}");
    }
    assert!(seen.ends_with("0\r\n\r\n"), "the event stream was cut: {seen}");
    assert_eq!(
        admin_metric(
            &p.path("state/admin.sock"),
            "tailshift_connections_cut_total{reason=\"slow_reader\"}"
        ),
        1
    );
}

/// The slow-client limits are keys of the proxy's TOML that `--check-config` reads: accepted
/// when sound, refused with the file and the key named when not.
#[test]
fn slow_client_limits_are_checked_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let base = format!(
        "state_dir = \"{}/state\"\n[[listener]]\nkind = \"http\"\naddr = \"127.0.0.1:0\"\n",
        dir.path().display()
    );
    let check = |extra: &str| {
        let f = dir.path().join("proxy.toml");
        std::fs::write(&f, format!("{extra}\n{base}")).unwrap();
        let o = check_config(&f);
        (o.status.code(), String::from_utf8_lossy(&o.stderr).to_string())
    };
    let ok = "max_connections = 100\nbody_read_timeout_ms = 5000\nmin_send_rate = 4096\nsend_rate_window_ms = 10000";
    assert_eq!(check(ok).0, Some(0), "{}", check(ok).1);
    // Each rule can be turned off.
    assert_eq!(check("body_read_timeout_ms = 0\nmin_send_rate = 0").0, Some(0));
    for (bad, says) in [
        ("max_connections = 0", "max_connections"),
        ("min_send_rate = 1024\nsend_rate_window_ms = 10", "send_rate_window_ms"),
        ("body_read_timeout_ms = -1", "proxy.toml:1:"),
        ("min_send_rate = \"fast\"", "proxy.toml:1:"),
    ] {
        let (code, err) = check(bad);
        assert_eq!(code, Some(1), "{bad} was accepted");
        assert!(err.contains("proxy.toml") && err.contains(says), "{bad}: {err}");
    }
}

/// One HTTP/1.1 exchange of the slow-client upstream below: reads a request (head and
/// Content-Length body) and answers `GET /big` with [`SLOW_READ_BYTES`], anything else with
/// `ok`; keeps the connection for the next request.
async fn slow_clients_upstream_conn(s: tokio::net::TcpStream) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let (r, mut w) = s.into_split();
    let mut r = tokio::io::BufReader::new(r);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut buf = vec![0u8; 16 * 1024];
        while len > 0 {
            match r.read(&mut buf[..len.min(16 * 1024)]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => len -= n,
            }
        }
        let big = line.starts_with("GET /big ");
        let size = if big { SLOW_READ_BYTES } else { 2 };
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
        if w.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let ok = if big {
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = size;
            let mut ok = true;
            while ok && left > 0 {
                ok = w.write_all(&chunk[..left.min(chunk.len())]).await.is_ok();
                left = left.saturating_sub(chunk.len());
            }
            ok
        } else {
            w.write_all(b"ok").await.is_ok()
        };
        if !ok {
            return;
        }
    }
}

/// The response a slow reader asks for: more than hyper's write buffer (about 400 KiB) and the
/// sockets' buffers take, so the proxy holds its upstream connection too while the reader
/// dawdles.
const SLOW_READ_BYTES: usize = 1 << 20;

/// A slow-body client: a 1 MiB POST of which it sends 16 bytes every 3 s (longer than the
/// test's 2 s body timeout). Whether the proxy let go of it (an answer, such as a 502 when the
/// proxy could not dial, or the end of the connection) before `until`.
async fn slow_body_client(addr: std::net::SocketAddr, until: tokio::time::Instant) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let run = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(
            b"POST /upload HTTP/1.1\r\nHost: app.tailnet.test\r\nContent-Length: 1048576\r\n\r\n",
        )
        .await
        .ok()?;
        let mut buf = [0u8; 1024];
        loop {
            if s.write_all(&[b'x'; 16]).await.is_err() {
                return Some(());
            }
            tokio::select! {
                _ = s.read(&mut buf) => return Some(()),
                _ = tokio::time::sleep(std::time::Duration::from_secs(3)) => {}
            }
        }
    };
    matches!(tokio::time::timeout_at(until, run).await, Ok(Some(())))
}

/// A slow-read client: asks for [`SLOW_READ_BYTES`] with a 4 KiB receive buffer and reads
/// 512 bytes every 500 ms (1 KiB/s, below the test's 16 KiB/s minimum) until the end. (What
/// the proxy's socket held when the proxy closed it still trickles in at that pace: whether
/// the proxy let go is seen from its side.)
async fn slow_read_client(addr: std::net::SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(sock) = tokio::net::TcpSocket::new_v4() else { return };
    let _ = sock.set_recv_buffer_size(4096);
    let Ok(mut s) = sock.connect(addr).await else { return };
    if s.write_all(b"GET /big HTTP/1.1\r\nHost: app.tailnet.test\r\n\r\n").await.is_err() {
        return;
    }
    let mut buf = [0u8; 512];
    while s.read(&mut buf).await.unwrap_or(0) > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Kills a child process when dropped (a failed assertion must not leave it running).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How many descriptors a process has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Raises this process's soft open-file limit to at least `want` (within the hard limit).
fn raise_own_nofile(want: u64) -> bool {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return false;
        }
        if lim.rlim_cur < want && lim.rlim_max >= want {
            lim.rlim_cur = lim.rlim_max.min(want * 4);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return false;
            }
        }
    }
    lim.rlim_cur >= want
}

/// Issue 15's acceptance "Slow clients, in CI" (F2): the proxy started under
/// `prlimit --nofile=1024:1024` (the hard limit too, so raising the soft one cannot help), 600
/// slow-body clients (16 bytes of a 1 MiB body every 3 s) and 600 slow-read clients (a 1 MiB
/// response read at 1 KiB/s through a 4 KiB receive buffer) on loopback, each connecting once,
/// while a normal client opens a new connection for each request every 100 ms for 12 s: every
/// normal request is answered (200), the back-off counter shows the descriptor limit was
/// reached, and the proxy let go of every slow client (body timeout, minimum rate, or shed
/// early while requests waited for a descriptor) within the test. The limits are shortened
/// (2 s) so that it all fits in well under a minute.
#[test]
fn slow_clients_under_a_1024_descriptor_limit_do_not_stop_the_service() {
    let skip = |why: &str| {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{why}");
        eprintln!("SKIPPED: {why}");
    };
    let prlimit = Command::new("prlimit").arg("--version").output();
    if !prlimit.is_ok_and(|o| o.status.success()) {
        return skip("prlimit (util-linux) is not installed");
    }
    // This side holds the 1,200 slow sockets, the upstream's end of every proxied connection and
    // the normal client's.
    if !raise_own_nofile(4096) {
        return skip("the test process cannot have 4096 open files (hard limit too low)");
    }
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let upstream = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let up = upstream.local_addr().unwrap().port();
    rt.spawn(async move {
        loop {
            match upstream.accept().await {
                Ok((s, _)) => drop(tokio::spawn(slow_clients_upstream_conn(s))),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "state_dir = \"{}/state\"\naccess_log = false\nhealth_interval_s = 0\n\
         header_read_timeout_ms = 2000\nbody_read_timeout_ms = 2000\n\
         min_send_rate = 16384\nsend_rate_window_ms = 2000\n\
         [[listener]]\nkind = \"http\"\naddr = \"127.0.0.1:0\"\n",
        dir.path().display()
    );
    std::fs::write(dir.path().join("proxy.toml"), cfg).unwrap();
    let mut proxy = KillOnDrop(
        Command::new("prlimit")
            .args(["--nofile=1024:1024", "--"])
            .arg(env!("CARGO_BIN_EXE_migrate"))
            .args(["proxy", "--workers", "1", "--config"])
            .arg(dir.path().join("proxy.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let line = serving_line(&mut proxy.0);
    let http: std::net::SocketAddr = served_addr(&line, "http ").unwrap().parse().unwrap();
    let pid = proxy.0.id();
    let idle_fds = open_fds(pid);
    let admin = dir.path().join("state/admin.sock");
    let table = json!([route("box/app", "app.tailnet.test", up, json!({}))]);
    assert_eq!(put_raw(&admin, &table.to_string()), 200);
    let started = std::time::Instant::now();
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let bodies: Vec<_> = (0..600).map(|_| rt.spawn(slow_body_client(http, until))).collect();
    for _ in 0..600 {
        rt.spawn(slow_read_client(http));
    }
    // The normal client: a new connection for each request, one every 100 ms for 12 s.
    let mut normal = Vec::new();
    let mut most_fds = 0;
    while started.elapsed() < std::time::Duration::from_secs(12) {
        normal.push(std::thread::spawn(move || {
            let t = std::time::Instant::now();
            let status = (|| {
                let mut s =
                    std::net::TcpStream::connect_timeout(&http, std::time::Duration::from_secs(30))
                        .ok()?;
                s.set_read_timeout(Some(std::time::Duration::from_secs(30))).ok()?;
                s.write_all(
                    b"GET /small HTTP/1.1\r\nHost: app.tailnet.test\r\nConnection: close\r\n\r\n",
                )
                .ok()?;
                let mut out = String::new();
                s.read_to_string(&mut out).ok()?;
                Some(out.split_whitespace().nth(1)?.to_string())
            })();
            (status, t.elapsed())
        }));
        most_fds = most_fds.max(open_fds(pid));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut answers: Vec<(Option<String>, std::time::Duration)> =
        normal.into_iter().map(|h| h.join().unwrap()).collect();
    let bodies_let_go = rt.block_on(async {
        let mut n = 0;
        for t in bodies {
            n += usize::from(t.await.unwrap_or(false));
        }
        n
    });
    // The proxy holds nothing of the attack any more (the slow readers may still be reading
    // what its closed sockets held), beyond the upstream connections its pool keeps idle (32
    // at most).
    let kept = idle_fds + 32 + 8;
    while open_fds(pid) > kept && started.elapsed() < std::time::Duration::from_secs(40) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let left_fds = open_fds(pid);
    let backoffs = admin_metric(&admin, "tailshift_accept_backoffs_total");
    let cut = |reason: &str| {
        admin_metric(&admin, &format!("tailshift_connections_cut_total{{reason=\"{reason}\"}}"))
    };
    let (body_cuts, rate_cuts, head_cuts, evicted, shed) = (
        cut("body_timeout"),
        cut("slow_reader"),
        cut("head_timeout"),
        cut("evicted_idle"),
        cut("shed_stalled"),
    );
    answers.sort_by_key(|(_, d)| *d);
    let at = |q: f64| answers[((answers.len() - 1) as f64 * q) as usize].1;
    eprintln!(
        "{} normal requests: p50 {:?}, p99 {:?}, max {:?}; {bodies_let_go} of 600 slow bodies let go; proxy descriptors {idle_fds} idle, {most_fds} at most, {left_fds} after; {backoffs} accept back-offs; cut: {body_cuts} body_timeout, {rate_cuts} slow_reader, {head_cuts} head_timeout, {evicted} evicted_idle, {shed} shed_stalled; {:?} in all",
        answers.len(),
        at(0.5),
        at(0.99),
        at(1.0),
        started.elapsed()
    );
    let failed: Vec<_> = answers.iter().filter(|(s, _)| s.as_deref() != Some("200")).collect();
    assert!(failed.is_empty(), "normal requests not answered 200: {failed:?}");
    assert!(backoffs > 0, "the descriptor limit was never reached");
    assert_eq!(bodies_let_go, 600, "slow bodies still held");
    assert!(left_fds <= kept, "the proxy still holds {left_fds} descriptors ({idle_fds} idle)");
    assert!(
        body_cuts + shed > 0 && rate_cuts + shed > 0,
        "{body_cuts} body, {rate_cuts} rate cuts, {shed} shed"
    );
    // The slow readers still trickling in are dropped with the runtime.
    drop(rt);
}

/// The independent attacker pass: `..;` (a dot-segment with a path parameter, which servlet
/// containers resolve after cutting `;...`) is refused on Funnel, also left over by a stripped
/// prefix; and a Funnel marker of any value or count makes a request a Funnel one (deny on
/// doubt), over HTTP/1.1 and HTTP/2.
#[test]
fn funnel_refuses_parameter_dot_segments_and_any_funnel_marker_counts() {
    let up = echo_upstream();
    let p = Proxy::start();
    let table = json!([
        route(
            "box/share",
            "share.tailnet.test",
            up,
            json!({"funnel": true, "prefixes": ["funnel:/pub/", "tailnet:/"], "strip_prefix": false})
        ),
        route(
            "box/unslashed",
            "unslashed.tailnet.test",
            up,
            json!({"funnel": true, "prefixes": ["funnel:/pub"], "strip_prefix": true,
                   "upstream": {"url": format!("http://127.0.0.1:{up}/base")}})
        ),
        route("box/private", "private.tailnet.test", up, json!({})),
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    let funnel = ["Tailscale-Funnel-Request: ?1"];
    for h2 in [false, true] {
        for (name, path) in [
            ("share.tailnet.test", "/pub/..;/secret"),
            ("share.tailnet.test", "/pub/%2e%2e;x/secret"),
            ("share.tailnet.test", "/pub/..%3B/secret"),
            ("unslashed.tailnet.test", "/pub..;/secret"),
        ] {
            let (code, _, body) = raw_get(&p, true, name, path, &funnel, h2);
            assert_eq!(code, 400, "{name}{path} (h2 {h2}): {body}");
        }
        // An ordinary parameter is the app's business.
        let (code, _, body) =
            raw_get(&p, true, "share.tailnet.test", "/pub/a;jsessionid=1", &funnel, h2);
        assert_eq!(code, 200, "{body}");
        for marker in [
            vec!["Tailscale-Funnel-Request: ?0", "Tailscale-Funnel-Request: ?1"],
            vec!["Tailscale-Funnel-Request: ?1, ?0"],
            vec!["Tailscale-Funnel-Request: 1"],
        ] {
            let (code, _, body) = raw_get(&p, true, "private.tailnet.test", "/x", &marker, h2);
            assert_eq!(code, 403, "{marker:?} (h2 {h2}): {body}");
        }
    }
}

/// Issue 15, second pass: a route that would smuggle requests (a framing or hop-by-hop header
/// in `upstream_headers`), set identity, inject into `/metrics` (a service id with a line
/// feed), mount where no clean path goes, widen Funnel (an empty `funnel:` prefix), dial a URL
/// with credentials, or redirect a browser off the site is refused at `PUT /routes`, naming the
/// route and the field; the old table stays, and `--check-config` refuses the same table in
/// `routes.json`.
#[test]
fn routes_that_smuggle_inject_or_escape_are_refused() {
    let up = echo_upstream();
    let p = Proxy::start();
    let good = json!([route("box/a", "a.tailnet.test", up, json!({}))]);
    assert_eq!(p.put_routes(&good).0, 200);
    let headers = |k: &str| json!({"upstream_headers": {k: "0"}});
    let cases: Vec<(&str, Value, &str)> = vec![
        ("box/h", headers("Content-Length"), "upstream_headers"),
        ("box/h", headers("Transfer-Encoding"), "upstream_headers"),
        ("box/h", headers("Connection"), "upstream_headers"),
        ("box/h", headers("Keep-Alive"), "upstream_headers"),
        ("box/h", headers("Proxy-Connection"), "upstream_headers"),
        ("box/h", headers("TE"), "upstream_headers"),
        ("box/h", headers("Trailer"), "upstream_headers"),
        ("box/h", headers("Upgrade"), "upstream_headers"),
        ("box/h", headers("Host"), "upstream_headers"),
        ("box/h", headers("X-Tailscale-User-LoginName"), "upstream_headers"),
        ("box/h", headers("Tailscale-User-Login"), "upstream_headers"),
        ("box/a\ninjected_total 1", json!({}), "service"),
        ("", json!({}), "service"),
        ("../../x", json!({}), "service"),
        ("box/m", json!({"hosts": [{"name": "m.tailnet.test", "mount": "/a/../b"}]}), "mount"),
        ("box/m", json!({"hosts": [{"name": "m.tailnet.test", "mount": "/a/."}]}), "mount"),
        ("box/m", json!({"hosts": [{"name": "m.tailnet.test", "mount": "/a//b"}]}), "mount"),
        ("box/m", json!({"hosts": [{"name": "m.tailnet.test", "mount": "/a?b"}]}), "mount"),
        ("box/m", json!({"hosts": [{"name": "m.tailnet.test", "mount": "/a#b"}]}), "mount"),
        ("box/m", json!({"hosts": [{"name": "m.tailnet.test", "mount": "/a;b"}]}), "mount"),
        ("box/m", json!({"hosts": [{"name": "m.tailnet.test", "mount": "/a\r\nb"}]}), "mount"),
        ("box/m", json!({"hosts": [{"name": "m.tailnet.test", "mount": "a"}]}), "mount"),
        ("box/n", json!({"hosts": [{"name": "127.0.0.1", "mount": "/"}]}), "hosts.name"),
        ("box/p", json!({"funnel": true, "prefixes": ["funnel:"]}), "prefixes"),
        ("box/p", json!({"prefixes": ["public:/x"]}), "prefixes"),
        ("box/u", json!({"upstream": {"url": format!("http://u:p@127.0.0.1:{up}")}}), "url"),
        ("box/u", json!({"upstream": {"url": format!("http://127.0.0.1:{up}/#f")}}), "url"),
        ("box/u", json!({"upstream": {"url": "http://127.0.0.1:0/"}}), "url"),
        ("box/r", json!({"redirect_to": "javascript:alert(1)"}), "redirect_to"),
        ("box/r", json!({"redirect_to": "data:text/html,x"}), "redirect_to"),
        ("box/r", json!({"redirect_to": "//evil.example"}), "redirect_to"),
        ("box/r", json!({"redirect_to": "/\\evil.example"}), "redirect_to"),
    ];
    for (service, extra, field) in &cases {
        let bad = json!([
            route("box/a", "a.tailnet.test", up, json!({})),
            route(service, "z.tailnet.test", up, extra.clone())
        ]);
        let (code, body) = p.put_routes(&bad);
        assert_eq!(code, 400, "{service:?} {extra}: {body}");
        let error =
            serde_json::from_str::<Value>(&body).unwrap()["error"].as_str().unwrap().to_string();
        assert!(error.contains(field), "{service:?} {extra}: {error}");
        if !service.is_empty() && !service.contains('\n') {
            assert!(error.starts_with(&format!("{service}: ")), "{error}");
        }
    }
    // What stays legal: `funnel:/`, a path or https redirect, tsnsrv's X-Forwarded-Proto.
    let fine = json!([
        route("box/a", "a.tailnet.test", up, json!({})),
        route(
            "box/f",
            "f.tailnet.test",
            up,
            json!({"funnel": true, "prefixes": ["funnel:/"],
               "upstream_headers": {"X-Forwarded-Proto": "https"}})
        ),
        route("box/r", "r.tailnet.test", up, json!({"redirect_to": "https://node.tailnet.test/r"})),
        route("box/s", "s.tailnet.test", up, json!({"redirect_to": "/elsewhere"})),
    ]);
    assert_eq!(p.put_routes(&fine).0, 200);
    // The metrics stay one sample a line.
    let metrics = Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(p.path("state/admin.sock"))
        .arg("http://admin/metrics")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(!text.contains("injected"), "{text}");
    // The same refusal from --check-config, on a routes.json written by hand.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let smuggling = json!([route("box/h", "h.tailnet.test", up, headers("Content-Length"))]);
    std::fs::write(state.join("routes.json"), smuggling.to_string()).unwrap();
    let cfg = dir.path().join("proxy.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\n[[listener]]\nkind = \"http\"\naddr = \"127.0.0.1:0\"\n",
            state.display()
        ),
    )
    .unwrap();
    let out = check_config(&cfg);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("box/h") && err.contains("upstream_headers"),
        "{err}"
    );
}

/// Issue 15, second pass: on Funnel, path forms some upstreams decode or normalise into a
/// traversal (control bytes, overlong UTF-8, dot and slash look-alikes, dot runs and trailing
/// spaces) are refused with 400, over HTTP/1.1 and HTTP/2, with and without a stripped
/// prefix; ordinary UTF-8 names pass.
#[test]
fn funnel_refuses_control_bytes_overlong_utf8_and_look_alikes() {
    let up = echo_upstream();
    let p = Proxy::start();
    let table = json!([
        route(
            "box/share",
            "share.tailnet.test",
            up,
            json!({"funnel": true, "prefixes": ["funnel:/pub/", "tailnet:/"], "strip_prefix": false})
        ),
        route(
            "box/unslashed",
            "unslashed.tailnet.test",
            up,
            json!({"funnel": true, "prefixes": ["funnel:/pub", "tailnet:/"], "strip_prefix": true,
                   "upstream": {"url": format!("http://127.0.0.1:{up}/base")}})
        ),
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    let funnel = ["Tailscale-Funnel-Request: ?1"];
    for h2 in [false, true] {
        for path in [
            "/pub/..%00/secret",
            "/pub/..%0d%0a/secret",
            "/pub/%c0%ae%c0%ae/secret",
            "/pub/%ef%bc%8e%ef%bc%8e/secret",
            "/pub/%e2%80%a4%e2%80%a4/secret",
            "/pub/%ef%b9%92%ef%b9%92/secret",
            "/pub/%ef%bd%a1%ef%bd%a1/secret",
            "/pub/%e3%80%82%e3%80%82/secret",
            "/pub/..%ef%bc%8fsecret",
            "/pub/..%ef%bc%bcsecret",
            "/pub/..%e2%88%95secret",
            "/pub/..%e2%81%84secret",
            "/pub/..%ef%b9%a8secret",
            "/pub/..%e2%a7%b5secret",
            "/pub/..%20/secret",
            "/pub/.../secret",
        ] {
            let (code, _, body) = raw_get(&p, true, "share.tailnet.test", path, &funnel, h2);
            assert_eq!(code, 400, "{path} (h2 {h2}): {body}");
            // The same path on the tailnet is the app's business (forwarded).
            let (code, _, _) = raw_get(&p, true, "share.tailnet.test", path, &[], h2);
            assert_ne!(code, 400, "{path} on the tailnet (h2 {h2})");
        }
        // What is left once `/pub` is cut is a dot run: `/base/...` would leave the base.
        for path in ["/pub...", "/pub.%20/x", "/pub%ef%bc%8e./x"] {
            let (code, _, body) = raw_get(&p, true, "unslashed.tailnet.test", path, &funnel, h2);
            assert_eq!(code, 400, "{path} (h2 {h2}): {body}");
        }
        let (code, _, body) =
            raw_get(&p, true, "share.tailnet.test", "/pub/caf%C3%A9.jpg", &funnel, h2);
        assert_eq!(code, 200, "{body}");
        let echoed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(echoed["path"], "/pub/caf%C3%A9.jpg");
    }
}

/// Issue 15, second pass: a request transfer coding other than exactly `chunked` is answered
/// 501 (RFC 9112 6.1; `gzip, chunked` forwarded as chunked would lose its gzip), and a
/// malformed chunked body is the client's fault, 400, while a failing upstream stays 502.
#[test]
fn request_framing_is_the_clients_to_get_right() {
    let up = echo_upstream();
    let dead = dead_port();
    let p = Proxy::start();
    let table = json!([
        route("box/a", "a.tailnet.test", up, json!({})),
        route("box/down", "down.tailnet.test", dead, json!({})),
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    for te in ["gzip, chunked", "deflate,chunked", "chunked, chunked"] {
        let req = format!(
            "POST / HTTP/1.1\r\nHost: a.tailnet.test\r\nTransfer-Encoding: {te}\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        );
        assert!(raw_status(&p, &req).contains(" 501"), "{te}");
    }
    let two = "POST / HTTP/1.1\r\nHost: a.tailnet.test\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert!(raw_status(&p, two).contains(" 501"));
    let chunked = "POST / HTTP/1.1\r\nHost: a.tailnet.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    assert!(raw_status(&p, chunked).contains(" 200"));
    for bad in ["zz\r\nabc\r\n0\r\n\r\n", "3\r\nabcXY\r\n0\r\n\r\n", "-1\r\nx\r\n"] {
        let req = format!(
            "POST / HTTP/1.1\r\nHost: a.tailnet.test\r\nTransfer-Encoding: chunked\r\n\r\n{bad}"
        );
        assert!(raw_status(&p, &req).contains(" 400"), "{bad:?}");
        // Toward an upstream that is down, the dial fails before the body is read: 502.
        let req = format!(
            "POST / HTTP/1.1\r\nHost: down.tailnet.test\r\nTransfer-Encoding: chunked\r\n\r\n{bad}"
        );
        assert!(raw_status(&p, &req).contains(" 502"), "{bad:?} to a dead upstream");
    }
}

/// The head of a raw HTTP/1.1 exchange on the plain listener (status line and headers).
fn raw_head(p: &Proxy, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(&p.http).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut text = Vec::new();
    let _ = s.read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text).to_string();
    text.split_once("\r\n\r\n").map_or(text.clone(), |(h, _)| h.to_string())
}

/// Issue 15, second pass: no redirect leads a browser to another host (a raw `\` in a path
/// goes `%5C` in `Location`: `/\evil` is `//evil` to browsers), and userinfo in the request
/// target (absolute form, or HTTP/2 `:authority`) is refused with 400.
#[test]
fn redirects_stay_on_the_site_and_targets_carry_no_userinfo() {
    let up = echo_upstream();
    let p = Proxy::start();
    let table = json!([
        route("box/a", "a.tailnet.test", up, json!({})),
        route("box/r", "r.tailnet.test", up, json!({"redirect_to": "/"})),
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    for (host, target, location) in [
        ("a.tailnet.test", "/\\evil.example/x/..", "/%5Cevil.example"),
        ("a.tailnet.test", "//\\evil.example/", "/%5Cevil.example/"),
        ("r.tailnet.test", "/\\evil.example", "/%5Cevil.example"),
        ("r.tailnet.test", "/\\/evil.example", "/%5C/evil.example"),
    ] {
        let head = raw_head(
            &p,
            &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        let got = head
            .lines()
            .find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: ")))
            .unwrap_or_else(|| panic!("{target}: {head}"));
        assert_eq!(got, location, "{host}{target}");
        assert!(!got.starts_with("//") && !got.starts_with("/\\"), "{got}");
    }
    let userinfo = "GET http://user:pw@a.tailnet.test/x HTTP/1.1\r\nHost: a.tailnet.test\r\nConnection: close\r\n\r\n";
    assert!(raw_status(&p, userinfo).contains(" 400"), "{}", raw_head(&p, userinfo));
    assert_eq!(h2c_status(&p.http, "http://user@a.tailnet.test/", &[]), 400);
    assert_eq!(h2c_status(&p.http, "http://a.tailnet.test/", &[]), 200);
}

/// Issue 15, second pass: the metrics listener and the admin socket are capped (16 connections
/// each: at the cap, the connection idle longest is closed for a new one, as on the proxied
/// listeners) and the admin socket has the header deadline too, so idle sockets hold neither.
#[test]
fn the_metrics_listener_and_the_admin_socket_are_capped() {
    let metrics = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let p =
        Proxy::start_with(&format!("header_read_timeout_ms = 5000\nmetrics_addr = \"{metrics}\""));
    let mut idle: Vec<std::net::TcpStream> =
        (0..40).map(|_| std::net::TcpStream::connect(metrics).unwrap()).collect();
    let admin = p.path("state/admin.sock");
    let mut admin_idle: Vec<std::os::unix::net::UnixStream> =
        (0..40).map(|_| std::os::unix::net::UnixStream::connect(&admin).unwrap()).collect();
    // New clients are still served: each takes the slot of one idle longest.
    let scrape = Command::new("curl")
        .args(["-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{metrics}/metrics"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&scrape.stdout), "200");
    let health = Command::new("curl")
        .args(["-s", "-m", "10", "--unix-socket"])
        .arg(&admin)
        .arg("http://admin/healthz")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&health.stdout).contains("ok"));
    // Before the head deadline (5 s), the listener holds 16 at most: the rest were closed.
    for s in &idle {
        s.set_nonblocking(true).unwrap();
    }
    for s in &admin_idle {
        s.set_nonblocking(true).unwrap();
    }
    let cut = idle.iter_mut().map(closed_by_peer).filter(|c| *c).count();
    assert!((25..=40).contains(&cut), "{cut} of 40 idle metrics connections closed");
    let admin_cut = admin_idle.iter_mut().map(closed_by_peer).filter(|c| *c).count();
    assert!((25..=40).contains(&admin_cut), "{admin_cut} of 40 idle admin connections closed");
    // And the admin socket cuts off a client that never completes its head.
    let mut slow = std::os::unix::net::UnixStream::connect(&admin).unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n").unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let held = started.elapsed();
    assert!(held < std::time::Duration::from_secs(9), "held for {held:?}");
}

/// Whether a non-blocking socket was closed by its peer (it has nothing else to read).
fn closed_by_peer<S: Read>(s: &mut S) -> bool {
    let mut b = [0u8; 1];
    !matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// docs/proxy.md's route table example is a table the proxy takes (with a `services` listener
/// and the LocalAPI, for the tag rule), route for route; and the `listen` kind a user guessed,
/// `services`, is refused naming the two there are.
#[test]
fn the_route_table_example_of_the_docs_is_accepted() {
    let doc = std::fs::read_to_string(crate::util::root().join("docs/proxy.md")).unwrap();
    let section = doc.split("### The route table's JSON").nth(1).expect("the section");
    let block = section.split("```json\n").nth(1).unwrap().split("```").next().unwrap();
    let table: Value = serde_json::from_str(block).expect("the example is JSON");
    let kinds: Vec<&str> =
        table.as_array().unwrap().iter().map(|r| r["listen"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["https", "plaintext", "https"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("state")).unwrap();
    std::fs::write(d.join("state/routes.json"), block).unwrap();
    let config = d.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{0}/state\"\nlocalapi_socket = \"{0}/ts.sock\"\n[[listener]]\nkind = \"services\"\ndir = \"{0}/svc\"\n[[listener]]\nkind = \"https\"\naddr = \"127.0.0.1:0\"\n[[listener]]\nkind = \"http\"\naddr = \"127.0.0.1:0\"\n",
            d.display()
        ),
    )
    .unwrap();
    let o = check_config(&config);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("3 routes"), "{}", stdout(&o));
    let mut guessed = table.clone();
    guessed[0]["listen"] = json!({"kind": "services"});
    std::fs::write(d.join("state/routes.json"), guessed.to_string()).unwrap();
    let o = check_config(&config);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("expected `https` or `plaintext`"), "{}", stderr(&o));
}

/// `PUT /routes` with curl on the admin socket of the proxy whose state directory is
/// `<dir>/state` (the table written to `<dir>/routes-in.json` first): the status and body.
pub fn put_routes_in(dir: &std::path::Path, routes: &Value) -> (u16, String) {
    let f = dir.join("routes-in.json");
    std::fs::write(&f, routes.to_string()).unwrap();
    let o = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-X", "PUT", "--unix-socket"])
        .arg(dir.join("state/admin.sock"))
        .arg("--data-binary")
        .arg(format!("@{}", f.display()))
        .arg("http://admin/routes")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

/// A raw HTTP/1.1 request on the trusted socket (bytes as given: raw UTF-8 in the target); the
/// status.
fn trusted_raw_status(p: &Proxy, target: &[u8], host: &str, extra: &str) -> u16 {
    let mut s = std::os::unix::net::UnixStream::connect(p.path("node.sock")).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 100.64.0.7\r\nX-Forwarded-Host: {host}\r\n{extra}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    s.write_all(&req).unwrap();
    let mut text = Vec::new();
    let _ = s.read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text);
    text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// The attacker pass, items 1 and 2: on Funnel, a segment that NFKC makes a dot run (U+FE30
/// is `..`, U+FE19 `...`; NBSP, U+2000 to U+200A, U+202F, U+205F, U+3000 are spaces), raw or
/// encoded, and a dot-segment before a decoded `?` or `#` (`..%3F`: `..` to an upstream that
/// decodes before it splits off the query) are refused with 400 over HTTP/1.1 and HTTP/2;
/// ordinary UTF-8 names pass, and the tailnet is not held to these.
#[test]
fn funnel_refuses_nfkc_dot_runs_and_dot_segments_before_a_query() {
    let up = echo_upstream();
    let p = Proxy::start();
    let table = json!([route(
        "box/share",
        "share.tailnet.test",
        up,
        json!({"funnel": true, "prefixes": ["funnel:/pub/", "tailnet:/"], "strip_prefix": false})
    )]);
    assert_eq!(p.put_routes(&table).0, 200);
    let funnel = ["Tailscale-Funnel-Request: ?1"];
    let encoded = [
        "/pub/%EF%B8%B0/%EF%B8%B0/etc/passwd",
        "/pub/%EF%B8%99/secret",
        "/pub/..%C2%A0/secret",
        "/pub/..%E2%80%80/secret",
        "/pub/..%E2%80%8A/secret",
        "/pub/..%E2%80%AF/secret",
        "/pub/..%E2%81%9F/secret",
        "/pub/..%E3%80%80/secret",
        "/pub/..%3F/secret",
        "/pub/..%23/x",
        "/pub/%2e%2e%3fx",
        "/pub/..%20%3F",
    ];
    for h2 in [false, true] {
        for path in encoded {
            let (code, _, body) = raw_get(&p, true, "share.tailnet.test", path, &funnel, h2);
            assert_eq!(code, 400, "{path} (h2 {h2}): {body}");
            let (code, _, _) = raw_get(&p, true, "share.tailnet.test", path, &[], h2);
            assert_ne!(code, 400, "{path} on the tailnet (h2 {h2})");
        }
        let (code, _, body) =
            raw_get(&p, true, "share.tailnet.test", "/pub/caf%C3%A9.jpg", &funnel, h2);
        assert_eq!(code, 200, "{body}");
    }
    // Raw UTF-8 in the request target (HTTP/1.1).
    for raw in ["/pub/\u{FE30}/\u{FE30}/etc/passwd", "/pub/..\u{A0}/secret", "/pub/\u{FE19}/x"] {
        let funnel = "Tailscale-Funnel-Request: ?1\r\n";
        let code = trusted_raw_status(&p, raw.as_bytes(), "share.tailnet.test", funnel);
        assert_eq!(code, 400, "{raw:?}");
    }
    let code = trusted_raw_status(
        &p,
        "/pub/caf\u{E9}.jpg".as_bytes(),
        "share.tailnet.test",
        "Tailscale-Funnel-Request: ?1\r\n",
    );
    assert_eq!(code, 200);
}

/// The body of an HTTP/2 (h2c) GET with these fields (repeated names as separate fields).
fn h2c_body(addr: &str, uri: &str, headers: &[(&str, &str)]) -> String {
    h2c_get(addr, uri, headers, true).1
}

/// The attacker pass, items 3 to 6: underscore spellings of the framing, hop-by-hop and Host
/// fields never reach the upstream (CGI and WSGI read them as the real ones); on Funnel,
/// `X-Original-URL` and `X-Rewrite-URL` are dropped (Symfony and IIS route by them); a
/// client's `X-Forwarded-Port` is always dropped; HTTP/2 `cookie` fields go out as one
/// `Cookie` joined with `; `.
#[test]
fn header_spellings_url_overrides_forwarded_port_and_http2_cookies() {
    let up = echo_upstream();
    let p = Proxy::start();
    let table = json!([
        route(
            "box/share",
            "share.tailnet.test",
            up,
            json!({"funnel": true, "prefixes": ["funnel:/", "tailnet:/"], "proxy_headers": false})
        ),
        route("box/a", "a.tailnet.test", up, json!({})),
    ]);
    assert_eq!(p.put_routes(&table).0, 200);
    let underscores = [
        "Transfer_Encoding: chunked",
        "Content_Length: 5",
        "Keep_Alive: timeout=5",
        "Proxy_Connection: keep-alive",
        "X_Forwarded_Port: 1",
        "X_Custom: kept",
    ];
    let overrides = ["X-Original-URL: /admin", "X-Rewrite-URL: /admin", "X_Original_URL: /admin"];
    for h2 in [false, true] {
        let mut extra: Vec<&str> = underscores.to_vec();
        extra.extend(overrides);
        extra.push("X-Forwarded-Port: 8443");
        extra.push("Tailscale-Funnel-Request: ?1");
        let (code, _, body) = raw_get(&p, true, "share.tailnet.test", "/x", &extra, h2);
        assert_eq!(code, 200, "{body}");
        let h = echoed(&body)["headers"].clone();
        for gone in [
            "transfer_encoding",
            "content_length",
            "keep_alive",
            "proxy_connection",
            "x_forwarded_port",
            "x-original-url",
            "x-rewrite-url",
            "x_original_url",
            "x-forwarded-port",
        ] {
            assert!(h.get(gone).is_none(), "{gone} reached the upstream (h2 {h2}): {h}");
        }
        assert_eq!(h["x_custom"], "kept", "{h}");
        // On the tailnet the URL overrides are the app's business; the client's port is not.
        let extra = ["X-Original-URL: /admin", "X-Forwarded-Port: 8443"];
        let (code, _, body) = raw_get(&p, true, "share.tailnet.test", "/x", &extra, h2);
        assert_eq!(code, 200, "{body}");
        let h = echoed(&body)["headers"].clone();
        assert_eq!(h["x-original-url"], "/admin", "{h}");
        assert!(h.get("x-forwarded-port").is_none(), "{h}");
    }
    // With proxy_headers the port is the one of the name asked, never the client's.
    let (_, _, body) = p.get("a.tailnet.test:8080", "/", &["X-Forwarded-Port: 1"]);
    assert_eq!(echoed(&body)["headers"]["x-forwarded-port"], "8080", "{body}");
    let (_, _, body) = p.get("a.tailnet.test", "/", &["X-Forwarded-Port: 1"]);
    assert!(echoed(&body)["headers"].get("x-forwarded-port").is_none(), "{body}");
    // HTTP/2 cookies: one line toward the HTTP/1.1 upstream.
    let body = h2c_body(
        &p.http,
        "http://a.tailnet.test/",
        &[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")],
    );
    assert_eq!(echoed(&body)["headers"]["cookie"], "a=1; b=2; c=3", "{body}");
    let body = h2c_body(&p.http, "http://a.tailnet.test/", &[("cookie", "a=1")]);
    assert_eq!(echoed(&body)["headers"]["cookie"], "a=1", "{body}");
}

/// The attacker pass, item 7: a fixed upstream address with a line feed, mounts with `%00`, a
/// bare `%`, look-alike dots or a C1 control, a `redirect_to` or header value with a C1
/// control, a route with no name, and prefixes no clean path can match (`funnel:/..`,
/// `funnel://evil`, `funnel:/pub\`, `funnel:/pub/%2e%2e/`) are refused at `PUT /routes`,
/// naming the route and the field; the old table stays.
#[test]
fn routes_with_controls_look_alikes_or_unmatchable_prefixes_are_refused() {
    let up = echo_upstream();
    let p = Proxy::start();
    let good = json!([
        route("box/a", "a.tailnet.test", up, json!({})),
        route("box/z", "z.tailnet.test", up, json!({}))
    ]);
    assert_eq!(p.put_routes(&good).0, 200);
    let mount = |m: &str| json!({"hosts": [{"name": "z.tailnet.test", "mount": m}]});
    let prefix = |x: &str| json!({"funnel": true, "prefixes": [x]});
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"upstream": {"url": "http://app.internal/", "tcp_addr": format!("127.0.0.1:{up}\r\nX: y")}}),
            "upstream.tcp_addr",
        ),
        (mount("/a%00"), "hosts.mount"),
        (mount("/a%"), "hosts.mount"),
        (mount("/a%zz"), "hosts.mount"),
        (mount("/\u{FF0E}\u{FF0E}/b"), "hosts.mount"),
        (mount("/%EF%BC%8E%EF%BC%8E/b"), "hosts.mount"),
        (mount("/a\u{85}b"), "hosts.mount"),
        (json!({"redirect_to": "/a\u{85}b"}), "redirect_to"),
        (json!({"hosts": []}), "hosts"),
        (prefix("funnel:/.."), "prefixes"),
        (prefix("funnel://evil"), "prefixes"),
        (prefix("funnel:/pub\\"), "prefixes"),
        (prefix("funnel:/pub/%2e%2e/"), "prefixes"),
        (json!({"upstream_headers": {"X-A": "1\u{85}X-B: 2"}}), "upstream_headers.X-A"),
    ];
    for (extra, field) in &cases {
        let bad = json!([
            route("box/a", "a.tailnet.test", up, json!({})),
            route("box/z", "z.tailnet.test", up, extra.clone())
        ]);
        let (code, body) = p.put_routes(&bad);
        assert_eq!(code, 400, "{extra}: {body}");
        let error =
            serde_json::from_str::<Value>(&body).unwrap()["error"].as_str().unwrap().to_string();
        assert!(error.starts_with("box/z: ") && error.contains(field), "{extra}: {error}");
    }
    // The old table is still served.
    let (code, _, _) = p.get("z.tailnet.test", "/", &[]);
    assert_eq!(code, 200);
}

/// The attacker pass, item 8: under a flood of 200 idle sockets on the metrics listener and on
/// the admin socket (16 slots each), a scrape and an admin request are served within about a
/// second: on these side listeners the connection idle longest is closed for a new one at
/// once, even one that has not had its second to send a head (their clients send it at once).
#[test]
fn the_side_listeners_serve_within_a_second_under_an_idle_flood() {
    let metrics = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let p = Proxy::start_with(&format!("metrics_addr = \"{metrics}\""));
    let admin = p.path("state/admin.sock");
    let _flood: Vec<std::net::TcpStream> =
        (0..200).map(|_| std::net::TcpStream::connect(metrics).unwrap()).collect();
    let _admin_flood: Vec<std::os::unix::net::UnixStream> =
        (0..200).map(|_| std::os::unix::net::UnixStream::connect(&admin).unwrap()).collect();
    let started = std::time::Instant::now();
    let scrape = Command::new("curl")
        .args(["-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{metrics}/metrics"))
        .output()
        .unwrap();
    let scrape_took = started.elapsed();
    assert_eq!(String::from_utf8_lossy(&scrape.stdout), "200");
    let started = std::time::Instant::now();
    let health = Command::new("curl")
        .args(["-s", "-m", "20", "--unix-socket"])
        .arg(&admin)
        .arg("http://admin/healthz")
        .output()
        .unwrap();
    let health_took = started.elapsed();
    assert!(String::from_utf8_lossy(&health.stdout).contains("ok"));
    let limit = std::time::Duration::from_millis(1500);
    assert!(scrape_took < limit, "the scrape took {scrape_took:?}");
    assert!(health_took < limit, "the admin request took {health_took:?}");
}
