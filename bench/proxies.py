#!/usr/bin/env python3
"""Side by side on loopback: tailshift's proxy, nginx, HAProxy and direct access to the upstream.

The recipe is `reference/proxy.md` section 5: the proxy under test on CPU 0 with one worker, the
load generator (wrk) and the upstream (one nginx worker listening on N ports, a fixed 31-byte
body) on CPU 1; N host routes `s1.test .. sN.test`, route i -> 127.0.0.1:(10000+i); wrk's Lua
rotates Host over all N hosts on every request, so every route and every upstream pool is used.
Access logs, whois and health checks are off everywhere.

Measured per system, route count and run (all from /proc, summed over the process tree):
  - req/s and p50/p99 latency at saturation (wrk -t1 -c64, HTTP/1.1 keep-alive), plain and TLS;
  - CPU time per request (utime+stime ticks over the wrk window / requests);
  - PSS idle after start and after load (smaps_rollup);
  - idle CPU ticks and voluntary context switches over --idle seconds, after start and after
    load (first run only);
  - time from spawn to the first served request.
The proxies' order rotates from run to run (direct access stays first), so that in three runs
each takes each position once.

Usage: bench/proxies.py [--routes 57 500] [--runs 3] [--duration 10] [--idle 60]
                        [--binary target/release/migrate] [--json out.json]
Needs: wrk, nginx, haproxy, openssl, taskset (Debian: wrk nginx-light haproxy openssl
util-linux). Run as any user; it binds only 127.0.0.1.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BODY = "tailshift-bench-upstream-body!!"  # 31 bytes, as in the reference recipe
assert len(BODY) == 31
PROXY_HTTP = 18080
PROXY_TLS = 18443
UPSTREAM_BASE = 10000
CLK_TCK = os.sysconf("SC_CLK_TCK")

HOSTS_LUA = """
local n = tonumber(os.getenv("NHOSTS") or "57"); local i = 0
request = function() i = i % n + 1
  return wrk.format("GET", "/", {["Host"] = "s" .. i .. ".test"}) end
"""


def tree(pid):
    """pid and all its descendants."""
    out, todo = [], [pid]
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except OSError:
            pass
    return total


def voluntary_csw(pid):
    total = 0
    for p in tree(pid):
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches"):
                            total += int(line.split()[1])
        except OSError:
            pass
    return total


def pss_kb(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def get_ok(port, host="s1.test", tls=False):
    """One request; True on a 200."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
        if tls:
            import ssl

            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s, server_hostname=host)
        s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = s.recv(64)
        s.close()
        return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def wait_serving(port, proc, limit=30.0):
    """Seconds from now until the first 200 (polled every millisecond)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        if get_ok(port):
            return time.monotonic() - t0
        time.sleep(0.001)
    raise RuntimeError(f"nothing served on {port} within {limit} s")


def taskset(cpu, argv):
    return ["taskset", "-c", str(cpu)] + argv


def start(argv, cwd, env=None, log=None):
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w") if log else subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def nginx_conf(work, name, body):
    os.makedirs(f"{work}/{name}", exist_ok=True)
    return f"""
worker_processes 1;
daemon off;
pid {work}/{name}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {work}/{name}/body;
  proxy_temp_path {work}/{name}/proxy;
  fastcgi_temp_path {work}/{name}/fastcgi;
  uwsgi_temp_path {work}/{name}/uwsgi;
  scgi_temp_path {work}/{name}/scgi;
  keepalive_requests 1000000;
{body}
}}
"""


def upstream_conf(work, n):
    listens = "\n".join(f"    listen 127.0.0.1:{UPSTREAM_BASE + i} reuseport;" for i in range(1, n + 1))
    return nginx_conf(
        work,
        "upstream",
        f"""  server {{
{listens}
    location / {{ default_type text/plain; return 200 "{BODY}"; }}
  }}""",
    )


# Every proxy sends the upstream what tsnsrv's contract makes tailshift send (the Host asked
# for, X-Forwarded-For/Host/Proto, X-Scheme, X-Real-Ip, X-Forwarded-Server) and drops a
# client's X-Tailscale-User, so the three do the same work per request.
NGINX_FORWARDED = """      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Scheme $scheme;
      proxy_set_header X-Real-Ip $remote_addr;
      proxy_set_header X-Forwarded-Server $host;
      proxy_set_header X-Tailscale-User "";"""

HAPROXY_FORWARDED = """  http-request del-header X-Forwarded-For
  http-request del-header X-Tailscale-User
  http-request set-header X-Forwarded-For %[src]
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header X-Forwarded-Proto https if { ssl_fc }
  http-request set-header X-Forwarded-Proto http unless { ssl_fc }
  http-request set-header X-Scheme https if { ssl_fc }
  http-request set-header X-Scheme http unless { ssl_fc }
  http-request set-header X-Real-Ip %[src]
  http-request set-header X-Forwarded-Server %[req.hdr(host)]"""


def nginx_proxy_conf(work, n, cert, key):
    parts = ["  server_names_hash_max_size 4096;", "  server_names_hash_bucket_size 64;"]
    for i in range(1, n + 1):
        parts.append(f"  upstream u{i} {{ server 127.0.0.1:{UPSTREAM_BASE + i}; keepalive 32; }}")
        parts.append(
            f"""  server {{ listen 127.0.0.1:{PROXY_HTTP}; listen 127.0.0.1:{PROXY_TLS} ssl;
    server_name s{i}.test; ssl_certificate {cert}; ssl_certificate_key {key};
    location / {{ proxy_pass http://u{i}; proxy_http_version 1.1; proxy_set_header Connection "";
{NGINX_FORWARDED} }} }}"""
        )
    return nginx_conf(work, "nginx", "\n".join(parts))


def haproxy_conf(work, n, pem):
    with open(f"{work}/hosts.map", "w") as f:
        for i in range(1, n + 1):
            f.write(f"s{i}.test b{i}\n")
    backends = "\n".join(
        f"backend b{i}\n  server s 127.0.0.1:{UPSTREAM_BASE + i}" for i in range(1, n + 1)
    )
    return f"""
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:{PROXY_HTTP}
  bind 127.0.0.1:{PROXY_TLS} ssl crt {pem}
{HAPROXY_FORWARDED}
  use_backend %[req.hdr(host),lower,map({work}/hosts.map)]
{backends}
"""


def tailshift_setup(work, n, tls, cert_dir):
    state = f"{work}/tailshift-{'tls' if tls else 'http'}"
    shutil.rmtree(state, ignore_errors=True)
    os.makedirs(state)
    routes = []
    for i in range(1, n + 1):
        routes.append(
            {
                "service": f"bench/s{i}",
                "hosts": [{"name": f"s{i}.test", "mount": "/"}],
                "listen": {"kind": "https", "port": 443} if tls else {"kind": "plaintext", "port": 80},
                "upstream": {"url": f"http://127.0.0.1:{UPSTREAM_BASE + i}"},
                "strip_prefix": True,
                "host_header": "keep",
                "proxy_headers": True,
                "funnel": False,
                "tailnet": True,
                "whois": {"enabled": False, "timeout_ms": 1000},
            }
        )
    with open(f"{state}/routes.json", "w") as f:
        json.dump(routes, f)
    listener = (
        f'[[listener]]\nkind = "https"\naddr = "127.0.0.1:{PROXY_TLS}"\n'
        if tls
        else f'[[listener]]\nkind = "http"\naddr = "127.0.0.1:{PROXY_HTTP}"\n'
    )
    cfg = (
        f'state_dir = "{state}"\naccess_log = false\nhealth_interval_s = 0\n'
        f'cert_dir = "{cert_dir}"\nfallback_server_name = "s1.test"\n{listener}'
    )
    with open(f"{state}/proxy.toml", "w") as f:
        f.write(cfg)
    return f"{state}/proxy.toml"


def run_wrk(port, n, seconds, tls):
    scheme = "https" if tls else "http"
    proc = subprocess.run(
        taskset(1, ["wrk", "-t1", "-c64", f"-d{seconds}s", "--latency", "-s", "hosts.lua",
                    f"{scheme}://127.0.0.1:{port}/"]),
        env=dict(os.environ, NHOSTS=str(n)),
        capture_output=True,
        text=True,
        cwd=WORK,
    )
    out = proc.stdout
    m = re.search(r"(\d+) requests in", out)
    if not m:
        raise RuntimeError(f"wrk on port {port} gave no result: {out}{proc.stderr}")
    reqs = int(m.group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return None
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    return {
        "requests": reqs,
        "rps": rps,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
    }


def idle_window(pid, seconds):
    t0, c0 = cpu_ticks(pid), voluntary_csw(pid)
    time.sleep(seconds)
    return {"ticks": cpu_ticks(pid) - t0, "csw": voluntary_csw(pid) - c0}


def measure(system, n, args, first_run, certs):
    """One system at one route count: start, idle, load (plain, TLS), idle again."""
    res = {"system": system, "routes": n}
    procs = []
    try:
        if system == "direct":
            w = run_wrk(UPSTREAM_BASE + 1, n, args.warmup, False)
            w = run_wrk(UPSTREAM_BASE + 1, n, args.duration, False)
            res["http"] = w
            return res
        if system == "nginx":
            conf = f"{WORK}/nginx.conf"
            with open(conf, "w") as f:
                f.write(nginx_proxy_conf(WORK, n, certs["crt"], certs["key"]))
            # One process serves both plain and TLS.
            variants = [(None, taskset(0, ["nginx", "-e", "stderr", "-c", conf]))]
        elif system == "haproxy":
            conf = f"{WORK}/haproxy.cfg"
            with open(conf, "w") as f:
                f.write(haproxy_conf(WORK, n, certs["pem"]))
            variants = [(None, taskset(0, ["haproxy", "-db", "-f", conf]))]
        else:
            variants = [
                (False, taskset(0, [args.binary, "proxy", "--workers", "1", "--config",
                                    tailshift_setup(WORK, n, False, certs["dir"])])),
                (True, taskset(0, [args.binary, "proxy", "--workers", "1", "--config",
                                   tailshift_setup(WORK, n, True, certs["dir"])])),
            ]
        for tls_only, argv in variants:
            t0 = time.monotonic()
            p = start(argv, WORK, log=f"{WORK}/{system}.log")
            procs.append(p)
            port = PROXY_TLS if tls_only else PROXY_HTTP
            if tls_only:
                deadline = time.monotonic() + 30
                while not get_ok(port, tls=True):
                    if time.monotonic() > deadline or p.poll() is not None:
                        raise RuntimeError(f"{system} TLS not serving")
                    time.sleep(0.001)
                ready = time.monotonic() - t0
            else:
                ready = wait_serving(port, p)
            if tls_only is not True:
                res["first_request_ms"] = round(ready * 1000, 1)
                res["pss_idle_kb"] = pss_kb(p.pid)
                if first_run and args.idle:
                    res["idle_after_start"] = idle_window(p.pid, args.idle)
            for tls in ([tls_only] if tls_only is not None else [False, True]):
                k = "tls" if tls else "http"
                pport = PROXY_TLS if tls else PROXY_HTTP
                run_wrk(pport, n, args.warmup, tls)
                c0 = cpu_ticks(p.pid)
                w = run_wrk(pport, n, args.duration, tls)
                ticks = cpu_ticks(p.pid) - c0
                w["cpu_us_per_req"] = round(ticks * (1e6 / CLK_TCK) / max(w["requests"], 1), 2)
                res[k] = w
            if tls_only is not True:
                res["pss_after_load_kb"] = pss_kb(p.pid)
                if first_run and args.idle:
                    res["idle_after_load"] = idle_window(p.pid, args.idle)
            stop(p)
        return res
    finally:
        for p in procs:
            stop(p)


def certificates(work):
    d = f"{work}/certs"
    os.makedirs(d, exist_ok=True)
    crt, key = f"{d}/s1.test.crt", f"{d}/s1.test.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=s1.test",
         "-addext", "subjectAltName=DNS:s1.test"],
        check=True,
        capture_output=True,
    )
    pem = f"{d}/combined.pem"
    with open(pem, "w") as f:
        f.write(open(crt).read() + open(key).read())
    return {"dir": d, "crt": crt, "key": key, "pem": pem}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(results, systems, routes):
    lines = []
    for n in routes:
        lines.append(f"\n### {n} routes (medians of {max(len([r for r in results if r['routes'] == n and r['system'] == s]) for s in systems)} runs)\n")
        lines.append("| system | req/s | CPU µs/req | p50 / p99 ms | TLS req/s | TLS CPU µs/req | TLS p99 ms | PSS idle → after load | idle ticks / csw (start; after load) | first request |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for s in systems:
            rs = [r for r in results if r["routes"] == n and r["system"] == s]
            if not rs:
                continue
            g = lambda *path: median([_get(r, path) for r in rs])
            def fmt(v, d=1):
                return "–" if v is None else f"{v:,.{d}f}"
            idle = [r for r in rs if "idle_after_start" in r]
            idle_s = "–"
            if idle:
                a, b = idle[0]["idle_after_start"], idle[0].get("idle_after_load", {})
                idle_s = f"{a['ticks']} / {a['csw']}; {b.get('ticks', '–')} / {b.get('csw', '–')}"
            lines.append(
                f"| {s} | {fmt(g('http', 'rps'), 0)} | {fmt(g('http', 'cpu_us_per_req'))} | "
                f"{fmt(g('http', 'p50_ms'), 2)} / {fmt(g('http', 'p99_ms'), 2)} | {fmt(g('tls', 'rps'), 0)} | "
                f"{fmt(g('tls', 'cpu_us_per_req'))} | {fmt(g('tls', 'p99_ms'), 2)} | "
                f"{fmt(_kb(g('pss_idle_kb')))} → {fmt(_kb(g('pss_after_load_kb')))} MB | {idle_s} | "
                f"{fmt(g('first_request_ms'))} ms |"
            )
    return "\n".join(lines)


def _kb(v):
    return None if v is None else v / 1024


def _get(r, path):
    for p in path:
        if not isinstance(r, dict) or p not in r:
            return None
        r = r[p]
    return r


def ratios(results, routes):
    """tailshift against the others, per route count, from the medians."""
    out = []
    for n in routes:
        def med(system, *path):
            return median([_get(r, path) for r in results if r["routes"] == n and r["system"] == system])
        ts_cpu, ha_cpu, ng_cpu = med("tailshift", "http", "cpu_us_per_req"), med("haproxy", "http", "cpu_us_per_req"), med("nginx", "http", "cpu_us_per_req")
        ts_p99, ng_p99 = med("tailshift", "http", "p99_ms"), med("nginx", "http", "p99_ms")
        if ts_cpu and ha_cpu:
            out.append(f"- {n} routes: CPU per request tailshift/HAProxy = {ts_cpu / ha_cpu:.2f}, tailshift/nginx = {ts_cpu / ng_cpu:.2f}" if ng_cpu else f"- {n} routes: CPU per request tailshift/HAProxy = {ts_cpu / ha_cpu:.2f}")
        if ts_p99 and ng_p99:
            out.append(f"- {n} routes: p99 at saturation tailshift/nginx = {ts_p99 / ng_p99:.2f}")
        ts_tls, ha_tls = med("tailshift", "tls", "cpu_us_per_req"), med("haproxy", "tls", "cpu_us_per_req")
        if ts_tls and ha_tls:
            out.append(f"- {n} routes, TLS: CPU per request tailshift/HAProxy = {ts_tls / ha_tls:.2f}")
    if len(routes) >= 2:
        a, b = routes[0], routes[-1]
        for system in ["tailshift", "haproxy", "nginx"]:
            ca = median([_get(r, ("http", "cpu_us_per_req")) for r in results if r["routes"] == a and r["system"] == system])
            cb = median([_get(r, ("http", "cpu_us_per_req")) for r in results if r["routes"] == b and r["system"] == system])
            if ca and cb:
                pairs = paired(results, system, "http", a, system, "http", b)
                out.append(
                    f"- {system} CPU per request {b} vs {a} routes: {cb / ca:.2f}× (ratio of medians); "
                    f"{median(pairs):.2f}× (median of the runs' adjacent pairs: {', '.join(f'{x:.2f}' for x in pairs)})"
                )
    for n in routes:
        for other in ["haproxy", "nginx"]:
            pairs = paired(results, other, "http", n, "tailshift", "http", n)
            if pairs:
                out.append(f"- {n} routes: CPU per request tailshift/{other}, per run: {', '.join(f'{x:.2f}' for x in pairs)} (median {median(pairs):.2f})")
        pairs = paired(results, "nginx", "http", n, "tailshift", "http", n, "p99_ms")
        if pairs:
            out.append(f"- {n} routes: p99 tailshift/nginx, per run: {', '.join(f'{x:.2f}' for x in pairs)} (median {median(pairs):.2f})")
    return "\n".join(out)


def paired(results, sys_a, kind_a, n_a, sys_b, kind_b, n_b, field="cpu_us_per_req"):
    """Per run, B's figure over A's (the same run's windows)."""
    out = []
    for run in sorted({r["run"] for r in results}):
        def one(system, kind, n):
            return next((_get(r, (kind, field)) for r in results if r["run"] == run and r["system"] == system and r["routes"] == n), None)
        va, vb = one(sys_a, kind_a, n_a), one(sys_b, kind_b, n_b)
        if va and vb:
            out.append(vb / va)
    return out


def main():
    global WORK
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--routes", type=int, nargs="+", default=[57, 500])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--idle", type=int, default=60, help="idle window in seconds (0: skip)")
    ap.add_argument("--systems", default="direct,tailshift,nginx,haproxy")
    ap.add_argument("--binary", default="target/release/migrate")
    ap.add_argument("--json", help="write every measurement here")
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary)
    for tool in ["wrk", "nginx", "haproxy", "openssl", "taskset"]:
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"bench: {tool} is not installed (Debian: apt-get install wrk nginx-light haproxy openssl)")
    if not os.path.exists(args.binary):
        sys.exit(f"bench: {args.binary} not found; build it with `cargo build --release`")
    if (os.cpu_count() or 1) < 2:
        sys.exit("bench: needs 2 CPUs (proxy on CPU 0, load and upstream on CPU 1)")
    os.environ["PATH"] += ":/usr/sbin"
    systems = args.systems.split(",")
    WORK = tempfile.mkdtemp(prefix="tailshift-bench-")
    with open(f"{WORK}/hosts.lua", "w") as f:
        f.write(HOSTS_LUA)
    certs = certificates(WORK)
    with open(f"{WORK}/upstream.conf", "w") as f:
        f.write(upstream_conf(WORK, max(args.routes)))
    upstream = start(taskset(1, ["nginx", "-e", "stderr", "-c", f"{WORK}/upstream.conf"]), WORK, log=f"{WORK}/upstream.log")
    results = []
    try:
        wait_serving(UPSTREAM_BASE + 1, upstream)
        # The proxies take turns going first: on a shared machine the speed drifts, and a fixed
        # order would hand the same position (and its luck) to the same system every run.
        proxies = [s for s in systems if s != "direct"]
        # Each system's route counts are measured back to back (in turns, too), so that its
        # cost of more routes compares two adjacent windows rather than windows minutes apart.
        for run in range(args.runs):
            k = run % max(len(proxies), 1)
            order = [s for s in systems if s == "direct"] + proxies[k:] + proxies[:k]
            counts = args.routes if run % 2 == 0 else args.routes[::-1]
            for s in order:
                for n in counts:
                    r = measure(s, n, args, run == 0, certs)
                    r["run"] = run + 1
                    results.append(r)
                    print(json.dumps(r), file=sys.stderr, flush=True)
    finally:
        stop(upstream)
    kernel = os.uname().release
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"## Proxy benchmark ({time.strftime('%Y-%m-%d')}, {cpu}, {os.cpu_count()} CPUs, Linux {kernel})")
    print(f"\n`bench/proxies.py --routes {' '.join(map(str, args.routes))} --runs {args.runs} --duration {args.duration} --idle {args.idle}`")
    print(summarize(results, systems, args.routes))
    print("\nRatios (medians, same run):\n")
    print(ratios(results, args.routes))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
