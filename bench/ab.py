#!/usr/bin/env python3
"""A against B, alternating: CPU time per request of two proxies at one route count.

On a shared VM the machine's speed drifts by more than the differences worth judging, so one
window of each says little. This runs A, then B, then A again, ... (each in a fresh process,
same recipe as bench/proxies.py: proxy on CPU 0, wrk and the upstream on CPU 1, HTTP/1.1
keep-alive at saturation) and reports the ratio B/A of each adjacent pair and their median.

A and B are each a path to a `migrate` binary, or `haproxy` / `nginx`.

Usage: bench/ab.py A B [--routes 57] [--routes-b N] [--untouched] [--pairs 6] [--duration 4]
Example: bench/ab.py target/release/migrate haproxy
With --routes-b, B runs with N routes (A with --routes): the same system twice gives its cost of
more routes, e.g. bench/ab.py target/release/migrate target/release/migrate --routes-b 500.
"""

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time

spec = importlib.util.spec_from_file_location("proxies", os.path.join(os.path.dirname(__file__), "proxies.py"))
px = importlib.util.module_from_spec(spec)
spec.loader.exec_module(px)


def cpu_split(pid):
    """(user, system) ticks of the process tree."""
    u = s = 0
    for p in px.tree(pid):
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            u, s = u + int(f[11]), s + int(f[12])
        except OSError:
            pass
    return u, s


def one(system, n, seconds, certs):
    """CPU µs per request (user, system) of one window."""
    if system in ("haproxy", "nginx"):
        conf = f"{px.WORK}/{system}.cfg"
        with open(conf, "w") as f:
            f.write(px.haproxy_conf(px.WORK, n, certs["pem"]) if system == "haproxy"
                    else px.nginx_proxy_conf(px.WORK, n, certs["crt"], certs["key"]))
        argv = ["haproxy", "-db", "-f", conf] if system == "haproxy" else ["nginx", "-e", "stderr", "-c", conf]
    else:
        argv = [os.path.abspath(system), "proxy", "--workers", "1", "--config",
                px.tailshift_setup(px.WORK, n, False, certs["dir"])]
    p = px.start(px.taskset(0, argv), px.WORK)
    try:
        px.wait_serving(px.PROXY_HTTP, p)
        px.run_wrk(px.PROXY_HTTP, n, 2, False)
        u0, s0 = cpu_split(p.pid)
        w = px.run_wrk(px.PROXY_HTTP, n, seconds, False)
        u1, s1 = cpu_split(p.pid)
    finally:
        px.stop(p)
    k = 1e6 / px.CLK_TCK / w["requests"]
    return (u1 - u0) * k, (s1 - s0) * k


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--routes", type=int, default=57)
    ap.add_argument("--routes-b", type=int, default=None, help="B's route count (default: --routes)")
    ap.add_argument("--untouched", action="store_true",
                    help="nginx and HAProxy forward requests untouched (no forwarding headers): "
                         "the recipe of the first three runs in BENCHMARKS.md")
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--duration", type=int, default=4)
    args = ap.parse_args()
    routes_b = args.routes_b or args.routes
    if args.untouched:
        px.NGINX_FORWARDED = px.HAPROXY_FORWARDED = ""
    os.environ["PATH"] += ":/usr/sbin"
    px.WORK = tempfile.mkdtemp(prefix="tailshift-ab-")
    with open(f"{px.WORK}/hosts.lua", "w") as f:
        f.write(px.HOSTS_LUA)
    certs = px.certificates(px.WORK)
    with open(f"{px.WORK}/upstream.conf", "w") as f:
        f.write(px.upstream_conf(px.WORK, max(args.routes, routes_b)))
    up = px.start(px.taskset(1, ["nginx", "-e", "stderr", "-c", f"{px.WORK}/upstream.conf"]), px.WORK)
    ratios = []
    try:
        px.wait_serving(px.UPSTREAM_BASE + 1, up)
        for i in range(args.pairs):
            (ua, sa), (ub, sb) = one(args.a, args.routes, args.duration, certs), one(args.b, routes_b, args.duration, certs)
            ratios.append((ub + sb) / (ua + sa))
            print(f"pair {i + 1}: A {ua + sa:.1f} µs/req (user {ua:.1f}), B {ub + sb:.1f} µs/req (user {ub:.1f}), B/A {ratios[-1]:.3f}", flush=True)
    finally:
        px.stop(up)
    print(f"median B/A over {len(ratios)} pairs: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    sys.exit(main())
