#!/usr/bin/env python3
"""Slow clients against a proxy short of descriptors: issue 15's acceptance scenario, measured.

The scenario of the CI test `slow_clients_under_a_1024_descriptor_limit_do_not_stop_the_service`
(tests/proxy.rs): `migrate proxy` started under `prlimit --nofile=1024:1024` (the hard limit too),
one worker, pinned to CPU 0; on CPU 1 one Python process holds the upstream and every client:
  - 600 slow-body clients: a 1 MiB POST of which each sends 16 bytes every 3 s;
  - 600 slow-read clients: a 1 MiB response read at 1 KiB/s (512 bytes every 500 ms) through a
    4 KiB receive buffer;
  - a normal client opening a new connection for each request (`GET /small`, a 2-byte answer)
    every 100 ms for --duration seconds.
Each slow client connects once, all at the start (they are not replaced when cut).

Measured, against the issue's goals (reported, not gates):
  - normal requests: how many, how many not answered 200, latency p50 / p99 / max (goal: all
    within 1 s);
  - the proxy's CPU (utime+stime over the normal client's window, as a share of one core; goal:
    under 20%);
  - the proxy's RSS idle before, at its peak, and after (once its descriptors are back to the
    idle count, then --settle seconds; goal: back to the idle figure);
  - the proxy's counters: accept back-offs, connections cut by reason.

--limits short uses the CI test's limits (2 s header, body and rate window, 16 KiB/s minimum);
--limits default the proxy's own defaults (10 s header, 30 s body, 1 KiB/s over 30 s).

Usage: bench/slowclients.py [--binary target/release/migrate] [--limits short|default]
                            [--duration 12] [--settle 10] [--json out.json]
Needs: prlimit and taskset (util-linux). Binds only 127.0.0.1.
"""

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
BIG = 1 << 20  # the slow readers' response, and the slow bodies' promised length
HOST = "app.tailnet.test"
BIG_RESPONSE = f"HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n".encode() + b"x" * BIG

LIMITS = {
    "short": "header_read_timeout_ms = 2000\nbody_read_timeout_ms = 2000\n"
             "min_send_rate = 16384\nsend_rate_window_ms = 2000\n",
    "default": "",
}


def proc_stat(pid):
    """(utime+stime ticks, RSS KiB, open descriptors) of one process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return ticks, rss, len(os.listdir(f"/proc/{pid}/fd"))


def admin_get(sock_path, path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall(f"{path}\r\nHost: admin\r\nConnection: close\r\n".encode() + b"\r\n")
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    return out.decode()


def counters(sock_path):
    text = admin_get(sock_path, "GET /metrics HTTP/1.1")
    out = {}
    for line in text.splitlines():
        if line.startswith("tailshift_accept_backoffs_total "):
            out["accept_backoffs"] = int(line.split()[1])
        elif line.startswith("tailshift_connections_cut_total{"):
            reason = line.split('reason="')[1].split('"')[0]
            out[f"cut_{reason}"] = int(line.split()[1])
    return out


async def upstream_conn(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0]
            length = 0
            for h in head.split(b"\r\n")[1:]:
                if h.lower().startswith(b"content-length:"):
                    length = int(h.split(b":", 1)[1])
            while length > 0:
                chunk = await reader.read(min(length, 65536))
                if not chunk:
                    return
                length -= len(chunk)
            if line.startswith(b"GET /big "):
                writer.write(BIG_RESPONSE)
                await writer.drain()
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def slow_body(port):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {BIG}\r\n\r\n".encode())
        while True:
            writer.write(b"x" * 16)
            await writer.drain()
            try:
                await asyncio.wait_for(reader.read(1024), 3)
                break  # an answer or the end: the proxy let go
            except asyncio.TimeoutError:
                pass
        writer.close()
    except (ConnectionError, OSError):
        pass


async def slow_read(port):
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        await asyncio.get_running_loop().sock_connect(s, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=s, limit=4096)
        writer.write(f"GET /big HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        await writer.drain()
        while await reader.read(512):
            await asyncio.sleep(0.5)
        writer.close()
    except (ConnectionError, OSError):
        pass


async def normal(port, results):
    t0 = time.monotonic()
    status = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 60)
        writer.write(f"GET /small HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), 60)
        status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.1 ") else None
        writer.close()
    except (ConnectionError, OSError, asyncio.TimeoutError):
        pass
    results.append((status, time.monotonic() - t0))


def quantile(sorted_values, q):
    return sorted_values[int((len(sorted_values) - 1) * q)]


async def scenario(args, pid, port, admin, out):
    samples = []

    async def sample():
        while True:
            samples.append((time.monotonic(),) + proc_stat(pid))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    ticks0, rss_idle, fds_idle = proc_stat(pid)
    own0 = resource.getrusage(resource.RUSAGE_SELF)
    out["rss_idle_kb"], out["fds_idle"] = rss_idle, fds_idle
    t0 = time.monotonic()
    slow = [asyncio.create_task(slow_body(port)) for _ in range(args.slow_body)]
    slow += [asyncio.create_task(slow_read(port)) for _ in range(args.slow_read)]
    results, normals = [], []
    # Every 100 ms on the clock (not 100 ms after the last one was started).
    for i in range(int(args.duration * 10)):
        await asyncio.sleep(max(0.0, t0 + i / 10 - time.monotonic()))
        normals.append(asyncio.create_task(normal(port, results)))
    ticks1 = proc_stat(pid)[0]
    window = time.monotonic() - t0
    own1 = resource.getrusage(resource.RUSAGE_SELF)
    # The load generator must not be the bottleneck (it has CPU 1 to itself).
    out["load_cpu_share"] = round(
        (own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime) / window, 3)
    await asyncio.gather(*normals)
    # The attack is over for the proxy once its descriptors are back (the pool keeps up to 32
    # upstream connections idle); the slow readers may still be reading what closed sockets held.
    while proc_stat(pid)[2] > fds_idle + 40 and time.monotonic() - t0 < args.duration + 60:
        await asyncio.sleep(0.2)
    out["attack_cleared_s"] = round(time.monotonic() - t0, 1)
    out["attack_cleared"] = proc_stat(pid)[2] <= fds_idle + 40
    ticks2 = proc_stat(pid)[0]
    cleared = time.monotonic() - t0
    await asyncio.sleep(args.settle)
    out["rss_after_kb"] = proc_stat(pid)[1]
    out["fds_after"] = proc_stat(pid)[2]
    sampler.cancel()
    # What is left (slow readers still reading what closed sockets held, upstream sides) ends.
    rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in rest:
        t.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
    lat = sorted(d for _, d in results)
    out["normal_requests"] = len(results)
    out["normal_not_200"] = sum(1 for s, _ in results if s != "200")
    out["normal_statuses"] = {}
    for s, _ in results:
        out["normal_statuses"][s or "none"] = out["normal_statuses"].get(s or "none", 0) + 1
    out["latency_ms"] = {
        "p50": round(quantile(lat, 0.5) * 1000, 1),
        "p99": round(quantile(lat, 0.99) * 1000, 1),
        "max": round(lat[-1] * 1000, 1),
        "within_1s": sum(1 for d in lat if d <= 1.0),
    }
    out["cpu_share_normal_window"] = round((ticks1 - ticks0) / CLK_TCK / window, 3)
    out["cpu_share_until_cleared"] = round((ticks2 - ticks0) / CLK_TCK / cleared, 3)
    out["rss_peak_kb"] = max(s[2] for s in samples)
    out["fds_peak"] = max(s[3] for s in samples)
    out.update(counters(admin))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/migrate")
    ap.add_argument("--limits", choices=sorted(LIMITS), default="short")
    ap.add_argument("--duration", type=float, default=12)
    ap.add_argument("--settle", type=float, default=10)
    ap.add_argument("--slow-body", type=int, default=600)
    ap.add_argument("--slow-read", type=int, default=600)
    ap.add_argument("--nofile", type=int, default=1024)
    ap.add_argument("--json")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # This process (every client and the upstream) runs on CPU 1, the proxy on CPU 0.
    os.sched_setaffinity(0, {1})
    work = tempfile.mkdtemp(prefix="tailshift-slowclients-")
    loop = asyncio.new_event_loop()
    # Connections reset and tasks cancelled at the end are the point, not errors to print.
    loop.set_exception_handler(lambda loop, context: None)
    server = loop.run_until_complete(asyncio.start_server(upstream_conn, "127.0.0.1", 0, backlog=4096))
    upstream_port = server.sockets[0].getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(f"{work}/proxy.toml", "w") as f:
        f.write(f'state_dir = "{work}/state"\naccess_log = false\nhealth_interval_s = 0\n{LIMITS[args.limits]}'
                f'[[listener]]\nkind = "http"\naddr = "127.0.0.1:{port}"\n')
    argv = ["prlimit", f"--nofile={args.nofile}:{args.nofile}", "--", "taskset", "-c", "0",
            os.path.abspath(args.binary), "proxy", "--workers", "1", "--config", f"{work}/proxy.toml"]
    proxy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(f"{work}/proxy.log", "w"))
    admin = f"{work}/state/admin.sock"
    out = {"binary": args.binary, "limits": args.limits, "nofile": args.nofile,
           "slow_body": args.slow_body, "slow_read": args.slow_read, "duration_s": args.duration}
    try:
        for _ in range(300):
            if os.path.exists(admin):
                break
            if proxy.poll() is not None:
                sys.exit(f"the proxy exited ({proxy.returncode}): {open(f'{work}/proxy.log').read()}")
            time.sleep(0.01)
        time.sleep(0.1)
        route = {"service": "box/app", "hosts": [{"name": HOST, "mount": "/"}],
                 "listen": {"kind": "plaintext", "port": 80},
                 "upstream": {"url": f"http://127.0.0.1:{upstream_port}"},
                 "strip_prefix": True, "host_header": "keep", "proxy_headers": True,
                 "funnel": False, "tailnet": True, "whois": {"enabled": False, "timeout_ms": 1000}}
        body = json.dumps([route])
        s = socket.socket(socket.AF_UNIX)
        s.connect(admin)
        s.sendall(f"PUT /routes HTTP/1.1\r\nHost: admin\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode())
        reply = s.recv(4096).decode()
        s.close()
        assert " 200 " in reply.split("\r\n")[0], reply
        # Warm: a few normal requests, then the idle figures.
        for _ in range(5):
            loop.run_until_complete(normal(port, []))
        time.sleep(1)
        loop.run_until_complete(scenario(args, proxy.pid, port, admin, out))
    finally:
        proxy.terminate()
        proxy.wait()
        server.close()
    goals = {
        "normal requests within 1 s": out["latency_ms"]["within_1s"] == out["normal_requests"]
        and out["normal_not_200"] == 0,
        "proxy under 20% of a core": out["cpu_share_normal_window"] < 0.20,
        "RSS back to idle afterwards": out["rss_after_kb"] <= out["rss_idle_kb"] * 1.1,
    }
    out["goals"] = goals
    lat = out["latency_ms"]
    print(f"limits {args.limits}, nofile {args.nofile}: {out['normal_requests']} normal requests, "
          f"{out['normal_not_200']} not 200 {out['normal_statuses']}; latency p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
          f"max {lat['max']} ms, {lat['within_1s']} within 1 s")
    print(f"proxy CPU {out['cpu_share_normal_window'] * 100:.1f}% of a core over the normal window "
          f"({out['cpu_share_until_cleared'] * 100:.1f}% until the attack "
          f"{'cleared' if out['attack_cleared'] else 'still held descriptors'} at "
          f"{out['attack_cleared_s']} s); RSS idle {out['rss_idle_kb'] / 1024:.1f} MB, "
          f"peak {out['rss_peak_kb'] / 1024:.1f} MB, after {out['rss_after_kb'] / 1024:.1f} MB; "
          f"descriptors idle {out['fds_idle']}, peak {out['fds_peak']}; load generator "
          f"{out['load_cpu_share'] * 100:.0f}% of CPU 1")
    print("counters: " + ", ".join(f"{k} {v}" for k, v in out.items() if k.startswith(("accept", "cut_"))))
    for goal, met in goals.items():
        print(f"  {goal}: {'met' if met else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
