#!/usr/bin/env python3
"""User-space instructions per proxied request, counted by valgrind's callgrind.

The VM's clock drifts by more than most single changes to the request path are worth, so the
CPU figures of bench/proxies.py cannot judge them one at a time; instructions executed can. This
starts the upstream of bench/proxies.py (one nginx worker on N ports), runs `migrate proxy`
under callgrind, warms it with wrk, zeroes the counters, loads it for a window, dumps, and
prints instructions per request and the functions with the most instructions of their own.
With --cache-sim, callgrind also simulates a cache (by default a 512 KiB last level, the size
of one core's L2 here) and the misses per request are printed too.

Under valgrind the proxy serves a few thousand requests per second, so batching differs from a
real run: compare binaries with each other, not with other proxies.

Needs: valgrind, wrk, nginx, openssl (Debian: apt-get install valgrind wrk nginx-light openssl).

Usage: bench/callgrind.py [--binary target/release/migrate] [--routes 57] [--duration 6]
                          [--cache-sim] [--top 25]
"""

import argparse
import collections
import glob
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time

spec = importlib.util.spec_from_file_location("proxies", os.path.join(os.path.dirname(__file__), "proxies.py"))
px = importlib.util.module_from_spec(spec)
spec.loader.exec_module(px)


def self_costs(path):
    """Events, per-function self costs and totals from a callgrind output file."""
    names, per, total, events = {}, collections.defaultdict(lambda: None), None, []
    current, skip_next = None, False

    def name(token):
        m = re.match(r"\((\d+)\)(?: (.*))?", token)
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), m.group(1))

    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("events:"):
            events = line.split()[1:]
            total = [0] * len(events)
        elif line.startswith("fn="):
            current = name(line[3:])
        elif line.startswith("cfn="):
            name(line[4:])
        elif line.startswith("calls="):
            skip_next = True  # the next cost line is the call's inclusive cost
        elif line and (line[0].isdigit() or line[0] in "+-*"):
            if skip_next:
                skip_next = False
                continue
            costs = [int(v) for v in line.split()[1:]]
            if per[current] is None:
                per[current] = [0] * len(events)
            for i, v in enumerate(costs):
                per[current][i] += v
                total[i] += v
    return events, {k: v for k, v in per.items() if v}, total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/migrate")
    ap.add_argument("--routes", type=int, default=57)
    ap.add_argument("--duration", type=int, default=6)
    ap.add_argument("--cache-sim", action="store_true")
    ap.add_argument("--ll", default="524288,8,64", help="simulated last-level cache: size,assoc,line")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    for tool in ["valgrind", "callgrind_control", "wrk", "nginx", "openssl"]:
        if not any(os.path.exists(os.path.join(d, tool)) for d in os.environ["PATH"].split(":") + ["/usr/sbin"]):
            sys.exit(f"callgrind: {tool} is not installed (Debian: apt-get install valgrind wrk nginx-light openssl)")
    os.environ["PATH"] += ":/usr/sbin"
    binary = os.path.abspath(args.binary)
    px.WORK = tempfile.mkdtemp(prefix="tailshift-callgrind-")
    with open(f"{px.WORK}/hosts.lua", "w") as f:
        f.write(px.HOSTS_LUA)
    certs = px.certificates(px.WORK)
    with open(f"{px.WORK}/upstream.conf", "w") as f:
        f.write(px.upstream_conf(px.WORK, args.routes))
    up = px.start(px.taskset(1, ["nginx", "-e", "stderr", "-c", f"{px.WORK}/upstream.conf"]), px.WORK)
    out = f"{px.WORK}/callgrind.out"
    vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    if args.cache_sim:
        vg += ["--cache-sim=yes", f"--LL={args.ll}"]
    cfg = px.tailshift_setup(px.WORK, args.routes, False, certs["dir"])
    proxy = px.start(px.taskset(0, vg + [binary, "proxy", "--workers", "1", "--config", cfg]), px.WORK,
                     log=f"{px.WORK}/valgrind.log")
    try:
        px.wait_serving(px.UPSTREAM_BASE + 1, up)
        px.wait_serving(px.PROXY_HTTP, proxy, limit=120)
        px.run_wrk(px.PROXY_HTTP, args.routes, 3, False)
        subprocess.run(["callgrind_control", "-z", str(proxy.pid)], capture_output=True, check=True)
        w = px.run_wrk(px.PROXY_HTTP, args.routes, args.duration, False)
        subprocess.run(["callgrind_control", "-d", str(proxy.pid)], capture_output=True, check=True)
        time.sleep(1)
    finally:
        px.stop(proxy)
        px.stop(up)
    dumps = sorted(glob.glob(out + ".*"), key=os.path.getmtime)
    if not dumps:
        sys.exit(f"callgrind: no dump written (see {px.WORK}/valgrind.log)")
    events, per, total = self_costs(dumps[-1])
    n = w["requests"]
    print(f"{binary}, {args.routes} routes: {n} requests in {args.duration} s under callgrind")
    for e, t in zip(events, total):
        print(f"  {e} per request: {t / n:,.1f}")
    ir = events.index("Ir")
    print(f"\nmost instructions of their own (per request, share of all):")
    for f, c in sorted(per.items(), key=lambda kv: -kv[1][ir])[: args.top]:
        print(f"  {c[ir] / n:8,.0f}  {100 * c[ir] / total[ir]:5.1f}%  {f[:120]}")
    if args.cache_sim and "DLmr" in events:
        k = events.index("DLmr")
        print(f"\nmost last-level read misses (per request):")
        for f, c in sorted(per.items(), key=lambda kv: -kv[1][k])[: args.top]:
            print(f"  {c[k] / n:8.2f}  {f[:120]}")


if __name__ == "__main__":
    sys.exit(main())
